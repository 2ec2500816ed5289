"""Cameras: conventions, round trips, downscaling and undistortion consistency."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras, qvec_to_rotmat, rotmat_to_qvec
from nerfreg.datasets.image_io import undistort_image, undistort_intrinsics


def random_qvecs(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.sign(q[:, :1])


def random_cameras(n: int = 8, seed: int = 0) -> Cameras:
    rng = np.random.default_rng(seed)
    return Cameras.from_colmap(random_qvecs(n, seed), rng.normal(size=(n, 3)),
                               fx=rng.uniform(300, 600, n), fy=rng.uniform(300, 600, n),
                               cx=rng.uniform(150, 250, n), cy=rng.uniform(100, 200, n),
                               width=400, height=300)


def test_quaternion_matches_pycolmap_and_round_trips():
    pycolmap = pytest.importorskip('pycolmap')
    q = random_qvecs(50)
    rot = qvec_to_rotmat(q)
    for i in range(5):  # pycolmap 4.x Rotation3d takes xyzw
        ref = pycolmap.Rotation3d(np.array([q[i, 1], q[i, 2], q[i, 3], q[i, 0]])).matrix()
        np.testing.assert_allclose(rot[i], ref, atol=1e-12)
    np.testing.assert_allclose(rotmat_to_qvec(rot), q, atol=1e-12)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)


def test_colmap_round_trip():
    q = random_qvecs(10, 1)
    t = np.random.default_rng(1).normal(size=(10, 3))
    cams = Cameras.from_colmap(q, t, fx=500, fy=500, cx=200, cy=150, width=400, height=300)
    q2, t2 = cams.to_colmap()
    np.testing.assert_allclose(q2, q, atol=1e-6)
    np.testing.assert_allclose(t2, t, atol=1e-6)


def test_opengl_round_trip_and_semantics():
    cams = random_cameras()
    c2w = cams.to_opengl_c2w()
    back = Cameras.from_opengl_c2w(c2w, fx=cams.fx, fy=cams.fy, cx=cams.cx, cy=cams.cy,
                                   width=cams.width, height=cams.height)
    torch.testing.assert_close(back.R, cams.R, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.t, cams.t, atol=1e-5, rtol=0)
    torch.testing.assert_close(c2w[:, :3, 3], cams.centers(), atol=1e-5, rtol=0)
    # an OpenGL camera at (0, 0, 5) with identity rotation looks down -z at the origin, y up
    gl = torch.eye(4)[None].clone()
    gl[0, 2, 3] = 5.0
    cam = Cameras.from_opengl_c2w(gl, fx=100, fy=100, cx=50, cy=40, width=100, height=80)
    uv, depth = cam.project(torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(uv[0, 0], torch.tensor([50.0, 40.0]))
    assert depth[0, 0] == pytest.approx(5.0)
    assert uv[0, 1, 1] < 40  # world +y (up) is up in the image
    assert uv[0, 2, 0] > 50  # world +x is right


def test_container_protocol():
    cams = random_cameras(6)
    assert len(cams) == 6 and cams.viewmats().shape == (6, 4, 4) and cams.Ks().shape == (6, 3, 3)
    sub = cams[torch.tensor([4, 1])]
    assert sub.names == [cams.names[4], cams.names[1]]
    torch.testing.assert_close(sub.R[0], cams.R[4])
    assert len(cams[2]) == 1 and len(cams[1:4]) == 3 and len(cams[[0, 5]]) == 2
    mask = torch.zeros(6, dtype=torch.bool)
    mask[[1, 3]] = True
    assert cams[mask].names == [cams.names[1], cams.names[3]]
    assert len(cams[np.int64(3)]) == 1 and len(cams[[]]) == 0
    assert cams.to('cpu').fx.device.type == 'cpu'
    vm = cams.viewmats()
    x = torch.randn(5, 3)
    cam_pts = (vm[:, :3, :3] @ x.T).transpose(1, 2) + vm[:, None, :3, 3]
    uv = cam_pts[..., :2] / cam_pts[..., 2:] @ torch.diag(torch.tensor([1.0, 1.0]))
    uv = uv * torch.stack([cams.fx, cams.fy], -1)[:, None] + torch.stack([cams.cx, cams.cy],
                                                                         -1)[:, None]
    torch.testing.assert_close(uv, cams.project(x)[0], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize('factor', [2, 4, 1.5, 3.7])
def test_scaled_matches_inter_area_resize(factor):
    """Pixel (i, j) has its centre at (i + 0.5, j + 0.5): cx' = cx * w'/w matches INTER_AREA."""
    w, h = 800, 600
    cams = Cameras.from_colmap(random_qvecs(1), np.zeros((1, 3)), fx=590.0, fy=580.0, cx=400.0,
                               cy=300.0, width=w, height=h)
    small = cams.scaled(factor)
    w2, h2 = round(w / factor), round(h / factor)
    assert (int(small.width[0]), int(small.height[0])) == (w2, h2)
    assert float(small.cx[0]) == pytest.approx(400.0 * w2 / w)
    assert float(small.fy[0]) == pytest.approx(580.0 * h2 / h)
    # an image whose value is the continuous x coordinate of each pixel centre
    ramp = np.broadcast_to((np.arange(w, dtype=np.float32) + 0.5)[None], (h, w)).copy()
    out = cv2.resize(ramp, (w2, h2), interpolation=cv2.INTER_AREA)
    expected = (np.arange(w2) + 0.5) * (w / w2)
    diff = (out[h2 // 2] - expected)[2:-2]
    assert abs(diff.mean()) < 2e-3  # no bias: the +0.5 pixel-centre convention holds
    # integer factors are exact; OpenCV's fractional area weights jitter by < 0.1 px
    assert np.abs(diff).max() < (2e-3 if float(factor).is_integer() else 0.1)
    # projections scale the same way
    pts = torch.tensor([[0.3, -0.2, 4.0], [-1.0, 0.5, 6.0]])
    uv, _ = Cameras.from_colmap(np.array([[1.0, 0, 0, 0]]), np.zeros((1, 3)), fx=590, fy=580,
                                cx=400, cy=300, width=w, height=h).project(pts)
    uv2, _ = Cameras.from_colmap(np.array([[1.0, 0, 0, 0]]), np.zeros((1, 3)), fx=590, fy=580,
                                 cx=400, cy=300, width=w, height=h).scaled(factor).project(pts)
    torch.testing.assert_close(uv2, uv * torch.tensor([w2 / w, h2 / h]), atol=1e-4, rtol=1e-5)


def _blob_image(centres: np.ndarray, w: int, h: int, sigma: float = 1.2) -> np.ndarray:
    """Gaussian blobs at ``centres`` given in our convention (pixel centre at i + 0.5)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w), np.float32)
    for u, v in centres:
        img += np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    return img


def _centroids(img: np.ndarray, guesses: np.ndarray, r: int = 5) -> np.ndarray:
    out = []
    for u, v in guesses:
        x0, y0 = int(u) - r, int(v) - r
        win = img[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1].astype(np.float64)
        ys, xs = np.mgrid[y0:y0 + 2 * r + 1, x0:x0 + 2 * r + 1] + 0.5
        out.append([(win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()])
    return np.array(out)


@pytest.mark.parametrize('fisheye', [False, True])
def test_undistorted_image_and_intrinsics_reproject_consistently(fisheye):
    w, h = 320, 240
    K = np.array([[260.0, 0, 165.0], [0, 255.0, 118.0], [0, 0, 1]])
    dist = (np.array([0.05, -0.02, 0.01, -0.005]) if fisheye
            else np.array([-0.25, 0.08, 0.001, -0.0015]))
    gx, gy = np.meshgrid(np.linspace(-0.45, 0.45, 6), np.linspace(-0.32, 0.32, 5))
    pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], 1) * 3.0
    k_cv = K.copy()
    k_cv[:2, 2] -= 0.5  # OpenCV puts pixel centres at integers
    if fisheye:
        uv_d = cv2.fisheye.projectPoints(pts[:, None], np.zeros(3), np.zeros(3), k_cv,
                                         dist)[0][:, 0]
    else:
        uv_d = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k_cv, dist)[0][:, 0]
    distorted = _blob_image(uv_d + 0.5, w, h)
    new_k = undistort_intrinsics(K, dist, w, h, fisheye)
    und = undistort_image(distorted, K, dist, new_k, fisheye)
    cam = Cameras.from_colmap(np.array([[1.0, 0, 0, 0]]), np.zeros((1, 3)), fx=new_k[0, 0],
                              fy=new_k[1, 1], cx=new_k[0, 2], cy=new_k[1, 2], width=w, height=h)
    uv_u = cam.project(torch.from_numpy(pts).float())[0][0].numpy()
    inside = (uv_u[:, 0] > 8) & (uv_u[:, 0] < w - 8) & (uv_u[:, 1] > 8) & (uv_u[:, 1] < h - 8)
    assert inside.sum() >= 20
    err = np.linalg.norm(_centroids(und, uv_u[inside]) - uv_u[inside], axis=1)
    assert err.max() < 0.15, err
    # the new intrinsics keep only valid pixels: undistorted corners map into the original
    corners = np.array([[0.5, 0.5], [w - 0.5, 0.5], [0.5, h - 0.5], [w - 0.5, h - 0.5]])
    rays = np.concatenate([(corners - new_k[:2, 2]) / np.diag(new_k)[:2], np.ones((4, 1))], 1)
    if fisheye:
        back = cv2.fisheye.projectPoints(rays[:, None], np.zeros(3), np.zeros(3), k_cv,
                                         dist)[0][:, 0]
    else:
        back = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k_cv, dist)[0][:, 0]
    back += 0.5
    assert np.all(back > -1) and np.all(back[:, 0] < w + 1) and np.all(back[:, 1] < h + 1)
