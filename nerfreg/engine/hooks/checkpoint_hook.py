"""Periodic, crash-safe checkpoints with ``last_checkpoint`` and ``max_keep_ckpts``."""

from __future__ import annotations

from pathlib import Path

from mmengine.hooks import Hook

from ...registry import HOOKS
from ...utils.fileio import atomic_write_bytes


@HOOKS.register_module()
class CheckpointHook(Hook):
    """Save ``iter_<step>.pth`` every ``interval`` steps and at the last step.

    The file is written atomically; ``last_checkpoint`` is rewritten only after the rename,
    and old checkpoints beyond ``max_keep_ckpts`` are deleted only after that.
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: int = 1000, max_keep_ckpts: int = 3,
                 save_last: bool = True, filename_tmpl: str = 'iter_{}.pth') -> None:
        self.interval = int(interval)
        self.max_keep_ckpts = int(max_keep_ckpts)
        self.save_last = save_last
        self.filename_tmpl = filename_tmpl
        self.saved: list[Path] = []

    def before_train(self, runner) -> None:
        existing = sorted(Path(runner.work_dir).glob(self.filename_tmpl.format('*')),
                          key=lambda p: p.stat().st_mtime)
        self.saved = [p for p in existing if p.is_file()]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step = runner.global_step
        due = self.interval > 0 and step % self.interval == 0
        last = self.save_last and step == runner.max_iters
        if due or last:
            self.save_now(runner)

    def on_checkpoint_request(self, runner, request) -> None:
        """Answer the trainer's request for a checkpoint now (e.g. on interruption)."""
        if request.path is None:
            request.path = self.save_now(runner)

    def save_now(self, runner) -> Path:
        """Write a checkpoint for the current step (also used on interruption)."""
        path = Path(runner.work_dir) / self.filename_tmpl.format(runner.global_step)
        runner.save_model(path)  # collective when distributed; rank 0 writes
        if getattr(runner, 'rank', 0) != 0:
            return path
        atomic_write_bytes(Path(runner.work_dir) / 'last_checkpoint', str(path).encode())
        if path in self.saved:
            self.saved.remove(path)
        self.saved.append(path)
        while self.max_keep_ckpts > 0 and len(self.saved) > self.max_keep_ckpts:
            old = self.saved.pop(0)
            old.unlink(missing_ok=True)
        runner.logger.info(f'Saved checkpoint {path}')
        return path
