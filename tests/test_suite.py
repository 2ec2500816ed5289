"""benchmarks/suite.py on the procedural scene: budgets, split choice, JSON lines, sheets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import suite  # noqa: E402

SMALL = ['data.image_size=32', 'data.n_train=8', 'data.n_val=3', 'data.n_test=4',
         'device=cpu']


def test_suite_on_the_procedural_scene(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # scene configs are given relative to the repo
    out, sheets = tmp_path / 'suite.jsonl', tmp_path / 'sheets'
    common = ['--scenes', 'demo', '--out', str(out), '--work-dir', str(tmp_path / 'w'),
              '--set', *SMALL, f'data.data_root={tmp_path / "scene"}']
    val, = suite.main([*common, '--steps', '5', '--sheets', str(sheets), '--sheet-views', '2',
                       '--inspect', str(tmp_path / 'all')])
    assert val['split'] == 'val' and val['views'] == 3 and val['steps'] == 5
    assert val['gaussians'] > 0 and 5 < val['psnr'] < 60 and 0 < val['ssim'] <= 1
    assert val['cpu'] and val['train_seconds'] > 0
    sheet = cv2.imread(val['sheet'])
    assert sheet is not None and Path(val['sheet']).stat().st_size < 300_000
    # two rows (views) of render | ground truth, each 32 px high before the labels
    assert sheet.shape[1] >= 64 and sheet.shape[0] >= 64
    every = cv2.imread(str(tmp_path / 'all' / 'demo_val_all.jpg'))  # all 3 val views
    assert every is not None and every.shape[0] > sheet.shape[0] * every.shape[1] / sheet.shape[1]
    # a time budget of zero stops after the first step; the test split only on request
    test, = suite.main([*common, '--steps', '50', '--seconds', '0', '--split', 'test'])
    assert test['steps'] == 1 and test['split'] == 'test' and test['views'] == 4
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r['split'] for r in lines] == ['val', 'test']
