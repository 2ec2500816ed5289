"""Helpers shared by the viewer tests: a small trained demo scene and headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')


def small_demo_cfg(work_dir: Path, data_root: Path, max_steps: int = 100, **extra):
    """The demo config shrunk for tests (64x64 images, 20 views), on the CPU."""
    from nerfreg.utils.config import load_config
    options = {'train_cfg.max_steps': max_steps, 'train_cfg.val_interval': 0,
               'data.image_size': 64, 'data.n_train': 20, 'data.n_val': 2, 'data.n_test': 2,
               'data.num_points': 2000, 'data.data_root': str(data_root)}
    options.update(extra)
    cfg = load_config(REPO / 'configs/gaussian_splatting/demo.py', options)
    cfg.custom_hooks = []
    cfg.default_hooks.logger.interval = 1000
    cfg.work_dir = str(work_dir)
    cfg.device = 'cpu'
    return cfg


_TRAINED: dict[str, tuple] = {}


def trained_demo_scene(tmp_path_factory) -> tuple:
    """``(cfg, checkpoint)`` of the demo trained for 100 steps (once per test session;
    each test module wraps this in its own session fixture)."""
    if 'demo' not in _TRAINED:
        from nerfreg.engine import DefaultTrainer
        root = tmp_path_factory.mktemp('viewer_demo')
        cfg = small_demo_cfg(root / 'work', root / 'data')
        trainer = DefaultTrainer.from_cfg(cfg)
        trainer.train()
        _TRAINED['demo'] = (cfg, Path(trainer.work_dir) / 'iter_100.pth')
    return _TRAINED['demo']


def require_chromium() -> None:
    """Skip without Chromium, except under CI (CI=true), where that is a failure."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append('the selenium package')
    if missing:
        message = (f'headless browser test needs {missing} (apt-get install chromium '
                   'chromium-driver; pip install selenium)')
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)


def start_chromium(profile_dir: Path, width: int = 1000, height: int = 700):
    """A headless Chromium WebDriver with the network log enabled."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
                f'--user-data-dir={profile_dir}', f'--window-size={width},{height}'):
        options.add_argument(arg)
    options.set_capability('goog:loggingPrefs', {'performance': 'ALL'})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def network_hosts(driver, page_host: str = 'localhost') -> set[str]:
    """Hosts of every http(s)/ws(s) request made by documents served from ``page_host``
    (the browser's own start-up traffic, e.g. its search engine, is not the page's)."""
    hosts = set()
    for entry in driver.get_log('performance'):
        message = json.loads(entry['message'])['message']
        if message.get('method') not in ('Network.requestWillBeSent',
                                         'Network.webSocketCreated'):
            continue
        params = message.get('params', {})
        document = urlparse(params.get('documentURL') or params.get('initiator', {}).get(
            'url') or '')
        if message['method'] == 'Network.requestWillBeSent' and document.hostname != page_host:
            continue
        url = (params.get('request') or {}).get('url') or params.get('url') or ''
        if urlparse(url).scheme in ('http', 'https', 'ws', 'wss'):
            hosts.add(urlparse(url).hostname)
    return hosts


def screenshot(driver) -> np.ndarray:
    """The page as uint8 RGB."""
    import cv2
    png = np.frombuffer(driver.get_screenshot_as_png(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def settled_frame(loop, client, timeout: float = 90.0):
    """The last frame once the camera has stopped and a full-resolution frame of the
    camera's current pose was sent."""
    from nerfreg.viewer.camera import ViewPose
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pose = ViewPose.from_viser(client.camera)
        record = loop.wait_for_frame(lambda r, p=pose: not r.moving and r.pose == p, 5.0)
        if record is not None and ViewPose.from_viser(client.camera) == pose:
            time.sleep(0.3)
            if loop.frames[-1] is record:
                return record
        time.sleep(0.2)
    now = ViewPose.from_viser(client.camera)
    raise AssertionError(f'the viewer sent no settled frame: camera {now}; frames (version, '
                         'moving, size, seconds, same pose): ' + str(
                             [(r.version, r.moving, r.width, round(r.seconds, 2), r.pose == now)
                              for r in loop.frames[-10:]]))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def save_doc_image(image: np.ndarray, name: str) -> None:
    """With NERFREG_WRITE_DOCS=1, write ``docs/<name>`` (the README screenshot)."""
    if os.environ.get('NERFREG_WRITE_DOCS') != '1':
        return
    import cv2
    out = REPO / 'docs' / name
    cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])


def cleanup_profile(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
