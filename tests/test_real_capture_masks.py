"""Loss masks: exact exclusion from the loss, COLMAP ``masks_dir`` (any extension) into
batches of both pipelines, and the size-mismatch error naming both files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nerfreg.datasets import ColmapDataset, DataPipeline
from nerfreg.datasets.base import DatasetError, natural_key
from nerfreg.datasets.colmap_io import read_model, write_model
from nerfreg.models.losses import l1_ssim_loss, masked_l1_ssim_loss


def test_all_ones_mask_equals_the_unmasked_loss():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 20, 24, 3), torch.rand(2, 20, 24, 3)
    ref = l1_ssim_loss(pred, target, 0.2, fused=False)
    got = masked_l1_ssim_loss(pred, target, torch.ones(2, 20, 24, 1), 0.2)
    for key in ('loss', 'l1', 'dssim'):
        assert torch.allclose(got[key], ref[key], atol=1e-6), key


def test_masked_pixels_leave_the_loss_exactly():
    torch.manual_seed(0)
    pred = torch.rand(1, 20, 24, 3, requires_grad=True)
    target = torch.rand(1, 20, 24, 3)
    mask = torch.ones(1, 20, 24, 1)
    mask[:, 5:12, 8:20] = 0
    loss = masked_l1_ssim_loss(pred, target, mask)['loss']
    loss.backward()
    hidden = (mask[0, ..., 0] == 0)
    assert float(pred.grad[0][hidden].abs().max()) == 0.0
    assert float(pred.grad[0][~hidden].abs().max()) > 0
    # anything painted into the masked region of the photo or the render: same loss
    painted_t, painted_p = target.clone(), pred.detach().clone()
    painted_t[:, 5:12, 8:20] = torch.tensor([1.0, 0.0, 1.0])
    painted_p[:, 5:12, 8:20] = 0.3
    again = masked_l1_ssim_loss(painted_p, painted_t, mask)['loss']
    assert torch.equal(again, loss.detach())
    # the L1 part is the mean over the kept pixels
    l1 = masked_l1_ssim_loss(pred.detach(), target, mask)['l1']
    keep = mask[0, ..., 0] > 0
    assert torch.allclose(l1, (pred.detach() - target)[0][keep].abs().mean())


def _cup_scene(cup_root: Path, dest: Path, n: int = 6) -> tuple[Path, list]:
    """The first ``n`` cup photos (symlinked) and their COLMAP model, in ``dest``."""
    cams, images, points = read_model(cup_root / 'sparse' / '0')
    keep = sorted(images.values(), key=lambda im: natural_key(im.name))[:n]
    write_model({im.camera_id: cams[im.camera_id] for im in keep}, {im.id: im for im in keep},
                points, dest / 'sparse' / '0', '.bin')
    (dest / 'images').mkdir(parents=True)
    for im in keep:
        (dest / 'images' / im.name).symlink_to(cup_root / 'images' / im.name)
    return dest, keep


def test_colmap_masks_dir_reaches_the_batches_and_mismatches_fail(cup_root, tmp_path):
    scene, keep = _cup_scene(cup_root, tmp_path / 'scene')
    (scene / 'masks').mkdir()
    for k, im in enumerate(keep):
        mask = np.full((600, 800), 255, np.uint8)
        mask[:300, :400] = 0  # top-left quarter ignored
        name = Path(im.name).stem + '.png' if k % 2 else im.name + '.png'  # both conventions
        cv2.imwrite(str(scene / 'masks' / name), mask)
    ds = ColmapDataset(scene, downscale=8, holdout_every=3, masks_dir='masks')
    assert ds.train.masks is not None and len(ds.train.masks) == len(ds.train)
    m = ds.train.masks[0]
    assert m.shape == (75, 100, 1) and m.dtype == torch.uint8
    assert int(m[:37, :50].max()) == 0 and int(m[38:, 51:].min()) == 255
    pipe = DataPipeline(ds, batch_size=2)
    batch = pipe.next_train_batch()
    assert batch['mask'].shape == (2, 75, 100, 1) and batch['split'] == 'train'
    assert float(batch['mask'][:, 0, 0].max()) == 0.0 and float(batch['mask'][:, -1, -1].min()) == 1

    from nerfreg.datasets import RayPipeline
    rays = RayPipeline(rays_per_step=500, dataset=dict(
        type='ColmapDataset', data_root=str(scene), downscale=8, holdout_every=3,
        masks_dir='masks'))
    rb = rays.next_train_batch()
    left_top = (rb['pixel'][:, 0] < 50) & (rb['pixel'][:, 1] < 37)
    assert rb['mask'].shape == (500, 1)
    assert float(rb['mask'][left_top].max()) == 0.0 and float(rb['mask'][~left_top].min()) > 0

    bad = Path(keep[1].name).stem + '.png'
    cv2.imwrite(str(scene / 'masks' / bad), np.full((300, 400), 255, np.uint8))
    with pytest.raises(DatasetError) as err:
        ColmapDataset(scene, downscale=8, masks_dir='masks')
    msg = str(err.value)
    assert bad in msg and keep[1].name in msg and '400x300' in msg and '800x600' in msg
    (scene / 'masks' / bad).unlink()
    with pytest.raises(DatasetError, match=f'no mask for image {keep[1].name}'):
        ColmapDataset(scene, downscale=8, masks_dir='masks')


def test_ngp_mask_path_and_blender_alpha_masks(tmp_path):
    import json

    from test_datasets_ngp import write_ngp

    from nerfreg.datasets import BlenderDataset, NGPDataset
    from nerfreg.datasets.procedural import generate_scene
    root = write_ngp(tmp_path / 'ngp', n=4, size=(40, 30))
    meta = json.loads((root / 'transforms.json').read_text())
    (root / 'masks').mkdir()
    for i, frame in enumerate(meta['frames']):
        mask = np.full((30, 40), 255, np.uint8)
        mask[:, :10 + i] = 0
        cv2.imwrite(str(root / 'masks' / f'{i:03d}.png'), mask)
        frame['mask_path'] = f'masks/{i:03d}.png'
    (root / 'transforms.json').write_text(json.dumps(meta))
    ds = NGPDataset(root, holdout_every=0)
    assert [int((m[..., 0] == 0).sum()) for m in ds.train.masks] == [
        30 * (10 + i) for i in range(4)]
    cv2.imwrite(str(root / 'masks' / '002.png'), np.zeros((31, 40), np.uint8))
    with pytest.raises(DatasetError, match=r'002\.png is 40x31 but its image .*002\.png is 40x30'):
        NGPDataset(root, holdout_every=0)

    scene = tmp_path / 'blender'
    generate_scene(scene, image_size=24, n_train=3, n_val=1, n_test=1, num_points=100)
    plain = BlenderDataset(scene)
    masked = BlenderDataset(scene, alpha_mask=True)
    assert plain.train.masks is None
    for a, m in zip(masked.train.alphas, masked.train.masks):
        assert torch.equal(a, m)
