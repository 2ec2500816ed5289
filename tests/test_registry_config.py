"""Registries (lazy locations, unknown-type errors) and config files (inheritance)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config, DictAction

from nerfreg.registry import HOOKS, UnknownTypeError
from nerfreg.utils.config import load_config

HERE = Path(__file__).parent
REPO = HERE.parent


def test_lazy_location_registers_on_first_build():
    # a fresh interpreter has not imported nerfreg.engine.hooks; building by name must
    code = ('import sys; from nerfreg.registry import HOOKS; '
            "assert 'nerfreg.engine.hooks' not in sys.modules; "
            "h = HOOKS.build(dict(type='CheckpointHook', interval=5)); "
            "print(type(h).__module__, h.interval)")
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ['nerfreg.engine.hooks.checkpoint_hook', '5']


def test_unknown_type_names_registry_and_closest_names():
    with pytest.raises(UnknownTypeError) as info:
        HOOKS.build(dict(type='CheckpointHok'))
    msg = str(info.value)
    assert "'CheckpointHok'" in msg and 'nerfreg::hook' in msg
    assert "Did you mean 'CheckpointHook'" in msg


def test_mmengine_parent_types_still_resolve():
    hook = HOOKS.build(dict(type='EmptyCacheHook'))  # defined only in mmengine
    assert type(hook).__module__.startswith('mmengine')


def test_multiple_base_inheritance_and_placeholders():
    cfg = load_config(HERE / 'configs' / 'toy.py')
    assert cfg.optimizer == dict(type='ToyOptimizer', lr=0.07)  # merged with the base
    assert cfg.copied_list == [1, 2]  # {{_base_.x}}
    assert cfg.model.init_value == 0.5
    assert cfg.default_hooks.timer.type == 'IterTimerHook'  # from default_runtime.py
    assert cfg.default_hooks.checkpoint.interval == 10  # overridden by toy_runtime.py


def test_delete_replaces_instead_of_merging():
    cfg = load_config(HERE / 'configs' / 'toy_delete.py')
    assert dict(cfg.model) == dict(type='ToyModel')


def test_cfg_options_override_nested_and_lists():
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options', 'train_cfg.max_steps=3', 'model.dim=4',
                              'extra_list=[5,6]', "data.type=ToyRegressionData"])
    cfg = load_config(HERE / 'configs' / 'toy.py', args.cfg_options)
    assert cfg.train_cfg.max_steps == 3 and cfg.train_cfg.val_interval == 5
    assert cfg.model.dim == 4 and cfg.model.init_value == 0.5
    assert cfg.extra_list == [5, 6]


def test_missing_config_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_config(tmp_path / 'nope.py')


def test_config_dump_reloads_identically(tmp_path):
    cfg = load_config(HERE / 'configs' / 'toy.py')
    cfg.dump(str(tmp_path / 'dumped.py'))
    again = Config.fromfile(str(tmp_path / 'dumped.py'))
    assert again.to_dict() == cfg.to_dict()
