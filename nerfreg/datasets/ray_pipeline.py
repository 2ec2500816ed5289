"""``RayPipeline`` (``DATASETS``): random rays across all training images for training,
whole views for validation and test.

A drop-in for ``DataPipeline``: the trainer builds any registered class that has
``next_train_batch``. Configs switch by type only: ``data = dict(type='RayPipeline',
rays_per_step=4096)`` over a ``_base_/datasets/*.py`` file; the nested ``dataset`` (or the
old flat keys, with ``dataset_type`` naming the class) builds the dataset exactly as
``DataPipeline.from_cfg`` would, so ``--cfg-options data.downscale=2`` works unchanged.
Whole views come from an inner ``DataPipeline`` (same batches as splatting's evaluation).

Sampling: step ``k`` draws ``rays_per_step`` pixels uniformly over all training pixels
with a generator seeded by (seed, rank, k); ``state_dict`` stores (seed, k), so a resumed
run draws exactly the rays of an uninterrupted one, and ranks draw different rays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from nerfreg.ops.ray_march import pixel_rays
from nerfreg.registry import DATASETS

from .base import DatasetError
from .pipeline import DataPipeline, build_dataset


@DATASETS.register_module()
class RayPipeline:
    """Ray batches: ``rays_o [R,3]``, ``rays_d [R,3]`` (unit), ``image [R,3]`` float,
    ``alpha [R,1]`` (when the source has alpha), ``mask [R,1]`` (loss masks),
    ``cam_index [R]``, ``pixel [R,2]``, ``split='train'``."""

    def __init__(self, rays_per_step: int = 4096, device: str | torch.device = 'cpu',
                 seed: int = 0, rank: int = 0, world_size: int = 1, image_device: str = 'cpu',
                 batch_size: int = 1, shuffle: bool = True, dataset: Mapping | None = None,
                 dataset_type: str | None = None, **dataset_kwargs: Any) -> None:
        if rays_per_step < 1:
            raise ValueError(f'data.rays_per_step must be >= 1, got {rays_per_step}')
        if dataset is None:  # flat form: dataset_type names the class
            dataset_kwargs['type'] = dataset_type or 'BlenderDataset'
        else:
            dataset_kwargs['dataset'] = dataset
            if dataset_type is not None:
                dataset_kwargs['type'] = dataset_type
        dataset = build_dataset(dataset_kwargs)
        self.views = DataPipeline(dataset, device=device, seed=seed, batch_size=batch_size,
                                  image_device=image_device, shuffle=shuffle, rank=rank,
                                  world_size=world_size)
        self.dataset = dataset
        self.device = torch.device(device)
        self.rays_per_step = int(rays_per_step)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.step = 0
        train = dataset.train
        self.cameras = train.cameras.to(self.device)
        sizes = torch.tensor([[im.shape[0], im.shape[1]] for im in train.images])
        self.heights, self.widths = sizes[:, 0], sizes[:, 1]
        n_pix = self.heights * self.widths
        self.offsets = torch.zeros(len(n_pix) + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(n_pix, 0)
        # all training pixels flattened (uint8), gathered per step
        self.pixels = torch.cat([im.reshape(-1, 3) for im in train.images])
        self.alphas = (None if train.alphas is None else
                       torch.cat([a.reshape(-1, 1) for a in train.alphas]))
        self.masks = (None if train.masks is None else
                      torch.cat([m.reshape(-1, 1) for m in train.masks]))
        if self.pixels.shape[0] == 0:
            raise DatasetError(f'{type(dataset).__name__}: the train images are empty')

    # ---- training rays ------------------------------------------------------------------
    def next_train_batch(self) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(
            ((self.seed * 1_000_003 + self.rank) * 1_000_000_007 + self.step) % (2 ** 63))
        self.step += 1
        flat = torch.randint(0, int(self.offsets[-1]), (self.rays_per_step,), generator=gen)
        cam = torch.searchsorted(self.offsets, flat, right=True) - 1
        local = flat - self.offsets[cam]
        w = self.widths[cam]
        pix = torch.stack([local % w, local // w], 1)
        dev = self.device
        origins, dirs = pixel_rays(self.cameras, 0, 0, pix.to(dev), cam.to(dev))
        batch = dict(rays_o=origins.float(), rays_d=dirs.float(),
                     image=self.pixels[flat].to(dev).float().div_(255.0),
                     cam_index=cam.to(dev), pixel=pix.to(dev), split='train')
        if self.alphas is not None:
            batch['alpha'] = self.alphas[flat].to(dev).float().div_(255.0)
        if self.masks is not None:
            batch['mask'] = self.masks[flat].to(dev).float().div_(255.0)
        return batch

    # ---- whole views --------------------------------------------------------------------
    def iter_split(self, split: str = 'test', shard: bool = False) -> Iterator[dict[str, Any]]:
        return self.views.iter_split(split, shard=shard)

    def make_batch(self, split: str, index: torch.Tensor) -> dict[str, Any]:
        return self.views.make_batch(split, index)

    def __len__(self) -> int:
        return len(self.dataset.train)

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return dict(seed=self.seed, step=self.step)

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if 'step' not in state:
            raise ValueError('this checkpoint was trained on whole views (DataPipeline), not '
                             'ray batches; use the config it was trained with')
        self.seed, self.step = int(state['seed']), int(state['step'])
