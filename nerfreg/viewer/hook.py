"""``ViewerHook``: the web viewer while training (``custom_hooks=[dict(type='ViewerHook')]``).

The viewer renders a snapshot of the model in background threads: after a step, when a
browser is connected and ``update_interval`` seconds have passed, the training thread
copies the model's state dict and hands it over; the render threads load it into their
own copy of the model, so training is never disturbed. With no browser connected a step
costs one clock read. Pause blocks in ``before_train_iter`` without touching any state,
so a paused-and-resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import torch
from mmengine.hooks import Hook

from ..registry import HOOKS


@HOOKS.register_module()
class ViewerHook(Hook):
    """Serve the training model at ``http://host:port`` with step, loss, model stats,
    steps/s and a pause/resume button.

    Args:
        port, host: where the viewer listens (port 0: any free port).
        update_interval: seconds between model snapshots sent to the viewer.
        max_duty: share of wall time the render threads may use (keeps training fast).
        max_side: initial resolution cap of the rendered frames.
        show_cameras: draw the training cameras (with image thumbnails).
        start_paused: wait for 'Resume' in the browser before the first step.
        keep_open: keep serving after training ends until Ctrl-C.
    """

    priority = 'LOW'

    def __init__(self, port: int = 8080, host: str = '127.0.0.1', update_interval: float = 1.0,
                 max_duty: float = 0.15, max_side: int = 480, show_cameras: bool = True,
                 start_paused: bool = False, keep_open: bool = False) -> None:
        self.port = int(port)
        self.host = host
        self.update_interval = float(update_interval)
        self.max_duty = float(max_duty)
        self.max_side = int(max_side)
        self.show_cameras = bool(show_cameras)
        self.keep_open = bool(keep_open)
        self.viewer: Any = None
        self.source: Any = None
        self._running = threading.Event()
        if not start_paused:
            self._running.set()
        self._last_post = 0.0
        self._last_time: float | None = None
        self._steps_per_s = 0.0
        self._loss_tensor: Any = None
        self.paused_steps: list[int] = []  # steps at which training waited (tests)

    # ---- pause --------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()
        self._refresh_button()

    def resume(self) -> None:
        self._running.set()
        self._refresh_button()

    def _refresh_button(self) -> None:
        button = getattr(self, '_button', None)
        if button is not None:
            button.label = 'Resume training' if self.paused else 'Pause training'

    # ---- hook points --------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if getattr(runner, 'rank', 0) != 0:
            return
        from ..registry import RENDERERS
        from .render import SceneSource
        from .server import ViewerServer
        model = copy.deepcopy(runner.model)
        renderer = RENDERERS.build(copy.deepcopy(dict(runner.cfg.renderer))) \
            if runner.cfg.get('renderer') is not None else runner.renderer
        self.source = SceneSource(model, renderer, live=True)
        cameras = images = None
        dataset = getattr(getattr(runner, 'data', None), 'dataset', None)
        train = getattr(dataset, 'train', None)
        if self.show_cameras and train is not None:
            cameras, images = train.cameras, getattr(train, 'images', None)
        max_sh = getattr(runner.model, 'sh_degree', None)
        self.viewer = ViewerServer(self.source, host=self.host, port=self.port,
                                   cameras=cameras, images=images,
                                   max_sh_degree=None if max_sh is None else int(max_sh),
                                   max_side=self.max_side, max_duty=self.max_duty,
                                   title='nerfreg training',
                                   path_file=str(runner.work_dir / 'camera_path.json'))
        with self.viewer.server.gui.add_folder('Training'):
            self._button = self.viewer.server.gui.add_button('Pause training')
        self._button.on_click(lambda _event: self.resume() if self.paused else self.pause())
        self._refresh_button()
        self._post(runner)
        runner.logger.info(f'Viewer at {self.viewer.url} (ViewerHook; Ctrl-C stops training '
                           'with a checkpoint)')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.viewer is None or self._running.is_set():
            return
        self.paused_steps.append(int(runner.global_step))
        self._post(runner, force=True)
        while not self._running.wait(0.1):
            # a Ctrl-C while paused: resume so the trainer can finish the step and save
            if getattr(runner, '_stop_requested', 0) or getattr(runner, 'stop_training', False):
                break
        self._last_time = None  # do not count the pause in steps/s

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.viewer is None:
            return
        now = time.perf_counter()
        if self._last_time is not None:
            rate = 1.0 / max(now - self._last_time, 1e-9)
            self._steps_per_s = rate if not self._steps_per_s else \
                0.9 * self._steps_per_s + 0.1 * rate
        self._last_time = now
        loss = (outputs or {}).get('loss')
        if loss is not None:
            self._loss_tensor = loss
        if self.viewer.num_clients and now - self._last_post >= self.update_interval:
            self._post(runner)

    def after_run(self, runner) -> None:
        if self.viewer is None:
            return
        self._post(runner, force=True)
        if self.keep_open:
            runner.logger.info(f'Training done; the viewer stays at {self.viewer.url} until '
                               'Ctrl-C')
            self.viewer.serve_forever()
        self.close()

    def close(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None

    # ---- snapshots ----------------------------------------------------------------------
    def stats(self, runner) -> dict[str, Any]:
        """What the 'Stats' panel shows: step, loss, the model's own statistics, speed."""
        values: dict[str, Any] = {'step': f'{runner.global_step:,} / {runner.max_iters:,}'}
        if self._loss_tensor is not None:
            values['loss'] = float(self._loss_tensor)
        model = runner.model
        if hasattr(model, 'viewer_stats'):
            values.update(model.viewer_stats())
        elif hasattr(model, 'num_gaussians'):
            values['Gaussians'] = int(model.num_gaussians)
        else:
            values['parameters'] = sum(p.numel() for p in model.parameters())
        values['steps/s'] = round(self._steps_per_s, 2)
        values['state'] = 'paused' if self.paused else 'training'
        return values

    def _post(self, runner, force: bool = False) -> None:
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
        stats = self.stats(runner)
        self.source.post(state, stats)
        self.viewer.set_stats(stats)
        self.viewer.invalidate_all()
        self._last_post = time.perf_counter()


__all__ = ['ViewerHook']
