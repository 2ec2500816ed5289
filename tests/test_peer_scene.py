"""benchmarks/peer_scene.py: a transforms.json scene written as the COLMAP model the peer reads.

Read back with pycolmap (the peer's reader), the model must put nerfreg's initial points on the
same pixels as the dataset's own cameras, hold out the same views and carry the same pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_datasets_ngp import write_ngp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import peer_scene  # noqa: E402


def test_ngp_scene_reprojects_identically_through_pycolmap(tmp_path, monkeypatch):
    pycolmap = pytest.importorskip('pycolmap')
    monkeypatch.chdir(REPO)
    root = write_ngp(tmp_path / 'scene', n=17, size=(40, 30), per_frame=True, dist=False)
    out = tmp_path / 'peer'
    opts = {'data.dataset.data_root': str(root), 'data.dataset.downscale': 1,
            'data.dataset.cache_dir': str(tmp_path / 'cache'), 'model.num_random': 300,
            'model.random_min_views': 0.0, 'device': 'cpu'}
    info = peer_scene.export_peer_scene('configs/gaussian_splatting/ngp_short.py', out, opts)
    assert info['views'] == 17 and info['test'] == 3 and info['points'] == 300

    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    cfg = load_config('configs/gaussian_splatting/ngp_short.py', {
        **opts, 'data.dataset.val_every': 0, 'seed': 0, 'work_dir': str(tmp_path / 'w')})
    trainer = DefaultTrainer.from_cfg(cfg)
    scene = trainer.data.dataset
    means = trainer.model.params['means'].detach()
    rec = pycolmap.Reconstruction(str(out / 'sparse' / '0'))
    xyz = np.stack([rec.points3D[k].xyz for k in sorted(rec.points3D)])
    assert np.allclose(xyz, means.double().numpy(), rtol=0, atol=1e-6)  # the same start
    by_name = {im.name: im for im in rec.images.values()}
    names = sorted(by_name)
    for split, expect_test in (('train', False), ('test', True)):
        sp = scene.split(split)
        uv_ref, _ = sp.cameras.project(means)
        for j, cam_name in enumerate(sp.names):
            i = int(Path(cam_name).stem)   # write_ngp names the frames by index
            im = by_name[f'{i:03d}.png']
            assert (names.index(im.name) % 8 == 0) == expect_test   # the peer's hold-out rule
            m = np.asarray(im.cam_from_world().matrix())
            fx, fy, cx, cy = im.camera.params
            xc = means.double().numpy() @ m[:, :3].T + m[:, 3]
            uv = np.stack([fx * xc[:, 0] / xc[:, 2] + cx, fy * xc[:, 1] / xc[:, 2] + cy], -1)
            assert np.abs(uv - uv_ref[j].double().numpy()).max() < 1e-3
            img = cv2.cvtColor(cv2.imread(str(out / 'images' / im.name)), cv2.COLOR_BGR2RGB)
            assert np.array_equal(img, sp.images[j].numpy())
