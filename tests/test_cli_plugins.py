"""tools/train.py and tools/test.py as subprocesses; plugins via custom_imports and via a
real ``nerfreg.plugins`` entry point of an installed distribution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent


def run(args, env_extra=None, cwd=REPO, check=True):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(HERE / 'toy_plugin'), str(REPO)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH')
                                                 else []))
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    return proc


def test_help_is_clear():
    out = run(['tools/train.py', '--help']).stdout
    for flag in ('--work-dir', '--resume', '--load-from', '--cfg-options', '--device', '--seed'):
        assert flag in out
    assert 'CHECKPOINT' in run(['tools/test.py', '--help']).stdout.upper()


def test_train_then_resume_then_test_end_to_end(tmp_path):
    work = tmp_path / 'work'
    run(['tools/train.py', 'tests/configs/toy.py', '--work-dir', str(work),
         '--cfg-options', 'train_cfg.max_steps=10', '--seed', '3'])
    assert (work / 'iter_10.pth').is_file()
    assert (work / 'last_checkpoint').read_text().endswith('iter_10.pth')
    dumped = (work / 'toy.py').read_text()
    assert 'seed = 3' in dumped and 'max_steps=10' in dumped.replace(' ', '')
    assert list(work.glob('*.log'))
    # resume from the work dir's latest checkpoint and continue to 20
    run(['tools/train.py', 'tests/configs/toy.py', '--work-dir', str(work), '--resume',
         '--cfg-options', 'train_cfg.max_steps=20', '--seed', '3'])
    assert (work / 'iter_20.pth').is_file()
    log = '\n'.join(p.read_text() for p in work.glob('*.log'))
    assert 'Loaded checkpoint' in log and 'step 10' in log
    scores = {}
    for step in (10, 20):
        out = run(['tools/test.py', 'tests/configs/toy.py', str(work / f'iter_{step}.pth'),
                   '--work-dir', str(tmp_path / 'test')]).stdout
        scores[step] = json.loads(out.strip().splitlines()[-1])
        assert scores[step]['step'] == step
    assert scores[20]['mse'] < scores[10]['mse']


def test_bad_type_in_config_gives_one_paragraph(tmp_path):
    proc = run(['tools/train.py', 'tests/configs/toy.py', '--work-dir', str(tmp_path),
                '--cfg-options', 'model.type=ToyModle'], check=False)
    assert proc.returncode == 1
    assert "type='ToyModle'" in proc.stderr and "Did you mean 'ToyModel'" in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_entry_point_plugin_is_imported_at_startup(tmp_path):
    # a real installed distribution: a dist-info with an entry point on sys.path
    site = tmp_path / 'site'
    dist = site / 'nerfreg_toy_ep-0.1.dist-info'
    dist.mkdir(parents=True)
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: nerfreg-toy-ep\n'
                                   'Version: 0.1\n')
    (dist / 'entry_points.txt').write_text('[nerfreg.plugins]\ntoy = nerfreg_toy.entry_hook\n')
    (dist / 'RECORD').write_text('')
    cfg = tmp_path / 'ep.py'
    cfg.write_text(f"_base_ = ['{HERE / 'configs' / 'toy.py'}']\n"
                   "custom_hooks = [dict(type='EntryPointHook', name='ep')]\n")
    code = ('import sys; sys.argv[1:] = []; '
            'from nerfreg.engine import DefaultTrainer; from nerfreg.utils.config import '
            f"load_config; cfg = load_config({str(cfg)!r}); "
            f"cfg.work_dir = {str(tmp_path / 'w')!r}; "
            'cfg.train_cfg.max_steps = 2; t = DefaultTrainer.from_cfg(cfg); t.train(); '
            'import nerfreg_toy; '
            "print(sorted({s for n, s in nerfreg_toy.CALLS if n == 'ep'}))")
    env = {'PYTHONPATH': os.pathsep.join([str(site), str(HERE / 'toy_plugin'), str(REPO)])}
    out = run(['-c', code], env_extra=env).stdout
    stages = eval(out.strip().splitlines()[-1])
    assert 'before_train_iter' in stages and 'after_train_iter' in stages
    # without the dist-info the hook type is unknown
    env = {'PYTHONPATH': os.pathsep.join([str(HERE / 'toy_plugin'), str(REPO)])}
    proc = run(['-c', code], env_extra=env, check=False)
    assert proc.returncode != 0 and 'EntryPointHook' in proc.stderr
