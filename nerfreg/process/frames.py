"""Frames from a video: evenly spaced in time, the sharpest of each window (OpenCV)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .errors import ProcessError

#: Frames are scored at this longest side: enough to see blur, cheap to compute.
SCORE_SIZE = 480
Progress = Optional[Callable[[int, int], None]]


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher is sharper)."""
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    scale = SCORE_SIZE / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _open(video: Path) -> cv2.VideoCapture:
    if not video.is_file():
        raise ProcessError(f'video {video} does not exist; pass the path of a video file.')
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ProcessError(f'video {video} cannot be opened by OpenCV: it has no frames, is '
                           'damaged, or uses a codec OpenCV lacks. Check that it plays and '
                           're-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`), or extract '
                           'the frames yourself and use `nerfreg-process images`.')
    return cap


def score_frames(video: Path, progress: Progress = None) -> np.ndarray:
    """Sharpness of every frame of ``video`` (decodes it once)."""
    cap = _open(video)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    scores = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            scores.append(sharpness(frame))
            if progress:
                progress(len(scores), max(total, len(scores)))
    finally:
        cap.release()
    if not scores:
        raise ProcessError(f'video {video} has no readable frames; check that it plays, or '
                           're-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`).')
    return np.asarray(scores)


def pick_frames(scores: np.ndarray, num_frames: int) -> list[int]:
    """Indices of the sharpest frame in each of ``num_frames`` equal windows of time."""
    n = len(scores)
    if num_frames >= n:
        return list(range(n))
    edges = np.linspace(0, n, num_frames + 1).round().astype(int)
    return [int(lo + np.argmax(scores[lo:hi])) for lo, hi in zip(edges[:-1], edges[1:])]


def write_frames(video: Path, indices: list[int], out_dir: Path,
                 progress: Progress = None) -> list[str]:
    """Save the chosen frames as ``frame_00001.jpg``... in ``out_dir``; return the names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {idx: k for k, idx in enumerate(sorted(indices))}
    names = [''] * len(wanted)
    cap = _open(video)
    try:
        i = 0
        while len(wanted) > sum(1 for n in names if n):
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                k = wanted[i]
                names[k] = f'frame_{k + 1:05d}.jpg'
                if not cv2.imwrite(str(out_dir / names[k]), frame,
                                   [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise ProcessError(f'cannot write {out_dir / names[k]} (disk full or no '
                                       'permission?)')
                if progress:
                    progress(k + 1, len(names))
            i += 1
    finally:
        cap.release()
    if not all(names):
        raise ProcessError(f'video {video} ended early on the second read; it may be '
                           'damaged: re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`).')
    return names
