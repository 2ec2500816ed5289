"""Interactive web viewer (viser): explore a checkpoint or PLY, or watch training live.

Importing this package does not import viser; starting a :class:`ViewerServer` does.
"""

from .camera import ViewPose, cameras_to_poses, pose_to_cameras
from .path_file import read_camera_path, write_camera_path
from .render import SceneSource, ViewSettings, render_view

__all__ = ['SceneSource', 'ViewPose', 'ViewSettings', 'cameras_to_poses', 'pose_to_cameras',
           'read_camera_path', 'render_view', 'write_camera_path']
