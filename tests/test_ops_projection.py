"""EWA projection: pinhole means, covariance/conic/radius formulas, culling rules."""

from __future__ import annotations

import math

import numpy as np
import torch

from nerfreg.ops import project_gaussians
from nerfreg.ops.projection import quat_to_rotmat

F64 = torch.float64


def camera(rot: np.ndarray | None = None, t=(0.0, 0.0, 0.0), f=(100.0, 120.0),
           c=(64.0, 48.0)):
    vm = torch.eye(4, dtype=F64)
    if rot is not None:
        vm[:3, :3] = torch.tensor(rot, dtype=F64)
    vm[:3, 3] = torch.tensor(t, dtype=F64)
    K = torch.tensor([[f[0], 0, c[0]], [0, f[1], c[1]], [0, 0, 1]], dtype=F64)
    return vm[None], K[None]


def rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def project(means, quats, scales, vm, K, w=128, h=96, **kw):
    return project_gaussians(torch.as_tensor(np.asarray(means), dtype=F64),
                             torch.as_tensor(np.asarray(quats), dtype=F64),
                             torch.as_tensor(np.asarray(scales), dtype=F64), vm, K, w, h, **kw)


def test_quaternion_rotation_matrix():
    # wxyz: 90 degrees about z maps x -> y; non-unit quaternions are normalised
    q = torch.tensor([[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]], dtype=F64) * 3.0
    torch.testing.assert_close(quat_to_rotmat(q)[0], torch.tensor(rot_z(90), dtype=F64))


def test_mean_projects_with_pinhole_formula():
    rot = rot_z(30) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    vm, K = camera(rot, t=(0.2, -0.1, 3.0))
    world = np.array([[0.3, 1.1, -0.4], [-0.2, 0.5, 0.1]])
    radii, means2d, depths, _ = project(world, [[1, 0, 0, 0]] * 2, [[0.01] * 3] * 2, vm, K)
    cam = world @ rot.T + np.array([0.2, -0.1, 3.0])
    u = 100.0 * cam[:, 0] / cam[:, 2] + 64.0
    v = 120.0 * cam[:, 1] / cam[:, 2] + 48.0
    np.testing.assert_allclose(means2d[0].numpy(), np.stack([u, v], -1), atol=1e-10)
    np.testing.assert_allclose(depths[0].numpy(), cam[:, 2], atol=1e-12)
    assert torch.all(radii > 0)


def test_isotropic_gaussian_covariance_conic_and_radius():
    """On the optical axis: cov2d = (f s / z)^2 I + 0.3 I (per axis focal length)."""
    vm, K = camera()
    s, z = 0.05, 2.0
    radii, means2d, _, conics = project([[0.0, 0.0, z]], [[0.3, 0.1, -0.7, 0.2]],
                                        [[s, s, s]], vm, K)
    var_x = (100.0 * s / z) ** 2 + 0.3
    var_y = (120.0 * s / z) ** 2 + 0.3
    np.testing.assert_allclose(conics[0, 0].numpy(), [1 / var_x, 0.0, 1 / var_y], atol=1e-12)
    assert radii[0, 0].item() == math.ceil(3 * math.sqrt(max(var_x, var_y)))
    np.testing.assert_allclose(means2d[0, 0].numpy(), [64.0, 48.0])


def test_anisotropic_radius_is_three_sigma_of_largest_eigenvalue():
    vm, K = camera(rot_z(10), t=(0.1, 0.0, 0.5))
    rng = np.random.default_rng(0)
    means = np.concatenate([rng.uniform(-0.5, 0.5, (20, 2)), rng.uniform(2, 4, (20, 1))], 1)
    quats = rng.normal(size=(20, 4))
    scales = rng.uniform(0.01, 0.3, (20, 3))
    radii, _, _, conics = project(means, quats, scales, vm, K, eps2d=0.7)
    a, b, c = conics[0].unbind(-1)
    conic_m = torch.stack([a, b, b, c], -1).reshape(-1, 2, 2)
    cov2d = torch.linalg.inv(conic_m)
    lam = torch.linalg.eigvalsh(cov2d)[:, -1]
    assert torch.all(lam >= 0.7 - 1e-9)  # eps2d low-pass is included
    torch.testing.assert_close(radii[0].to(F64), torch.ceil(3 * lam.sqrt()))


def test_covariance_is_the_ewa_jacobian_sandwich():
    """Off axis but inside the FOV: cov2d = J W Sigma W^T J^T + eps I, J at the mean."""
    rot = rot_z(25)
    vm, K = camera(rot, t=(0.0, 0.0, 1.0))
    quat = np.array([0.8, 0.2, -0.4, 0.3])
    scale = np.array([0.2, 0.05, 0.1])
    mean = np.array([0.4, -0.3, 2.0])
    _, _, _, conics = project([mean], [quat], [scale], vm, K)
    r = quat_to_rotmat(torch.tensor(quat, dtype=F64)).numpy()
    sigma = r @ np.diag(scale ** 2) @ r.T
    p = rot @ mean + np.array([0.0, 0.0, 1.0])
    jac = np.array([[100 / p[2], 0, -100 * p[0] / p[2] ** 2],
                    [0, 120 / p[2], -120 * p[1] / p[2] ** 2]])
    cov2d = jac @ rot @ sigma @ rot.T @ jac.T + 0.3 * np.eye(2)
    inv = np.linalg.inv(cov2d)
    np.testing.assert_allclose(conics[0, 0].numpy(), [inv[0, 0], inv[0, 1], inv[1, 1]],
                               rtol=1e-10)


def test_jacobian_uses_mean_clamped_to_1p3_fov():
    """A big Gaussian outside the FOV (still overlapping the image) is projected with the
    Jacobian evaluated at x/z clamped to 1.3 tan(fov_x / 2) (centred principal point)."""
    vm, K = camera(f=(100.0, 100.0), c=(64.0, 48.0))
    mean = np.array([2.0, 0.0, 2.0])  # x/z = 1.0 > 1.3 * 0.64
    scale = np.array([0.6, 0.3, 0.4])
    radii, means2d, _, conics = project([mean], [[1, 0, 0, 0]], [scale], vm, K)
    assert means2d[0, 0, 0] > 128 and radii[0, 0] > 0
    u = 1.3 * 64.0 / 100.0
    z = 2.0
    jac = np.array([[100 / z, 0, -100 * u / z], [0, 100 / z, 0.0]])
    cov2d = jac @ np.diag(scale ** 2) @ jac.T + 0.3 * np.eye(2)
    inv = np.linalg.inv(cov2d)
    np.testing.assert_allclose(conics[0, 0].numpy(), [inv[0, 0], inv[0, 1], inv[1, 1]],
                               rtol=1e-10)


def test_culling_rules():
    vm, K = camera()
    means = [
        [0.0, 0.0, 2.0],     # visible
        [0.0, 0.0, -2.0],    # behind the camera
        [0.0, 0.0, 0.005],   # in front of the near plane
        [0.0, 0.0, 50.0],    # beyond the far plane below
        [30.0, 0.0, 2.0],    # far off-screen to the right
    ]
    radii, means2d, _, conics = project(means, [[1, 0, 0, 0]] * 5, [[0.05] * 3] * 5, vm, K,
                                        near_plane=0.01, far_plane=40.0)
    assert radii[0].tolist()[0] > 0 and radii[0].tolist()[1:] == [0, 0, 0, 0]
    assert radii.dtype == torch.int32
    # culled by depth: no garbage (inf / nan) leaks into meta
    assert torch.isfinite(means2d).all() and torch.isfinite(conics).all()
    assert torch.all(conics[0, 1:4] == 0)
    # radius_clip culls small splats
    r_small, *_ = project([[0.0, 0.0, 2.0]], [[1, 0, 0, 0]], [[0.001] * 3], vm, K,
                          radius_clip=2.0)
    assert r_small[0, 0] == 0


def test_behind_camera_gaussian_gets_no_nan_gradients():
    vm, K = camera()
    means = torch.tensor([[0.1, 0.0, 2.0], [0.0, 0.0, 0.0]], dtype=F64, requires_grad=True)
    radii, means2d, depths, conics = project_gaussians(
        means, torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=F64), torch.full((2, 3), 0.1,
                                                                       dtype=F64), vm, K, 128, 96)
    (means2d.sum() + conics.sum()).backward()
    assert radii[0, 1] == 0
    assert torch.isfinite(means.grad).all() and torch.all(means.grad[1] == 0)
    assert means.grad[0].abs().sum() > 0


def test_multiple_cameras_are_independent():
    vm1, K1 = camera()
    vm2, K2 = camera(rot_z(40), t=(0.3, 0.2, 1.0), f=(80.0, 90.0), c=(60.0, 50.0))
    means = [[0.2, -0.1, 2.5], [0.0, 0.3, 3.0]]
    q, s = [[1, 0.1, 0.2, 0.3]] * 2, [[0.05, 0.1, 0.02]] * 2
    both = project(means, q, s, torch.cat([vm1, vm2]), torch.cat([K1, K2]))
    one = project(means, q, s, vm2, K2)
    for x, y in zip(both, one):
        torch.testing.assert_close(x[1:], y)
