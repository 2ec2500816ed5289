"""Camera paths (orbit, spiral, interpolate, slerp) and image helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.cameras.paths import (
    focus_point,
    interpolate_path,
    look_at,
    make_camera_path,
    orbit_path,
    quat_slerp,
    spiral_path,
)
from nerfreg.visualization.images import (
    colorize_depth,
    comparison_row,
    error_map,
    to_uint8,
    vconcat,
)

UP = np.array([0.0, 0.0, 1.0])  # a z-up world


def _ring(n: int = 8, radius: float = 4.0, height: float = 1.5) -> Cameras:
    """Cameras on a circle around (1, 2, 0.5), looking at it."""
    center = np.array([1.0, 2.0, 0.5])
    a = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.3
    eyes = center + np.stack([radius * np.cos(a), radius * np.sin(a), np.full(n, height)], 1)
    rot, t = look_at(eyes, center, UP)
    return Cameras(R=torch.tensor(rot, dtype=torch.float32), t=torch.tensor(t, dtype=torch.float32),
                   fx=30.0, fy=30.0, cx=16.0, cy=12.0, width=32, height=24)


def _project_center(cams: Cameras, point) -> torch.Tensor:
    uv, z = cams.project(torch.tensor(np.asarray(point)[None], dtype=torch.float32))
    assert bool((z > 0).all())
    return uv[:, 0]


def test_look_at_convention():
    rot, t = look_at(np.array([[0.0, -5.0, 0.0]]), np.zeros(3), UP)
    cams = Cameras(R=torch.tensor(rot).float(), t=torch.tensor(t).float(), fx=10.0, fy=10.0,
                   cx=8.0, cy=8.0, width=16, height=16)
    np.testing.assert_allclose(rot[0] @ rot[0].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(cams.centers()[0].numpy(), [0, -5, 0], atol=1e-6)
    uv = _project_center(cams, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(uv[0].numpy(), [8.0, 8.0], atol=1e-5)
    up_uv = _project_center(cams, [0.0, 0.0, 1.0])
    assert float(up_uv[0, 1]) < 8.0  # world up is image up (smaller v)


def test_orbit_matches_training_ring():
    train = _ring()
    assert np.allclose(focus_point(train), [1.0, 2.0, 0.5], atol=1e-4)
    path = orbit_path(train, n_frames=10)
    assert len(path) == 10 and path.names[0] == 'frame_00000'
    centers = path.centers().double().numpy()
    rel = centers - [1.0, 2.0, 0.5]
    np.testing.assert_allclose(rel[:, 2], 1.5, atol=1e-4)  # mean height
    np.testing.assert_allclose(np.linalg.norm(rel[:, :2], axis=1), 4.0, atol=1e-4)
    np.testing.assert_allclose(centers[0], train.centers()[0].numpy(), atol=1e-4)
    uv = _project_center(path, [1.0, 2.0, 0.5])
    np.testing.assert_allclose(uv.numpy(), np.tile([16.0, 12.0], (10, 1)), atol=1e-3)


def test_orbit_resolution_keeps_horizontal_fov():
    path = orbit_path(_ring(), n_frames=3, resolution=(64, 40))
    assert int(path.width[0]) == 64 and int(path.height[0]) == 40
    assert float(path.fx[0]) == pytest.approx(60.0) and float(path.fy[0]) == pytest.approx(60.0)
    assert float(path.cx[0]) == pytest.approx(32.0) and float(path.cy[0]) == pytest.approx(20.0)


def test_interpolate_passes_through_keyframes_with_slerp():
    train = _ring(4)
    path = interpolate_path(train, n_frames=13, order='given', max_keyframes=4)
    rot = path.R.double().numpy()
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.tile(np.eye(3), (13, 1, 1)),
                               atol=1e-5)
    np.testing.assert_allclose(path.R[0].numpy(), train.R[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(path.centers()[0].numpy(), train.centers()[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(path.centers()[-1].numpy(), train.centers()[-1].numpy(),
                               atol=1e-4)
    steps = np.linalg.norm(np.diff(path.centers().numpy(), axis=0), axis=1)
    assert steps.max() < 3 * steps.mean()  # no jumps


def test_quat_slerp_halfway():
    q0 = np.array([1.0, 0, 0, 0])
    q1 = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])  # 90 deg about z
    mid = quat_slerp(q0, q1, 0.5)
    np.testing.assert_allclose(mid, [np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)], atol=1e-12)
    np.testing.assert_allclose(quat_slerp(q0, -q1, 0.5), mid, atol=1e-12)  # shortest arc


def test_spiral_and_dispatch():
    # forward-facing: cameras on a small grid looking along +y
    xs, zs = np.meshgrid(np.linspace(-0.5, 0.5, 3), np.linspace(-0.3, 0.3, 2))
    eyes = np.stack([xs.ravel(), np.zeros(6), zs.ravel()], 1)
    rot, t = look_at(eyes, eyes + [0.0, 1.0, 0.0], UP)
    train = Cameras(R=torch.tensor(rot).float(), t=torch.tensor(t).float(), fx=20.0, fy=20.0,
                    cx=16.0, cy=16.0, width=32, height=32)
    assert focus_point(train) is None  # parallel axes
    points = np.stack([np.zeros(50), np.linspace(3, 6, 50), np.zeros(50)], 1)
    path = spiral_path(train, n_frames=9, points=points)
    assert len(path) == 9 and bool(torch.isfinite(path.R).all())
    forward = path.R[:, 2, :].numpy()
    assert (forward[:, 1] > 0.9).all()  # still facing the scene
    for kind in ('orbit', 'spiral', 'interpolate'):
        assert len(make_camera_path(kind, _ring(), 5)) == 5
    with pytest.raises(ValueError, match='unknown camera path'):
        make_camera_path('helix', train, 5)


def test_image_helpers():
    img = torch.rand(12, 10, 3)
    assert to_uint8(img).dtype == np.uint8 and to_uint8(img).shape == (12, 10, 3)
    dark = error_map(img, img)
    assert dark.shape == (12, 10, 3)
    assert int(dark.max()) == int(error_map(torch.zeros(2, 2, 3), torch.zeros(2, 2, 3)).max())
    bright = error_map(img, 1 - img)
    assert bright.mean() > dark.mean()
    depth = torch.linspace(1, 3, 120).reshape(12, 10, 1)
    alpha = torch.ones(12, 10, 1)
    alpha[0] = 0
    coloured = colorize_depth(depth, alpha)
    assert (coloured[0] == 0).all() and coloured[1:].std() > 0
    row = comparison_row(img, img, depth, alpha, title='v')
    assert row.shape[1] == 4 * 10 + 3 * 2 and row.shape[0] > 12
    assert vconcat([row, row[:, :20]]).shape[1] == row.shape[1]
