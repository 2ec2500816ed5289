"""The viewer server under faults: several browsers at once, a browser leaving while its
frame renders, and Ctrl-C on ``nerfreg-view``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from _viewer_utils import REPO, start_chromium

pytestmark = pytest.mark.slow


def _scene(n: int = 500):
    from nerfreg.models.gaussian_splatting import GaussianSplatting
    from nerfreg.renderers.gaussian_renderer import GaussianSplatRenderer
    torch.manual_seed(0)
    model = GaussianSplatting(sh_degree=1, init_opacity=0.8)
    points = torch.randn(n, 3) * 0.3
    model.init_from_points(points, torch.rand(n, 3))
    return model, GaussianSplatRenderer(backend='cpu')


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)


def test_two_browsers_and_one_leaving_mid_render(tmp_path):
    from nerfreg.viewer.camera import ViewPose
    from nerfreg.viewer.frustums import move_client_camera
    from nerfreg.viewer.render import SceneSource
    from nerfreg.viewer.server import ViewerServer, look_at_pose

    class SlowSource(SceneSource):
        """Renders take at least 1.5 s while ``slow`` is set, so a tab can close mid-render."""
        slow = False
        rendering = False

        def render(self, *args, **kwargs):
            self.rendering = True
            try:
                if self.slow:
                    time.sleep(1.5)
                return super().render(*args, **kwargs)
            finally:
                self.rendering = False

    model, renderer = _scene()
    source = SlowSource(model, renderer)
    viewer = ViewerServer(source, port=0, initial_pose=look_at_pose(np.zeros(3), 2.0),
                          max_side=200)
    driver = start_chromium(tmp_path / 'profile')
    try:
        driver.get(viewer.url)
        first_tab = driver.current_window_handle
        _wait(lambda: viewer.num_clients == 1, 60, 'the first browser')
        driver.switch_to.new_window('tab')
        driver.get(viewer.url)
        _wait(lambda: viewer.num_clients == 2, 60, 'the second browser')
        loops = list(viewer.loops.values())
        for loop in loops:
            assert loop.wait_for_frame(lambda r: True, 90) is not None, 'a browser got no frame'

        # the second tab leaves while its frame is being rendered
        leaving = loops[-1]
        source.slow = True
        move_client_camera(leaving.client, look_at_pose(np.array([0.3, 0.0, 0.0]), 2.5))
        _wait(lambda: source.rendering, 30, 'a render to start')
        driver.close()
        driver.switch_to.window(first_tab)
        _wait(lambda: viewer.num_clients == 1, 30, 'the server to notice the tab left')
        _wait(lambda: not leaving.alive, 30, "the left tab's render loop to end")
        source.slow = False

        # the remaining browser is still served: a new camera gives a new frame
        staying = loops[0]
        target = look_at_pose(np.array([0.0, 0.2, 0.0]), 1.5)
        move_client_camera(staying.client, target)
        record = staying.wait_for_frame(
            lambda r: not r.moving and np.allclose(r.pose.position, target.position, atol=1e-4),
            60)
        assert record is not None, 'the remaining browser was not served after the other left'
        assert ViewPose.from_viser(staying.client.camera).fov == pytest.approx(target.fov)
    finally:
        driver.quit()
        viewer.close()


def test_ctrl_c_stops_nerfreg_view_cleanly(tmp_path):
    from nerfreg.exporters import write_ply
    model, _ = _scene(200)
    ply = write_ply(model, tmp_path / 'scene.ply')
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, 'tools/view.py', str(ply), '--port', str(port),
                             '--device', 'cpu'], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if 'nerfreg viewer:' in line or (not line and proc.poll() is not None):
                break
        assert any(f'http://localhost:{port}' in s for s in seen), ''.join(seen)
        assert '200 Gaussians' in ''.join(seen)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'Viewer stopped.' in out and 'Traceback' not in out, out
    with socket.socket() as sock:  # the port is free again
        sock.bind(('127.0.0.1', port))
