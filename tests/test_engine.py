"""DefaultTrainer: build order, hook order, validation, checkpoints, resume, NaN guard."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from nerfreg.engine import CheckpointError, DefaultTrainer, NonFiniteError, load_checkpoint
from nerfreg.utils.config import load_config

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / 'toy_plugin'))

import nerfreg_toy  # noqa: E402


def toy_cfg(tmp_path: Path, **overrides):
    cfg = load_config(HERE / 'configs' / 'toy.py')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.merge_from_dict(overrides)
    return cfg


def test_trains_and_loss_falls(tmp_path):
    trainer = DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 60}))
    before = trainer.model.get_metric_dict(
        {'pred': trainer.data.x @ trainer.model.w}, {'y': trainer.data.y})['mse'].mean()
    trainer.train()
    after = trainer.model.get_metric_dict(
        {'pred': trainer.data.x @ trainer.model.w}, {'y': trainer.data.y})['mse'].mean()
    assert trainer.global_step == 60
    assert after < 0.1 * before
    assert (Path(trainer.work_dir) / 'toy.py').is_file()  # resolved config dumped


def test_hook_order_follows_priority_for_every_stage(tmp_path):
    hooks = [dict(type='RecordingHook', name='low', priority='LOW'),
             dict(type='RecordingHook', name='highest', priority='HIGHEST'),
             dict(type='RecordingHook', name='n50', priority=50),
             dict(type='RecordingHook', name='normal_b', priority='NORMAL'),
             dict(type='RecordingHook', name='lowest', priority='LOWEST')]
    cfg = toy_cfg(tmp_path, **{'train_cfg.max_steps': 5, 'train_cfg.val_interval': 5})
    cfg.custom_hooks = hooks
    nerfreg_toy.CALLS.clear()
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    trainer.test()
    expected = ['highest', 'n50', 'normal_b', 'low', 'lowest']  # NORMAL == 50, ties in order
    stages = ['before_run', 'before_train', 'before_train_iter', 'after_train_iter',
              'before_val', 'before_val_iter', 'after_val_iter', 'after_val', 'after_train',
              'before_test', 'before_test_iter', 'after_test_iter', 'after_test', 'after_run',
              'before_save_checkpoint']
    for stage in stages:
        seen = [name for name, st in nerfreg_toy.CALLS if st == stage]
        assert seen, stage
        first_round = seen[:len(expected)]
        assert first_round == expected, (stage, first_round)
    # default hooks are interleaved by priority too: the checkpoint hook (VERY_LOW) after
    # the LOW recording hook and before LOWEST
    names = [type(h).__name__ if not hasattr(h, 'name') else h.name for h in trainer.hooks]
    assert names.index('low') < names.index('CheckpointHook') < names.index('lowest')


def test_default_hooks_override_and_disable(tmp_path):
    cfg = toy_cfg(tmp_path)
    cfg.default_hooks = dict(checkpoint=None, logger=dict(type='LoggerHook', interval=3),
                             timer=dict(type='RecordingHook', name='timer_replacement'))
    trainer = DefaultTrainer.from_cfg(cfg)
    kinds = [type(h).__name__ for h in trainer.hooks]
    assert 'CheckpointHook' not in kinds and 'IterTimerHook' not in kinds
    assert 'RecordingHook' in kinds
    assert [h.interval for h in trainer.hooks if type(h).__name__ == 'LoggerHook'] == [3]
    trainer.train()
    assert not list(Path(trainer.work_dir).glob('iter_*.pth'))


def test_validation_runs_every_interval_without_changing_parameters(tmp_path):
    cfg = toy_cfg(tmp_path, **{'train_cfg.max_steps': 12, 'train_cfg.val_interval': 4})
    trainer = DefaultTrainer.from_cfg(cfg)
    seen_steps = []
    original = trainer.validation

    def checked_validation():
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        opt_before = repr(trainer.optimizer.state_dict()['state'])
        metrics = original()
        for k, v in trainer.model.state_dict().items():
            assert torch.equal(v, before[k])
        assert repr(trainer.optimizer.state_dict()['state']) == opt_before
        assert trainer.model.w.grad is None or not trainer.model.w.grad.abs().sum()
        seen_steps.append(trainer.global_step)
        return metrics

    trainer.validation = checked_validation
    trainer.train()
    assert seen_steps == [4, 8, 12]
    assert 'mse' in trainer.val_metrics


def test_save_load_round_trip_restores_everything(tmp_path):
    trainer = DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 7}))
    trainer.train()
    path = trainer.save_model(tmp_path / 'ckpt.pth')
    ckpt = load_checkpoint(path)
    for key in ('global_step', 'model', 'optimizer', 'renderer', 'param_schedulers', 'rng',
                'meta', 'data'):
        assert key in ckpt
    assert 'nerfreg_version' in ckpt['meta'] and 'config' in ckpt['meta']
    torch_state_after_save = torch.get_rng_state()
    expected_next = torch.rand(3)

    other = DefaultTrainer.from_cfg(toy_cfg(tmp_path / 'b'))
    other.load_model(path)
    assert other.global_step == 7
    assert torch.equal(other.model.w, trainer.model.w)
    sa, sb = trainer.optimizer.state_dict(), other.optimizer.state_dict()
    assert torch.equal(sa['state'][0]['exp_avg'], sb['state'][0]['exp_avg'])
    assert torch.equal(torch.get_rng_state(), torch_state_after_save)
    assert torch.equal(torch.rand(3), expected_next)
    assert other.data.state_dict() == trainer.data.state_dict()


def test_resume_continues_exactly(tmp_path):
    full = DefaultTrainer.from_cfg(toy_cfg(tmp_path / 'full', **{'train_cfg.max_steps': 20}))
    full.train()
    part = DefaultTrainer.from_cfg(toy_cfg(tmp_path / 'part', **{'train_cfg.max_steps': 10}))
    part.train()
    resumed = DefaultTrainer.from_cfg(toy_cfg(tmp_path / 'part', resume=True,
                                              **{'train_cfg.max_steps': 20}))
    resumed.train()
    assert resumed.global_step == 20
    assert torch.equal(resumed.model.w, full.model.w)


def test_checkpoint_hook_keeps_latest_and_marker(tmp_path):
    cfg = toy_cfg(tmp_path, **{'train_cfg.max_steps': 35})
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10, max_keep_ckpts=2)
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    names = sorted(p.name for p in Path(trainer.work_dir).glob('iter_*.pth'))
    assert names == ['iter_30.pth', 'iter_35.pth']
    marker = (Path(trainer.work_dir) / 'last_checkpoint').read_text()
    assert marker.endswith('iter_35.pth')
    assert not list(Path(trainer.work_dir).glob('.*.tmp'))


def test_nan_guard_skips_updates_then_stops(tmp_path):
    cfg = toy_cfg(tmp_path, **{'train_cfg.max_steps': 30,
                               'train_cfg.nan_guard': dict(max_consecutive=3)})
    trainer = DefaultTrainer.from_cfg(cfg)
    real_loss = trainer.model.get_loss_dict
    calls = {'n': 0}

    def flaky_loss(render_results, batch):
        calls['n'] += 1
        out = real_loss(render_results, batch)
        if calls['n'] == 4:  # one bad step: skipped, training continues
            out['loss'] = out['loss'] * float('nan')
        if calls['n'] >= 10:  # persistent failure: stop
            out['loss'] = out['loss'] + float('inf')
        return out

    trainer.model.get_loss_dict = flaky_loss
    with pytest.raises(NonFiniteError, match='consecutive'):
        trainer.train()
    assert trainer.global_step == 11  # steps 10, 11, 12 were bad; the third stops the run
    assert torch.isfinite(trainer.model.w).all()


def test_nan_gradient_is_skipped(tmp_path):
    trainer = DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 1}))
    w0 = trainer.model.w.detach().clone()
    trainer.model.w.register_hook(lambda g: g * float('nan'))
    out = trainer.train_step(trainer.data.next_train_batch())
    assert out.get('skipped') is True
    assert torch.equal(trainer.model.w.detach(), w0)


def test_truncated_and_foreign_checkpoints_fail_clearly(tmp_path):
    trainer = DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 2}))
    trainer.train()
    good = trainer.save_model(tmp_path / 'good.pth')
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_checkpoint(bad)
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {}}, foreign)
    with pytest.raises(CheckpointError, match='not a nerfreg checkpoint'):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'missing.pth')


def test_disk_full_keeps_existing_checkpoint(tmp_path, monkeypatch):
    from nerfreg.engine import checkpoint as ckpt_mod
    trainer = DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 2}))
    trainer.train()
    path = tmp_path / 'c.pth'
    trainer.save_model(path)
    original = path.read_bytes()

    monkeypatch.setattr(ckpt_mod.os, 'fdopen', lambda fd, mode: _FullFile(fd))
    with pytest.raises(CheckpointError, match='disk is full'):
        trainer.save_model(path)
    assert path.read_bytes() == original
    assert not list(tmp_path.glob('.c.pth.*'))


class _FullFile:
    def __init__(self, fd):
        import os
        self.fd = fd
        self._os = os

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._os.close(self.fd)
        return False

    def write(self, data):
        import errno
        raise OSError(errno.ENOSPC, 'No space left on device')


def test_unwritable_work_dir_is_reported(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    cfg = toy_cfg(tmp_path)
    cfg.work_dir = str(blocker / 'sub')
    with pytest.raises(PermissionError, match='not writable'):
        DefaultTrainer.from_cfg(cfg)


def test_config_errors_name_the_culprit(tmp_path):
    from nerfreg.registry import MODELS
    with pytest.raises(TypeError, match="'dims'.*Did you mean 'dim'"):
        MODELS.build(dict(type='ToyModel', dims=3))
    with pytest.raises(ValueError, match="train_cfg.max_step .*Did you mean 'max_steps'"):
        DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_step': 3}))
    with pytest.raises(ValueError, match="train_cfg.max_steps='ten' must be an integer"):
        DefaultTrainer.from_cfg(toy_cfg(tmp_path / 'b', **{'train_cfg.max_steps': 'ten'}))


def test_resume_reports_changed_config_and_strict_refuses(tmp_path):
    DefaultTrainer.from_cfg(toy_cfg(tmp_path, **{'train_cfg.max_steps': 4})).train()
    cfg = toy_cfg(tmp_path, resume=True, resume_strict=True,
                  **{'train_cfg.max_steps': 8, 'optimizer.lr': 0.01})
    with pytest.raises(ValueError, match=r'optimizer.lr: 0.07 -> 0.01'):
        DefaultTrainer.from_cfg(cfg).train()
    cfg = toy_cfg(tmp_path, resume=True, **{'train_cfg.max_steps': 8})  # only the length
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    assert trainer.global_step == 8
