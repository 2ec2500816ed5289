"""nerfreg-process without a reconstruction: frame choice, pose comparison, bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nerfreg.process import frames
from nerfreg.process.align import compare_poses, umeyama
from nerfreg.process.cli import main
from nerfreg.process.state import StageState, files_fingerprint, fingerprint

REPO = Path(__file__).resolve().parents[1]


def _texture(seed: int, size=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob('*')}


def _run(capsys, *argv: str) -> str:
    """Run the CLI, expect exit code 1 with one error paragraph; return it."""
    assert main(list(argv) + ['--quiet']) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'Traceback' not in err
    return err


def test_sharpness_ranks_blur():
    img = _texture(0)
    scores = [frames.sharpness(cv2.GaussianBlur(img, (0, 0), s)) if s else frames.sharpness(img)
              for s in (0, 1.0, 2.0, 4.0)]
    assert scores == sorted(scores, reverse=True) and scores[0] > 5 * scores[-1]


def test_video_frame_choice_picks_the_sharp_frame_of_each_window(tmp_path):
    # 6 windows of 5 frames; in each, one frame (at a varying position) is sharp
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10, (160, 120))
    sharp = []
    for w in range(6):
        base, pos = _texture(w), (2 * w + 1) % 5
        for k in range(5):
            writer.write(base if k == pos else cv2.GaussianBlur(base, (0, 0), 2.5))
        sharp.append(5 * w + pos)
    writer.release()
    scores = frames.score_frames(video)
    assert len(scores) == 30
    assert frames.pick_frames(scores, 6) == sharp
    names = frames.write_frames(video, sharp, tmp_path / 'out')
    assert names == [f'frame_{k:05d}.jpg' for k in range(1, 7)]
    got = cv2.imread(str(tmp_path / 'out' / names[2]))
    assert got.shape == (120, 160, 3)
    assert frames.pick_frames(scores, 50) == list(range(30))  # fewer frames than asked


def test_pick_frames_spreads_windows_evenly():
    scores = np.zeros(100)
    picked = frames.pick_frames(scores, 10)
    assert picked == list(range(0, 100, 10))  # ties: first of each window


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))
    dst = 2.5 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = umeyama(src, dst)
    assert s == pytest.approx(2.5, abs=1e-9)
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(t, [1.0, -2.0, 0.5], atol=1e-9)


def _rot(axis: int, deg: float) -> np.ndarray:
    a, (i, j) = np.radians(deg), [(1, 2), (0, 2), (0, 1)][axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = np.cos(a)
    r[i, j], r[j, i] = -np.sin(a), np.sin(a)
    return r


def test_compare_poses_sees_through_a_similarity_and_measures_errors():
    rng = np.random.default_rng(2)
    ref = {f'{i}.jpg': (_rot(i % 3, 10.0 * i), rng.normal(size=3)) for i in range(12)}
    sim_r, sim_s, sim_t = _rot(2, 40.0) @ _rot(0, 25.0), 0.3, np.array([5.0, 1.0, -2.0])
    # a world change x' = s R x + t maps centres that way and w2c rotations to R_c R^T
    est = {n: (r @ sim_r.T, sim_s * sim_r @ c + sim_t) for n, (r, c) in ref.items()}
    out = compare_poses(est, ref)
    assert out['centre_rms_rel'] < 1e-9 and out['rotation_max_deg'] < 1e-4
    assert out['scale'] == pytest.approx(1 / sim_s)
    tilted = dict(est, **{'3.jpg': (_rot(1, 2.0) @ est['3.jpg'][0], est['3.jpg'][1])})
    out = compare_poses(tilted, ref)
    assert out['rotation_max_deg'] == pytest.approx(2.0, abs=1e-4)
    assert out['rotation_median_deg'] < 1e-4
    exact = compare_poses(est, ref, orientation_weight=1.0)
    assert exact['centre_rms_rel'] < 1e-9 and exact['rotation_max_deg'] < 1e-4
    assert exact['scale'] == pytest.approx(1 / sim_s)


def test_pose_alignment_spreads_a_global_rotation_offset_over_centres_and_orientations():
    """Orientations all turned by 1 degree about one axis (centres exact): the centre-only
    alignment charges every camera 1 degree; the pose alignment splits the offset between
    the two, and more weight on orientations moves more of it into the centres."""
    rng = np.random.default_rng(3)
    ref = {f'{i}.jpg': (_rot(i % 3, 15.0 * i), rng.normal(size=3)) for i in range(30)}
    est = {n: (r @ _rot(2, 1.0).T, c) for n, (r, c) in ref.items()}
    centre_only = compare_poses(est, ref)
    assert centre_only['rotation_median_deg'] == pytest.approx(1.0, abs=1e-6)
    assert centre_only['centre_rms_rel'] < 1e-9
    figures = [compare_poses(est, ref, orientation_weight=w) for w in (0.5, 2.0, 1e6)]
    rot = [f['rotation_median_deg'] for f in figures]
    centre = [f['centre_rms_rel'] for f in figures]
    assert 1.0 > rot[0] > rot[1] > rot[2] and rot[2] < 1e-3
    assert 0 < centre[0] < centre[1] < centre[2]


def test_stage_markers_chain_and_notice_changed_files(tmp_path):
    (tmp_path / 'a.jpg').write_bytes(b'1')
    fp1 = files_fingerprint(tmp_path, ['a.jpg'])
    state = StageState(tmp_path / 'work')
    state.finish('extract', fingerprint(fp1, 'x'), 1.0)
    assert StageState(tmp_path / 'work').done('extract', fingerprint(fp1, 'x'))
    (tmp_path / 'a.jpg').write_bytes(b'22')
    assert files_fingerprint(tmp_path, ['a.jpg']) != fp1
    assert not StageState(tmp_path / 'work').done('extract', fingerprint(fp1, 'y'))


# --- bad inputs: one clear message, nothing written outside --out --------------------------

@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / 'photos'
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f'{i}.jpg'), _texture(i))
    return folder


def test_empty_folder(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    err = _run(capsys, 'images', str(tmp_path / 'empty'), '--out', str(tmp_path / 'scene'))
    assert 'contains no images' in err and 'empty' in err
    assert _tree(tmp_path) == {'empty'}


def test_missing_folder(tmp_path, capsys):
    err = _run(capsys, 'images', str(tmp_path / 'nope'), '--out', str(tmp_path / 'scene'))
    assert 'does not exist' in err and not (tmp_path / 'scene').exists()


def test_two_images(photos, tmp_path, capsys):
    for name in ('2.jpg', '3.jpg'):
        (photos / name).unlink()
    before = _tree(tmp_path)
    err = _run(capsys, 'images', str(photos), '--out', str(tmp_path / 'scene'))
    assert 'only 2 image(s)' in err and 'at least 3' in err
    assert _tree(tmp_path) == before


def test_corrupt_image_is_named(photos, tmp_path, capsys):
    (photos / '2.jpg').write_bytes(b'\xff\xd8 this is not a jpeg')
    before = _tree(tmp_path)
    err = _run(capsys, 'images', str(photos), '--out', str(tmp_path / 'scene'))
    assert '2.jpg' in err and 'cannot be read' in err and 're-export' in err
    assert _tree(tmp_path) == before


def test_unreadable_video(tmp_path, capsys):
    video = tmp_path / 'broken.mp4'
    video.write_bytes(b'not a video' * 100)
    err = _run(capsys, 'video', str(video), '--out', str(tmp_path / 'scene'))
    assert 'broken.mp4' in err and 'cannot be opened' in err and 'ffmpeg' in err
    assert _tree(tmp_path) == {'broken.mp4'}


def test_video_without_frames(tmp_path, capsys):
    video = tmp_path / 'empty.mp4'
    cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10, (64, 48)).release()
    err = _run(capsys, 'video', str(video), '--out', str(tmp_path / 'scene'))
    assert 'empty.mp4' in err and 'no frames' in err
    assert _tree(tmp_path) == {'empty.mp4'}


def test_missing_video(tmp_path, capsys):
    err = _run(capsys, 'video', str(tmp_path / 'x.mp4'), '--out', str(tmp_path / 'scene'))
    assert 'x.mp4 does not exist' in err


def test_vocab_matcher_needs_a_tree(photos, tmp_path, capsys):
    err = _run(capsys, 'images', str(photos), '--out', str(tmp_path / 'scene'),
               '--matcher', 'vocab')
    assert '--vocab-tree' in err and 'never downloads' in err
    assert not (tmp_path / 'scene').exists()


def test_out_folder_with_foreign_content_is_refused(photos, tmp_path, capsys):
    out = tmp_path / 'scene'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    err = _run(capsys, 'images', str(photos), '--out', str(out))
    assert 'not empty' in err and _tree(out) == {'notes.txt'}


def test_pycolmap_missing(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'pycolmap', None)  # makes `import pycolmap` fail
    err = _run(capsys, 'images', str(photos), '--out', str(tmp_path / 'scene'))
    assert 'pip install "nerfreg[colmap]"' in err
    assert not (tmp_path / 'scene').exists()


def test_nothing_imports_pycolmap_at_import_time():
    code = ('import sys, nerfreg.process.cli, nerfreg.process.pipeline, nerfreg.process.align; '
            'assert "pycolmap" not in sys.modules, "pycolmap imported"')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO)


def test_no_overlap(tmp_path, capsys):
    folder = tmp_path / 'noise'
    folder.mkdir()
    for i in range(4):  # unrelated textures: features, but no shared scene
        cv2.imwrite(str(folder / f'{i}.png'), _texture(100 + i, (200, 200)))
    err = _run(capsys, 'images', str(folder), '--out', str(tmp_path / 'scene'),
               '--num-threads', '2')
    assert 'not enough overlap' in err and '60-80%' in err
    assert _tree(tmp_path) - {'noise', *(f'noise/{i}.png' for i in range(4))} <= {
        'scene', *(f'scene/{p}' for p in _tree(tmp_path / 'scene'))}


def test_old_pycolmap_is_refused(photos, tmp_path, capsys, monkeypatch):
    import types
    monkeypatch.setitem(sys.modules, 'pycolmap', types.SimpleNamespace(__version__='3.10.0'))
    err = _run(capsys, 'images', str(photos), '--out', str(tmp_path / 'scene'))
    assert '3.10.0' in err and 'pycolmap>=4.2' in err
