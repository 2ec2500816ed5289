"""The whole path from photos (or a video) to ``SCENE/{images,sparse/0,report.json}``.

Stages run in order, each skipped when its marker (see :mod:`.state`) matches; inputs are
checked before anything is written, and everything written goes under ``SCENE``:

    SCENE/images/ SCENE/sparse/0/ SCENE/report.json      the trainable scene
    SCENE/colmap/{frames/,database.db,sparse/,stages.json} work files (kept for resuming)
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import frames as video_frames
from . import sfm
from .errors import ProcessError, import_pycolmap
from .inputs import MIN_IMAGES, check_images, list_images
from .progress import StageDisplay, StageTask
from .report import format_summary, model_summary, write_report
from .state import StageState, files_fingerprint, fingerprint

WORK = 'colmap'


@dataclass
class ProcessOptions:
    """What ``nerfreg-process`` was asked to do (see ``nerfreg-process --help``)."""

    kind: str  # 'images' or 'video'
    source: Path
    out: Path
    num_frames: int = 150
    max_size: int | None = None
    camera_model: str = 'SIMPLE_RADIAL'
    per_image_camera: bool = False
    matcher: str | None = None  # default: sequential for video, exhaustive for images
    vocab_tree: Path | None = None
    num_threads: int = 0  # 0: all cores
    min_registered: float = 0.5
    verbose: bool = False
    quiet: bool = False


def _check_options(opts: ProcessOptions) -> None:
    if opts.kind not in ('images', 'video'):
        raise ProcessError(f'unknown input kind {opts.kind!r}; use "images" or "video"')
    if opts.camera_model not in sfm.CAMERA_MODELS:
        raise ProcessError(f'--camera-model {opts.camera_model} is not supported; choose one '
                           f'of {", ".join(sfm.CAMERA_MODELS)}')
    if opts.matcher not in sfm.MATCHERS:
        raise ProcessError(f'--matcher {opts.matcher} is unknown; choose one of '
                           f'{", ".join(sfm.MATCHERS)}')
    if opts.matcher == 'vocab' and opts.vocab_tree is None:
        raise ProcessError(
            '--matcher vocab needs a vocabulary tree file, and nerfreg never downloads at run '
            'time: download one from https://demuc.de/colmap/ (e.g. '
            'vocab_tree_flickr100K_words32K.bin) and pass --vocab-tree PATH, or use '
            '--matcher exhaustive (up to a few hundred photos) or sequential (video).')
    if opts.vocab_tree is not None and not Path(opts.vocab_tree).is_file():
        raise ProcessError(f'--vocab-tree {opts.vocab_tree} does not exist; pass the path of '
                           'a COLMAP vocabulary tree file.')
    if opts.kind == 'video' and opts.num_frames < MIN_IMAGES:
        raise ProcessError(f'--num-frames {opts.num_frames} is too few; use at least '
                           f'{MIN_IMAGES} (50-300 is typical).')
    if opts.max_size is not None and opts.max_size < 100:
        raise ProcessError(f'--max-size {opts.max_size} is too small for feature matching; '
                           'use 100 or more (e.g. 1600), or leave it out.')
    if not 0 <= opts.min_registered <= 1:
        raise ProcessError(f'--min-registered {opts.min_registered} must be a fraction in '
                           '[0, 1]')


def _check_out(out: Path, source: Path) -> None:
    """Refuse an output folder that holds anything but an earlier run of ours."""
    if out.exists() and not out.is_dir():
        raise ProcessError(f'--out {out} is a file; pass a folder (it is created if missing).')
    ours = (out / WORK / 'stages.json').is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise ProcessError(f'--out {out} exists, is not empty and is not an earlier '
                           'nerfreg-process output; choose a new folder so that nothing of '
                           'yours is overwritten.')
    for mine in (out / 'images', out / 'sparse', out / WORK):
        if source == mine or mine in source.parents:
            raise ProcessError(f'the input {source} lies inside {mine}, which nerfreg-process '
                               'rewrites; copy the photos elsewhere or choose another --out.')


class _Runner:
    """Runs stages with markers, timing and progress for one output folder."""

    def __init__(self, opts: ProcessOptions, display: StageDisplay) -> None:
        self.work = opts.out / WORK
        self.state = StageState(self.work)
        self.display = display
        self.times: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fp: str, description: str, fn: Callable[[StageTask], dict],
            outputs: tuple[Path, ...] = (), total: int | None = None) -> dict:
        done = self.state.done(name, fp)
        if done is not None and all(p.exists() for p in outputs):
            self.display.reused(name, done['seconds'])
            self.times[name] = dict(seconds=done['seconds'], cpu_seconds=done.get('cpu_seconds'),
                                    reused=True)
            return done
        self.state.forget(name)
        t0, c0 = time.perf_counter(), time.process_time()
        with self.display.stage(name, description, total) as task:
            info = fn(task) or {}
        seconds, cpu = time.perf_counter() - t0, round(time.process_time() - c0, 2)
        self.state.finish(name, fp, seconds, cpu_seconds=cpu, **info)
        self.times[name] = dict(seconds=round(seconds, 2), cpu_seconds=cpu, reused=False)
        return self.state.stages[name]


def _video_frames(opts: ProcessOptions, runner: _Runner) -> tuple[Path, list[str], str, dict]:
    video = opts.source
    if not video.is_file():
        raise ProcessError(f'video {video} does not exist; pass the path of a video file.')
    fp = fingerprint('frames', files_fingerprint(video.parent, [video.name]), opts.num_frames)
    frame_dir = runner.work / 'frames'

    def select(task: StageTask) -> dict:
        scores = video_frames.score_frames(video, task.update)  # validates before writing
        picked = video_frames.pick_frames(scores, opts.num_frames)
        if len(picked) < MIN_IMAGES:
            raise ProcessError(f'video {video} has only {len(scores)} frame(s); a '
                               f'reconstruction needs at least {MIN_IMAGES} views.')
        if frame_dir.exists():
            shutil.rmtree(frame_dir)
        names = video_frames.write_frames(video, picked, frame_dir)
        return dict(names=names, indices=picked, video_frames=len(scores))

    rec = runner.run('frames', fp, f'sharpest of {opts.num_frames} windows', select,
                     outputs=(frame_dir,))
    return frame_dir, rec['names'], fp, dict(video_frames=rec['video_frames'],
                                             frame_indices=rec['indices'])


def _photos(opts: ProcessOptions, runner: _Runner) -> tuple[Path, list[str], str, dict]:
    names = list_images(opts.source)
    fp = fingerprint('check', files_fingerprint(opts.source, names))

    def check(task: StageTask) -> dict:
        sizes = check_images(opts.source, names)
        return dict(sizes=sorted({f'{w}x{h}' for w, h in sizes.values()}))

    rec = runner.run('check', fp, f'decode {len(names)} images', check)
    return opts.source, names, fp, dict(image_sizes=rec['sizes'])


def process(opts: ProcessOptions) -> dict[str, Any]:
    """Run every stage; return the report (also written to ``SCENE/report.json``)."""
    pycolmap = import_pycolmap()
    opts.source, opts.out = Path(opts.source).resolve(), Path(opts.out).resolve()
    opts.matcher = opts.matcher or ('sequential' if opts.kind == 'video' else 'exhaustive')
    threads = opts.num_threads or os.cpu_count() or 1
    _check_options(opts)
    _check_out(opts.out, opts.source)
    pycolmap.logging.minloglevel = 0 if opts.verbose else 2
    display = StageDisplay(quiet=opts.quiet)
    runner = _Runner(opts, display)
    work = runner.work
    get_inputs = _video_frames if opts.kind == 'video' else _photos
    image_dir, names, fp, extra = get_inputs(opts, runner)
    single = not opts.per_image_camera and len(extra.get('image_sizes', [0])) == 1
    if not single and not opts.per_image_camera:
        display.note(f'images differ in size ({", ".join(extra["image_sizes"])}): one camera '
                     'per image')

    db = work / 'database.db'
    fp = fingerprint(fp, 'extract', opts.camera_model, single, opts.max_size)
    runner.run('extract', fp, f'SIFT features of {len(names)} images', lambda t: (
        sfm.extract_features(db, image_dir, names, opts.camera_model, single, opts.max_size,
                             threads)), outputs=(db,))
    vocab_fp = files_fingerprint(opts.vocab_tree.parent, [opts.vocab_tree.name]) \
        if opts.vocab_tree else None
    fp = fingerprint(fp, 'match', opts.matcher, vocab_fp)
    runner.run('match', fp, f'{opts.matcher} matching', lambda t: (
        sfm.match_features(db, opts.matcher, threads, opts.vocab_tree)), outputs=(db,))
    links = sfm.check_overlap(db)

    raw = work / 'sparse'
    fp = fingerprint(fp, 'map')

    def mapping(task: StageTask) -> dict:
        best, counts = sfm.map_images(db, image_dir, raw, threads, lambda: task.advance())
        return dict(model=best, models=counts)

    rec = runner.run('map', fp, 'incremental mapping', mapping, outputs=(raw,),
                     total=len(names))
    model_dir = raw / str(rec['model'])
    report: dict[str, Any] = dict(
        input=str(opts.source), kind=opts.kind, scene=str(opts.out), images_given=len(names),
        **extra, camera_model=opts.camera_model, single_camera=single, matcher=opts.matcher,
        max_size=opts.max_size, num_threads=threads, pycolmap=pycolmap.__version__,
        models_registered_images=rec['models'],
        images_without_overlap=[n for n, k in links.items() if k == 0])
    report.update(model_summary(model_dir, names))
    report_path = opts.out / 'report.json'
    registered = report['images_registered']
    if registered < max(MIN_IMAGES, opts.min_registered * len(names)):
        report.update(stages=runner.times, status='too few registered')
        write_report(report_path, report)
        missing = report['not_registered']
        raise ProcessError(
            f'only {registered} of {len(names)} images registered (fewer than '
            f'--min-registered {opts.min_registered:g}); not registered: '
            f'{", ".join(missing[:20])}{" ..." if len(missing) > 20 else ""}. These views '
            'overlap too little with the rest: add photos between them, or remove them; to '
            'keep the partial model anyway, rerun with --min-registered 0 (finished stages '
            f'are reused). Details: {report_path}')

    fp = fingerprint(fp, 'undistort')
    runner.run('undistort', fp, f'undistort {registered} images to PINHOLE', lambda t: (
        sfm.undistort(model_dir, image_dir, opts.out, threads)),
        outputs=(opts.out / 'images', opts.out / 'sparse' / '0'))
    report.update(stages=runner.times, status='ok',
                  total_seconds=round(sum(v['seconds'] for v in runner.times.values()), 2))
    write_report(report_path, report)
    display.note(format_summary(report))
    display.note(f'scene ready: {opts.out}  (train: nerfreg-train '
                 'configs/gaussian_splatting/colmap.py --cfg-options '
                 f'data.data_root={opts.out})')
    return report
