"""Cameras (OpenCV axes, world-to-camera) and conversions from other conventions."""

from .cameras import Cameras
from .conventions import (
                          OPENGL_TO_OPENCV,
                          opencv_w2c_to_opengl_c2w,
                          opengl_c2w_to_opencv_w2c,
                          qvec_to_rotmat,
                          rotmat_to_qvec,
)

__all__ = ['Cameras', 'OPENGL_TO_OPENCV', 'opencv_w2c_to_opengl_c2w', 'opengl_c2w_to_opencv_w2c',
           'qvec_to_rotmat', 'rotmat_to_qvec']
