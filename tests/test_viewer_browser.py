"""The viewer in a real headless Chromium: the first frame matches a direct render of the
same camera, moving the camera through viser's API changes the frame accordingly, and
the page loads nothing from outside this machine."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from _viewer_utils import (
    network_hosts,
    psnr,
    save_doc_image,
    screenshot,
    settled_frame,
    start_chromium,
    trained_demo_scene,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope='session')
def trained_demo(tmp_path_factory):
    return trained_demo_scene(tmp_path_factory)


def _canvas_region(driver, record) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Screenshot of the canvas resized to the frame size, plus the canvas box."""
    x, y, w, h = (int(round(v)) for v in driver.execute_script(
        'const r = document.querySelector("canvas").getBoundingClientRect();'
        'return [r.x, r.y, r.width, r.height];'))
    shot = screenshot(driver)[y:y + h, x:x + w]
    if (w, h) != (record.width, record.height):
        shot = cv2.resize(shot, (record.width, record.height), interpolation=cv2.INTER_AREA)
    return shot, (x, y, w, h)


def _uncovered(image: np.ndarray) -> np.ndarray:
    """The part of the canvas no overlay covers (GUI panel on the right, notifications at
    the top left, the axes gizmo at the bottom left)."""
    h, w = image.shape[:2]
    return image[170:h - 20, 70:max(w - 400, 80)]


def _matches_direct_render(driver, scene, record, client, timeout=30.0) -> tuple[float, np.ndarray]:
    from nerfreg.viewer.camera import ViewPose
    from nerfreg.viewer.render import render_view
    pose = ViewPose.from_viser(client.camera)
    direct = render_view(scene.model, scene.renderer, pose, record.width, record.height,
                         record.settings)
    deadline = time.monotonic() + timeout
    best = -1.0
    while time.monotonic() < deadline:  # the browser shows the frame after a short delay
        shown, _ = _canvas_region(driver, record)
        best = max(best, psnr(_uncovered(shown), _uncovered(direct)))
        if best >= 25.0:
            break
        time.sleep(0.5)
    return best, shown


def test_browser_shows_the_rendered_view_and_follows_the_camera(trained_demo, tmp_path):
    from nerfreg.viewer.camera import cameras_to_poses
    from nerfreg.viewer.frustums import move_client_camera
    from nerfreg.viewer.launch import start_viewer
    from nerfreg.viewer.loader import load_scene
    cfg, ckpt = trained_demo
    scene = load_scene(cfg, ckpt, 'cpu')
    viewer = start_viewer(scene, port=0, max_side=1000)
    driver = start_chromium(tmp_path / 'profile')
    try:
        for frustum in viewer.frustums:  # they would be drawn over the rendered image
            frustum.visible = False
        driver.get(viewer.url)
        loop = viewer.wait_for_client(60)
        assert loop is not None, 'the browser did not connect'
        client = loop.client
        first = settled_frame(loop, client)
        score, shown_a = _matches_direct_render(driver, scene, first, client)
        assert score >= 25.0, f'first frame vs direct render: PSNR {score:.2f} dB'

        # move to another training camera through viser's Python API
        poses = cameras_to_poses(scene.cameras)
        target = poses[len(poses) // 2]
        move_client_camera(client, target)
        second = settled_frame(loop, client)
        assert np.allclose(second.pose.position, target.position, atol=1e-4)
        score_b, shown_b = _matches_direct_render(driver, scene, second, client)
        assert score_b >= 25.0, f'frame after the move vs direct render: PSNR {score_b:.2f} dB'
        assert psnr(_uncovered(shown_a), _uncovered(shown_b)) < 20.0, 'the frame did not change'

        hosts = network_hosts(driver)
        assert hosts and hosts <= {'localhost', '127.0.0.1'}, f'external requests: {hosts}'

        for frustum in viewer.frustums:
            frustum.visible = True
        time.sleep(1.0)
        save_doc_image(cv2.resize(screenshot(driver), None, fx=0.8, fy=0.8,
                                  interpolation=cv2.INTER_AREA), 'viewer.png')
    finally:
        driver.quit()
        viewer.close()
