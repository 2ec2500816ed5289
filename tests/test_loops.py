"""Loops: the default loops chosen by train_cfg/val_cfg/test_cfg, a plugin's own train loop
and export format selected from a config, and the exporters' declaration of the models
they accept."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfreg.engine import DefaultTrainer, loops
from nerfreg.utils.config import load_config

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / 'toy_plugin'))
sys.path.insert(0, str(HERE / 'plugins'))


def _cfg(name: str, tmp_path: Path, **overrides):
    cfg = load_config(HERE / 'configs' / name)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.merge_from_dict(overrides)
    return cfg


def test_default_loops_take_todays_keys_and_an_explicit_type(tmp_path):
    trainer = DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path))
    assert isinstance(trainer.train_loop, loops.IterBasedTrainLoop)
    assert isinstance(trainer.val_loop, loops.ValLoop) and trainer.val_loop.split == 'val'
    assert isinstance(trainer.test_loop, loops.TestLoop) and trainer.test_loop.split == 'test'
    assert trainer.max_iters == 20 and trainer.train_loop.val_interval == 5
    typed = DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path / 'b', **{
        'train_cfg.type': 'IterBasedTrainLoop', 'val_cfg': dict(type='ValLoop', split='x')}))
    assert typed.max_iters == 20 and typed.val_loop.split == 'x'


def test_val_loop_reads_the_val_split_and_test_loop_the_test_split(tmp_path):
    trainer = DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path, **{'train_cfg.max_steps': 2}))
    seen = []
    real = trainer.data.iter_split
    trainer.data.iter_split = lambda split, **kw: seen.append(split) or real(split, **kw)
    trainer.train()
    trainer.test()
    assert seen == ['val', 'test']  # validation after the last step, then the test
    trainer.validation()
    assert seen == ['val', 'test', 'val']


def test_unknown_loop_type_and_bad_loop_key_name_the_culprit(tmp_path):
    from nerfreg.registry import UnknownTypeError
    with pytest.raises(UnknownTypeError, match="'IterBasedTrainLop'.*IterBasedTrainLoop"):
        DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path, **{
            'train_cfg.type': 'IterBasedTrainLop'}))
    with pytest.raises(TypeError, match="'splt'.*Did you mean 'split'"):
        DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path / 'b', val_cfg=dict(splt='val')))


def test_plugin_train_loop_and_exporter_from_a_config(tmp_path):
    import nerfreg_loop_plugin
    nerfreg_loop_plugin.RUNS.clear()
    trainer = DefaultTrainer.from_cfg(_cfg('loop_plugin.py', tmp_path))
    assert type(trainer.train_loop).__name__ == 'EarlyStopTrainLoop'
    trainer.train()
    (run,) = nerfreg_loop_plugin.RUNS
    # it stopped on its own rule: the last 3 losses below the threshold, well before 400
    assert run['steps'] == trainer.global_step < 400
    assert all(loss < 2e-3 for loss in run['losses'][-3:])
    assert not all(loss < 2e-3 for loss in run['losses'][-4:-3] + run['losses'][:1])
    assert set(run['val']) == {'mse'}  # its validation ran on the configured split
    weights = np.load(Path(trainer.work_dir) / 'weights.npz')  # the plugin's exporter
    assert np.array_equal(weights['w'], trainer.model.w.detach().numpy())


def test_exporters_declare_the_models_they_accept(tmp_path):
    import nerfreg_loop_plugin  # noqa: F401  (registers NpzExporter)
    import nerfreg_toy

    from nerfreg.apis import export, export_formats
    assert {'ply', 'splat', 'npz'} <= set(export_formats())
    model = nerfreg_toy.ToyModel(dim=3)
    with pytest.raises(TypeError, match=r"'ply' exporter .*cannot export a ToyModel.*\['npz'\]"):
        export(model, tmp_path / 'toy.ply')
    out = export(model, tmp_path / 'toy.npz')  # format from the suffix
    assert np.load(out)['w'].shape == (3, 1)
    with pytest.raises(ValueError, match="format 'obj' is unknown.*'npz'"):
        export(model, tmp_path / 'toy.obj', fmt='obj')


def test_interrupt_checkpoint_is_requested_from_the_hooks(tmp_path):
    """A signal during training asks the hooks for a checkpoint (on_checkpoint_request);
    the CheckpointHook answers with its own naming and marker."""
    import signal

    from nerfreg.engine.errors import TrainingInterrupted
    cfg = _cfg('toy.py', tmp_path, **{'train_cfg.max_steps': 50})
    trainer = DefaultTrainer.from_cfg(cfg)
    real_step = trainer.train_step

    def step_then_signal(batch):
        out = real_step(batch)
        if trainer.iter == 6:
            signal.raise_signal(signal.SIGTERM)
        return out

    trainer.train_step = step_then_signal
    with pytest.raises(TrainingInterrupted) as info:
        trainer.train()
    assert info.value.step == 7 and info.value.checkpoint.name == 'iter_7.pth'
    marker = (Path(trainer.work_dir) / 'last_checkpoint').read_text()
    assert marker.endswith('iter_7.pth')
    assert torch.equal(torch.load(info.value.checkpoint, weights_only=True)['model']['w'],
                       trainer.model.w.detach())


def test_progress_bars_for_train_val_and_test(tmp_path, capsys, monkeypatch):
    from rich.progress import Progress
    added = []
    real_add = Progress.add_task
    monkeypatch.setattr(Progress, 'add_task',
                        lambda self, desc, **kw: added.append(desc) or real_add(self, desc, **kw))
    cfg = _cfg('toy.py', tmp_path, **{'train_cfg.max_steps': 10,
                                      'default_hooks.logger.progress_bar': True})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    trainer.test()
    assert added == ['train', 'val @ step 5', 'val @ step 10', 'test @ step 10']
    out = capsys.readouterr().out
    assert 'train ━' in out and '10/10' in out
    assert 'test @ step 10 ━' in out and '2/?' in out  # 2 views of a split of unknown size
    assert 'mse' in out.split('test @ step 10 ━')[1]  # the finished bar shows its metrics


def test_a_minimal_plugin_pipeline_needs_only_the_two_data_methods(tmp_path):
    """Pipelines without state_dict (like benchmarks/bench_trainer_overhead.py's) still
    train, as before the protocols; they just have no data state in checkpoints."""
    from nerfreg.registry import DATASETS

    @DATASETS.register_module(force=True)
    class MinimalData:
        def __init__(self, **kwargs) -> None:
            self.x, self.y = torch.randn(8, 8), torch.randn(8, 1)

        def next_train_batch(self) -> dict:
            return {'x': self.x, 'y': self.y}

        def iter_split(self, split: str):
            return iter([{'x': self.x, 'y': self.y}])

    trainer = DefaultTrainer.from_cfg(_cfg('toy.py', tmp_path, data=dict(
        _delete_=True, type='MinimalData')))
    trainer.train()
    assert trainer.global_step == 20 and trainer.state_dict()['data'] == {}
