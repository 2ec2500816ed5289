"""Viewer parts that need no browser: camera conversion (reprojection against viser's own
transforms), path files, the moving-resolution controller, bad inputs, lazy viser import."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.viewer.camera import ViewPose, cameras_to_poses, pose_to_cameras
from nerfreg.viewer.path_file import read_camera_path, write_camera_path
from nerfreg.viewer.render_loop import MovingResolution

REPO = Path(__file__).resolve().parents[1]

def _random_pose(rng: np.random.Generator) -> ViewPose:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return ViewPose(tuple(q.tolist()), tuple(rng.normal(size=3).tolist()),
                    fov=float(rng.uniform(0.4, 1.4)), aspect=float(rng.uniform(0.6, 2.0)))


def test_viewport_camera_reprojects_like_viser_transforms():
    import viser.transforms as vtf
    rng = np.random.default_rng(0)
    for _ in range(5):
        pose = _random_pose(rng)
        width, height = pose.image_size(400)
        cams = pose_to_cameras(pose, width, height)
        # points in front of the camera, built in its frame and moved to the world by viser
        c2w = vtf.SE3.from_rotation_and_translation(vtf.SO3(np.asarray(pose.wxyz)),
                                                    np.asarray(pose.position))
        local = np.concatenate([rng.uniform(-1, 1, (50, 2)), rng.uniform(1, 5, (50, 1))], 1)
        world = np.stack([c2w.apply(p) for p in local])
        uv, z = cams.project(torch.tensor(world, dtype=torch.float32))
        f = 0.5 * height / math.tan(0.5 * pose.fov)
        expected = np.stack([f * local[:, 0] / local[:, 2] + width / 2,
                             f * local[:, 1] / local[:, 2] + height / 2], 1)
        np.testing.assert_allclose(uv[0].numpy(), expected, atol=2e-3 * width)
        np.testing.assert_allclose(z[0].numpy(), local[:, 2], rtol=1e-4)


def test_cameras_round_trip_through_viewport_poses():
    rng = np.random.default_rng(1)
    poses = [_random_pose(rng) for _ in range(4)]
    cams = Cameras.cat([pose_to_cameras(p, 320, 200) for p in poses])
    back = cameras_to_poses(cams)
    for a, b in zip(poses, back):
        assert abs(abs(np.dot(a.wxyz, b.wxyz)) - 1.0) < 1e-5
        np.testing.assert_allclose(a.position, b.position, atol=1e-4)
        assert b.fov == pytest.approx(a.fov, rel=1e-5)
        assert b.aspect == pytest.approx(320 / 200)
    again = Cameras.cat([pose_to_cameras(p, 320, 200) for p in back])
    torch.testing.assert_close(again.R, cams.R, atol=1e-5, rtol=0)
    torch.testing.assert_close(again.t, cams.t, atol=1e-4, rtol=0)


def test_path_file_passes_through_keyframes_and_reads_back(tmp_path):
    rng = np.random.default_rng(2)
    keys = [_random_pose(rng) for _ in range(3)]
    path = write_camera_path(tmp_path / 'sub' / 'path.json', keys, 30, 64, 48, fps=24)
    cams, fps = read_camera_path(path)
    assert len(cams) == 30 and fps == 24.0
    assert int(cams.width[0]) == 64 and int(cams.height[0]) == 48
    for i, key in ((0, keys[0]), (29, keys[-1])):
        ref = pose_to_cameras(key, 64, 48)
        torch.testing.assert_close(cams.centers()[i], ref.centers()[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(cams.R[i], ref.R[0], atol=1e-4, rtol=0)
    (tmp_path / 'bad.json').write_text('{"frames": []}')
    with pytest.raises(ValueError, match='not a nerfreg camera path'):
        read_camera_path(tmp_path / 'bad.json')
    with pytest.raises(ValueError, match='no keyframes'):
        write_camera_path(tmp_path / 'empty.json', [], 10, 64, 48)


def test_moving_resolution_fits_the_frame_budget():
    ctl = MovingResolution(target_fps=10.0)
    fixed, per_pixel = 0.02, 4e-7  # a renderer: 20 ms + 0.4 us per pixel
    side = 640
    for _ in range(40):
        w, h = side, side * 3 // 4
        ctl.update(w * h, fixed + per_pixel * w * h)
        side = ctl.side(640, 4 / 3)
    w, h = side, side * 3 // 4
    assert fixed + per_pixel * w * h <= 0.1 * 1.05
    assert side >= 400  # and not needlessly small (the exact fit is 516)
    slow = MovingResolution(target_fps=10.0)
    slow.update(640 * 480, 5.0)
    assert slow.side(640, 4 / 3) == slow.min_side


def test_plain_point_cloud_ply_names_the_missing_properties(tmp_path, capsys):
    from plyfile import PlyData, PlyElement

    from nerfreg.cli.view import main
    from nerfreg.viewer.loader import load_scene
    vertices = np.zeros(10, dtype=[('x', 'f4'), ('y', 'f4'), ('z', 'f4'), ('red', 'u1'),
                                   ('green', 'u1'), ('blue', 'u1')])
    path = tmp_path / 'points.ply'
    PlyData([PlyElement.describe(vertices, 'vertex')]).write(str(path))
    with pytest.raises(ValueError, match=r"lacks \['f_dc_0'.*'opacity'.*'rot_3'\]"):
        load_scene(None, path)
    assert main([str(path), '--port', '0']) == 1
    assert "lacks ['f_dc_0'" in capsys.readouterr().err


def test_port_in_use_says_use_another_port(tmp_path, capsys):
    from nerfreg.cli.view import main
    from nerfreg.exporters import write_ply
    from nerfreg.models.gaussian_splatting import GaussianSplatting
    from nerfreg.viewer.render import SceneSource
    from nerfreg.viewer.server import PortInUseError, ViewerServer
    model = GaussianSplatting(sh_degree=1)
    model.init_from_points(torch.rand(50, 3), torch.rand(50, 3))
    ply = write_ply(model, tmp_path / 'scene.ply')
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=f'port {port} .*--port {port + 1}'):
            ViewerServer(SceneSource(model, None), port=port)
        assert main([str(ply), '--port', str(port)]) == 1
    err = capsys.readouterr().err
    assert 'already in use' in err and '--port' in err


def test_nerfreg_imports_and_hook_module_do_not_import_viser():
    code = ('import sys, nerfreg.viewer, nerfreg.viewer.hook, nerfreg.engine; '
            'assert "viser" not in sys.modules, "viser imported"')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def _small_scene(n: int = 300):
    from nerfreg.models.gaussian_splatting import GaussianSplatting
    from nerfreg.renderers.gaussian_renderer import GaussianSplatRenderer
    model = GaussianSplatting(sh_degree=2, init_opacity=0.9, background='black')
    model.init_from_points(torch.randn(n, 3) * 0.2, torch.rand(n, 3))
    with torch.no_grad():
        model.params['shN'].normal_(0.0, 0.3)
        model.params['scales'].fill_(math.log(0.03))  # small blobs: the corners stay empty
    model.set_step(10_000)
    return model.eval(), GaussianSplatRenderer(backend='cpu')


def test_render_controls_change_the_frame_as_asked():
    from nerfreg.viewer.render import ViewSettings, render_view
    from nerfreg.viewer.server import look_at_pose
    model, renderer = _small_scene()
    pose = look_at_pose(np.zeros(3), 1.5)
    rgb = render_view(model, renderer, pose, 64, 48, ViewSettings())
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    corner = (0, 0)  # empty space: the background
    assert rgb[corner].tolist() == [0, 0, 0]
    white = render_view(model, renderer, pose, 64, 48, ViewSettings(background=(1.0, 1.0, 1.0)))
    assert white[corner].tolist() == [255, 255, 255]
    opacity = render_view(model, renderer, pose, 64, 48, ViewSettings(mode='opacity'))
    assert opacity[24, 32, 0] > 200 and opacity[corner].tolist() == [0, 0, 0]
    assert (opacity[..., 0] == opacity[..., 1]).all()
    depth = render_view(model, renderer, pose, 64, 48, ViewSettings(mode='depth'))
    assert depth[24, 32].tolist() != [0, 0, 0] and depth[corner].tolist() == [0, 0, 0]
    sh0 = render_view(model, renderer, pose, 64, 48, ViewSettings(sh_degree=0))
    assert np.abs(sh0.astype(int) - rgb.astype(int)).max() > 10  # higher SH bands are used


def test_path_editor_exports_a_readable_path(tmp_path):
    from nerfreg.viewer.render import SceneSource
    from nerfreg.viewer.server import ViewerServer, look_at_pose
    model, renderer = _small_scene(50)
    with ViewerServer(SceneSource(model, renderer), port=0,
                      path_file=tmp_path / 'path.json') as viewer:
        editor = viewer.path_editor
        for x in (0.0, 0.5, 1.0):
            editor.add(look_at_pose(np.array([x, 0.0, 0.0]), 2.0))
        editor.remove_last()
        editor.add(look_at_pose(np.array([1.5, 0.0, 0.0]), 2.0))
        assert len(editor.keyframes) == 3
        path = editor.export()
    cams, fps = read_camera_path(path)
    assert len(cams) == 120 and fps == 30.0
    np.testing.assert_allclose(cams.centers()[-1].numpy(), [1.5, 0.0, -2.0], atol=1e-4)


def test_duty_cycle_is_shared_by_all_browsers():
    import threading
    import time

    from nerfreg.viewer.render import SceneSource, ViewSettings
    from nerfreg.viewer.server import look_at_pose
    model, renderer = _small_scene(100)
    source = SceneSource(model, renderer, max_duty=0.25)
    pose, settings = look_at_pose(np.zeros(3), 1.5), ViewSettings()
    source.render(pose, 32, 24, settings)  # warm-up
    spent: list[float] = []

    def browser():
        for _ in range(2):
            spent.append(source.render(pose, 32, 24, settings)[2])

    start = time.monotonic()
    threads = [threading.Thread(target=browser) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    # every render but the last is followed by 3x its time of rest, whoever asks next
    assert wall >= 0.95 * (sum(spent) + 3.0 * sum(spent[:-1]))


def test_train_viewer_flag_adds_the_viewer_hook():
    from nerfreg.cli.train import build_config, parse_args
    from nerfreg.registry import HOOKS
    cfg = build_config(parse_args([str(REPO / 'configs' / 'gaussian_splatting' / 'demo.py'),
                                   '--viewer', '8123']))
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'ViewerHook']
    assert hooks == [dict(type='ViewerHook', port=8123)]
    assert HOOKS.get('ViewerHook') is not None  # found without custom_imports
    plain = build_config(parse_args([str(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')]))
    assert not any(h['type'] == 'ViewerHook' for h in plain.get('custom_hooks') or [])
