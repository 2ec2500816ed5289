"""ViewerHook: the live viewer renders the current model while training, pause/resume is
bit-exact, and Ctrl-C ends training with a checkpoint and closes the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _viewer_utils import REPO, psnr, settled_frame, small_demo_cfg, start_chromium

pytestmark = pytest.mark.slow

HOOK_IMPORT = dict(imports=['nerfreg.viewer.hook'], allow_failed_imports=False)


def _train(cfg):
    from nerfreg.engine import DefaultTrainer
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    return trainer


def _same_view(a, b) -> bool:
    return (np.allclose(a.position, b.position, atol=1e-4)
            and abs(abs(float(np.dot(a.wxyz, b.wxyz))) - 1.0) < 1e-6
            and abs(a.fov - b.fov) < 1e-6 and abs(a.aspect - b.aspect) < 1e-6)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)


def test_live_viewer_follows_training_and_pause_is_bit_exact(tmp_path):
    from nerfreg.engine import DefaultTrainer
    steps = 24
    data_root = tmp_path / 'data'
    reference = _train(small_demo_cfg(tmp_path / 'ref', data_root, max_steps=steps))

    cfg = small_demo_cfg(tmp_path / 'live', data_root, max_steps=steps)
    cfg.custom_imports = HOOK_IMPORT
    cfg.custom_hooks = [dict(type='ViewerHook', port=0, update_interval=0.1, max_side=160,
                             start_paused=True)]
    trainer = DefaultTrainer.from_cfg(cfg)
    hook = next(h for h in trainer.hooks if type(h).__name__ == 'ViewerHook')
    errors: list[BaseException] = []

    def run():
        try:
            trainer.train()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    driver = None
    try:
        _wait(lambda: hook.paused_steps == [0], 120, 'the paused first step')
        assert trainer.global_step == 0
        driver = start_chromium(tmp_path / 'profile')
        driver.get(hook.viewer.url)
        loop = hook.viewer.wait_for_client(60)
        assert loop is not None
        first = settled_frame(loop, loop.client)
        time.sleep(0.5)
        assert trainer.global_step == 0, 'training ran while paused'

        hook.resume()
        _wait(lambda: trainer.global_step >= 12, 240, "step 12")
        hook.pause()
        _wait(lambda: len(hook.paused_steps) == 2, 60, 'the second pause')
        paused_at = hook.paused_steps[-1]
        time.sleep(1.0)
        assert trainer.global_step == paused_at, 'steps ran while paused'
        version = hook.source.latest_version
        later = loop.wait_for_frame(lambda r: not r.moving and r.version == version, 90)
        assert later is not None, 'the viewer did not render the paused model'
        # the browser reports its camera back with float jitter: match poses closely
        earlier = [r for r in loop.frames if not r.moving and r.version < later.version
                   and _same_view(r.pose, later.pose)]
        assert earlier, [(r.version, r.moving, r.pose, later.pose) for r in loop.frames]
        assert earlier[0].version <= first.version + 3, 'no early frame at this pose'
        # the frame is the paused (current) model's render, and an early frame was not
        from nerfreg.viewer.render import render_view
        current = render_view(trainer.model, trainer.renderer, later.pose, later.width,
                              later.height, later.settings)
        assert psnr(later.image, current) > 60.0, 'the viewer did not show the current model'
        assert psnr(earlier[0].image, current) < 50.0, 'frame did not change with training'
        stats = hook.viewer.stats.values
        assert stats['state'] == 'paused' and stats['Gaussians'] == trainer.model.num_gaussians
        assert stats['step'].startswith(f'{paused_at:,}')

        hook.resume()
        thread.join(300)
        assert not thread.is_alive() and not errors, errors
    finally:
        if driver is not None:
            driver.quit()
        hook.close()
    assert trainer.global_step == steps
    ref_state, state = reference.model.state_dict(), trainer.model.state_dict()
    assert ref_state.keys() == state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], state[key]), f'{key} differs after pause/resume'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _read_until(proc, marker: str, timeout: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return ''.join(seen)
    raise AssertionError(f'{marker!r} never printed; output:\n{"".join(seen)}')


def test_ctrl_c_during_live_training_saves_checkpoint_and_closes_server(tmp_path):
    port = _free_port()
    config = tmp_path / 'live.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/gaussian_splatting/demo.py']\n"
        "train_cfg = dict(max_steps=100000, val_interval=0)\n"
        f"data = dict(image_size=64, n_train=20, n_val=2, n_test=2, num_points=2000, "
        f"data_root='{tmp_path / 'data'}')\n"
        f"custom_imports = {HOOK_IMPORT!r}\n"
        f"custom_hooks = [dict(type='ViewerHook', port={port})]\n"
        "default_hooks = dict(logger=dict(interval=5))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED='1')
    proc = subprocess.Popen([sys.executable, 'tools/train.py', str(config), '--work-dir',
                             str(tmp_path / 'work'), '--device', 'cpu'], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _read_until(proc, 'Viewer at', 180)
        _read_until(proc, 'step 5/', 180)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert list(Path(tmp_path / 'work').glob('iter_*.pth')), out
    with socket.socket() as sock:  # the viewer's port is free again
        sock.bind(('127.0.0.1', port))
