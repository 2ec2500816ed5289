"""The COLMAP camera ``nerfreg-process triangulate`` writes for a transforms.json frame
projects like OpenCV with the frame's intrinsics (every distortion kind, rescaled)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nerfreg.process.errors import ProcessError
from nerfreg.process.triangulate import colmap_camera


@pytest.mark.parametrize('kind', ['pinhole', 'opencv', 'opencv_k3', 'fisheye'])
def test_colmap_camera_projects_like_opencv_with_the_frame_intrinsics(kind):
    """The COLMAP camera made from a frame's intrinsics (declared at 2x the real image size)
    maps camera points to the same pixels as OpenCV with the intrinsics scaled by 1/2."""
    pycolmap = pytest.importorskip('pycolmap')
    dist = dict(pinhole=[0, 0, 0, 0], opencv=[0.06, -0.08, -0.001, 0.0005],
                opencv_k3=[0.06, -0.08, -0.001, 0.0005, 0.02],
                fisheye=[0.05, -0.02, 0.004, -0.001])[kind]
    intr = dict(fx=1400.0, fy=1390.0, cx=550.0, cy=970.0, w=1080, h=1920,
                dist=np.array(dist, float), fisheye=kind == 'fisheye')
    model, params = colmap_camera(intr, 540, 960)
    cam = pycolmap.Camera(model=model, width=540, height=960, params=params)
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-0.3, 0.3, (50, 2)), rng.uniform(1, 3, (50, 1))], 1)
    pts[:, :2] *= pts[:, 2:]
    k = np.array([[700.0, 0, 275.0], [0, 695.0, 485.0], [0, 0, 1]])
    zero = np.zeros(3)
    if kind == 'fisheye':
        ref, _ = cv2.fisheye.projectPoints(pts[:, None], zero, zero, k, intr['dist'])
    else:
        ref, _ = cv2.projectPoints(pts, zero, zero, k, intr['dist'])
    np.testing.assert_allclose(cam.img_from_cam(pts), ref[:, 0], atol=1e-6)
    with pytest.raises(ProcessError, match='aspect ratio'):
        colmap_camera(intr, 960, 540)  # rotated image


def test_triangulate_does_not_import_pycolmap_at_import_time():
    code = ('import sys, nerfreg.process.triangulate, nerfreg.process.cli; '
            'assert "pycolmap" not in sys.modules, "pycolmap imported"')
    subprocess.run([sys.executable, '-c', code], check=True,
                   cwd=Path(__file__).resolve().parents[1])
