"""Write a nerfreg scene as the COLMAP model the peer loop reads, so both train on one scene.

The peer (``../shared/bench/gsplat_ref_train.py``) reads only COLMAP folders (``images/`` and
``sparse/0``) and starts from their ``points3D``. For a scene in another format (instant-ngp
``transforms.json``, NeRF-synthetic) this builds the config's dataset and model start exactly as
training does, and writes:

* ``images/NNN.png``: every view at the config's downscale, already undistorted and on the
  config's background, named by its index in the dataset's natural order, so that the peer's
  "every ``--test-every``-th name is test" picks nerfreg's test views (hold-out rule checked);
* ``sparse/0``: one PINHOLE camera per view and its world-to-camera pose (text format, via
  ``nerfreg.datasets.colmap_io``), in nerfreg's world frame;
* ``points3D``: nerfreg's own initial Gaussian centres and colours (for a scene without a
  point cloud, the config's random start), so the peer starts from the same points.

Run the peer on it with ``--downscale 1`` (the images are already at the training size).

    python benchmarks/peer_scene.py configs/gaussian_splatting/ngp_short.py \
        --out work_dirs/peer_scenes/fox
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import DictAction

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.datasets.base import natural_key, split_indices  # noqa: E402
from nerfreg.datasets.colmap_io import ColmapCamera, ColmapImage, ColmapPoints, write_model  # noqa: E402,I001
from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.ops.sh import SH_C0  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


def export_peer_scene(config: str, out: Path, cfg_options: dict | None = None,
                      seed: int = 0, test_every: int = 8) -> dict:
    """Write the scene of ``config`` (with ``cfg_options``) to ``out``; returns a summary."""
    cfg = load_config(config, dict(cfg_options or {}))
    cfg.merge_from_dict({'seed': seed, 'work_dir': str(out / 'nerfreg_work'),
                         'data.dataset.holdout_every': test_every, 'data.dataset.val_every': 0})
    trainer = DefaultTrainer.from_cfg(cfg)
    scene = trainer.data.dataset
    splits = {name: scene.split(name) for name in ('train', 'val', 'test')}
    n = sum(len(s) for s in splits.values())
    train_idx, val_idx, test_idx = split_indices(n, test_every, 0)
    if val_idx or len(train_idx) != len(splits['train']) or len(test_idx) != len(splits['test']):
        raise RuntimeError(f'{config}: the splits do not follow holdout_every={test_every}')
    (out / 'images').mkdir(parents=True, exist_ok=True)
    cameras, images = {}, {}
    for name, index in (('train', train_idx), ('test', test_idx)):
        split = splits[name]
        qvecs, tvecs = split.cameras.to_colmap()
        cams = split.cameras
        for j, i in enumerate(index):
            file = f'{i:03d}.png'
            img = split.images[j].numpy()
            cv2.imwrite(str(out / 'images' / file), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            params = np.array([float(cams.fx[j]), float(cams.fy[j]), float(cams.cx[j]),
                               float(cams.cy[j])])
            cameras[i + 1] = ColmapCamera(i + 1, 'PINHOLE', img.shape[1], img.shape[0], params)
            images[i + 1] = ColmapImage(i + 1, qvecs[j], tvecs[j], i + 1, file)
    names = sorted((im.name for im in images.values()), key=natural_key)
    peer_test = {names[k] for k in range(0, len(names), test_every)}
    if peer_test != {f'{i:03d}.png' for i in test_idx}:
        raise RuntimeError('the peer would hold out other views than nerfreg')
    model = trainer.model
    with torch.no_grad():
        xyz = model.params['means'].detach().double().cpu().numpy()
        rgb = (model.params['sh0'][:, 0, :] * SH_C0 + 0.5).clamp(0, 1).cpu().numpy()
    points = ColmapPoints(ids=np.arange(1, len(xyz) + 1, dtype=np.int64), xyz=xyz,
                          rgb=np.round(rgb * 255).astype(np.uint8),
                          errors=np.zeros(len(xyz)),
                          tracks=[np.zeros((0, 2), np.int32) for _ in range(len(xyz))])
    write_model(cameras, images, points, out / 'sparse' / '0', ext='.txt')
    return dict(out=str(out), views=n, test=len(test_idx), points=len(xyz),
                size=f'{images[1].name}: {cameras[1].width}x{cameras[1].height}')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('--out', type=Path, required=True, help='folder written (created)')
    ap.add_argument('--seed', type=int, default=0, help='seed of the random start')
    ap.add_argument('--test-every', type=int, default=8)
    ap.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = ap.parse_args()
    print(export_peer_scene(args.config, args.out, args.cfg_options, args.seed,
                            args.test_every))


if __name__ == '__main__':
    main()
