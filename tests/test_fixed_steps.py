"""benchmarks/fixed_steps.py: a scaled schedule trained on the procedural scene, scored on
both held-out splits, and the per-label summary of seeds (mean and sample deviation)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import fixed_steps  # noqa: E402


def test_fixed_steps_runs_and_summarizes_seeds(tmp_path, capsys):
    out = tmp_path / 'runs.jsonl'
    small = ['data.image_size=32', 'data.n_train=8', 'data.n_val=3', 'data.n_test=4',
             'device=cpu', f'data.data_root={tmp_path / "scene"}']
    records = [fixed_steps.main([
        str(REPO / 'configs/gaussian_splatting/demo.py'), '--steps', '4', '--seed', str(seed),
        '--score', 'both', '--label', 'demo', '--out', str(out),
        '--work-dir', str(tmp_path / f'w{seed}'), '--cfg-options', *small])
        for seed in (1, 0)]
    for record in records:
        assert record['steps'] == 4 and 5 < record['psnr'] < 60 and 5 < record['val_psnr'] < 60
    assert records[0]['psnr'] != records[1]['psnr']  # the seed changes the run
    for record in records:  # per-view PSNR by image name; their mean is the split's PSNR
        for split, key in (('test', 'psnr'), ('val', 'val_psnr')):
            views = record['view_psnr'][split]
            assert len(views) == (4 if split == 'test' else 3)
            assert abs(statistics.fmean(views.values()) - record[key]) < 1e-2
    assert [json.loads(x)['seed'] for x in out.read_text().splitlines()] == [1, 0]
    capsys.readouterr()
    fixed_steps.main(['--summarize', str(out)])
    row = capsys.readouterr().out.splitlines()[2]
    s0, s1 = records[1]['psnr'], records[0]['psnr']
    assert row.startswith(f'| demo | 4 | {s0:.2f} (s0), {s1:.2f} (s1) | ')
    assert f'{statistics.fmean([s0, s1]):.2f} +- {statistics.stdev([s0, s1]):.2f}' in row
    assert f"{statistics.fmean(r['val_psnr'] for r in records):.2f} |" in row
