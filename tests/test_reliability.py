"""Fault injection: SIGKILL at random moments around checkpoint writes, SIGINT/SIGTERM."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer, load_checkpoint
from nerfreg.utils.config import load_config

HERE = Path(__file__).parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / 'toy_plugin'))


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(HERE / 'toy_plugin'), str(REPO)])
    return env


def _train_cmd(work: Path, steps: int, interval: int, ballast: int, extra=()) -> list[str]:
    return [sys.executable, 'tools/train.py', 'tests/configs/toy.py', '--work-dir', str(work),
            '--cfg-options', f'train_cfg.max_steps={steps}', 'train_cfg.val_interval=0',
            f'default_hooks.checkpoint.interval={interval}',
            'default_hooks.checkpoint.max_keep_ckpts=2', f'model.ballast={ballast}', *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f'training exited early ({proc.returncode}):\n{out}\n{err}')
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f'{path} did not appear within {timeout}s')
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_during_checkpointing_never_loses_the_latest_checkpoint(tmp_path):
    """20 runs that save every step (~16 MB each) are SIGKILLed at random moments; every
    time the work dir must name a loadable checkpoint, and resuming from it must work."""
    rng = random.Random(1234)
    trials, during_write = 20, 0
    for trial in range(trials):
        work = tmp_path / f'run{trial}'
        proc = subprocess.Popen(_train_cmd(work, 10_000, 1, 4_000_000), cwd=REPO, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for(work / 'last_checkpoint', proc)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        during_write += bool(list(work.glob('.iter_*.tmp')))
        marker = (work / 'last_checkpoint').read_text().strip()
        ckpt = load_checkpoint(marker)  # never half-written
        step = int(ckpt['global_step'])
        assert Path(marker).name == f'iter_{step}.pth'
        cfg = load_config(HERE / 'configs' / 'toy.py')
        cfg.merge_from_dict({'work_dir': str(work), 'resume': True,
                             'train_cfg.max_steps': step + 2, 'train_cfg.val_interval': 0,
                             'model.ballast': 4_000_000})
        trainer = DefaultTrainer.from_cfg(cfg)
        trainer.train()
        assert trainer.global_step == step + 2
    print(f'SIGKILL trials: {trials}, all resumed; {during_write} killed mid-write')


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_step_saves_and_resumes(tmp_path, sig):
    work = tmp_path / 'work'
    cmd = _train_cmd(work, 100_000, 50, 0)
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(work / 'iter_50.pth', proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert 'Interrupted at step' in err and 'checkpoint saved' in err
    step = int(load_checkpoint((work / 'last_checkpoint').read_text().strip())['global_step'])
    assert step >= 50
    log = '\n'.join(p.read_text() for p in work.glob('*.log'))
    assert '--resume' in log  # tells the user how to continue
    done = subprocess.run(_train_cmd(work, step + 3, 50, 0, ['--resume']), cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = load_checkpoint((work / 'last_checkpoint').read_text().strip())
    assert final['global_step'] == step + 3


def test_resume_bit_identical_at_several_split_points(tmp_path):
    def cfg_for(work, steps, resume=False):
        cfg = load_config(HERE / 'configs' / 'toy.py')
        cfg.merge_from_dict({'work_dir': str(work), 'resume': resume,
                             'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0,
                             'default_hooks.checkpoint.interval': 1000})
        return cfg
    full = DefaultTrainer.from_cfg(cfg_for(tmp_path / 'full', 24))
    full.train()
    for split in (1, 7, 8, 23):  # mid-epoch, epoch boundary (64/8 = 8 steps), near the end
        work = tmp_path / f'split{split}'
        DefaultTrainer.from_cfg(cfg_for(work, split)).train()
        resumed = DefaultTrainer.from_cfg(cfg_for(work, 24, resume=True))
        resumed.train()
        assert torch.equal(resumed.model.w, full.model.w), split
        a, b = resumed.optimizer.state_dict(), full.optimizer.state_dict()
        assert torch.equal(a['state'][0]['exp_avg_sq'], b['state'][0]['exp_avg_sq'])


def test_gaussian_splatting_resume_is_bit_identical_across_structure_updates(tmp_path):
    """k steps + resume to N equals N steps: Gaussian count, parameters, Adam state and
    strategy statistics, with densification (every 10 from 10) and an opacity reset (20)
    before, at and after the split points."""
    root = REPO / 'configs' / 'gaussian_splatting' / 'demo.py'
    scene = tmp_path / 'scene'

    def cfg_for(work, steps, resume=False):
        cfg = load_config(root)
        cfg.merge_from_dict({
            'work_dir': str(work), 'resume': resume, 'device': 'cpu', 'seed': 3,
            'data.data_root': str(scene), 'data.image_size': 32, 'data.n_train': 8,
            'data.n_val': 2, 'data.n_test': 2, 'data.num_points': 300,
            'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0, 'custom_hooks': [],
            'optimizer.strategy.refine_start': 5, 'optimizer.strategy.refine_every': 10,
            'optimizer.strategy.reset_every': 20, 'model.sh_degree_interval': 15,
            'default_hooks.checkpoint.interval': 1000})
        return cfg

    full = DefaultTrainer.from_cfg(cfg_for(tmp_path / 'full', 40))
    full.train()
    n_full = full.model.num_gaussians
    assert n_full != 300
    for split in (7, 10, 20, 27):
        work = tmp_path / f'split{split}'
        DefaultTrainer.from_cfg(cfg_for(work, split)).train()
        resumed = DefaultTrainer.from_cfg(cfg_for(work, 40, resume=True))
        resumed.train()
        assert resumed.model.num_gaussians == n_full, split
        for name, value in full.model.params.items():
            assert torch.equal(resumed.model.params[name], value), (split, name)
        a, b = resumed.optimizer.state_dict(), full.optimizer.state_dict()
        for key in ('grad2d', 'count', 'radii'):
            sa, sb = a['strategy'].get(key), b['strategy'].get(key)
            assert (sa is None and sb is None) or torch.equal(sa, sb), (split, key)
