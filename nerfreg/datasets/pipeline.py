"""``DataPipeline``: seeded, resumable, rank-sliced batches of views for the trainer."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from mmengine.logging import print_log

from nerfreg.registry import DATASETS

from .base import BaseSceneDataset, DatasetError, SceneSplit

#: Above this many bytes of decoded images the pipeline warns (images live in RAM / VRAM).
LARGE_SCENE_BYTES = 4 * 2**30
#: Keys of ``data`` that configure the pipeline; everything else describes the dataset.
PIPELINE_KEYS = ('batch_size', 'image_device', 'shuffle')

_FLAT_WARNED = False


def split_data_cfg(cfg: Mapping) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline kwargs, dataset config) of a ``data`` config section.

    The nested form is ``dict(type='DataPipeline', batch_size=1, shuffle=True,
    dataset=dict(type=..., ...))`` (``type`` optional).
    Any other key at the top level (``--cfg-options data.data_root=...``, or a child config's
    ``data = dict(downscale=8)`` over a nested base) is a dataset key and overrides the one
    in ``dataset``. The old flat form (no ``dataset``) still works, with one warning.
    """
    global _FLAT_WARNED
    cfg = copy.deepcopy(dict(cfg))
    if cfg.get('type') in ('DataPipeline', DataPipeline):  # the pipeline's own type
        cfg.pop('type')
    pipe = {k: cfg.pop(k) for k in PIPELINE_KEYS if k in cfg}
    if 'dataset' in cfg:
        nested = cfg.pop('dataset')
        if not isinstance(nested, Mapping):
            raise TypeError(f'data.dataset must be a dict with a `type`, got {nested!r}')
        dataset = dict(nested)
        moved = [f'{k}={v!r}' for k, v in cfg.items() if dataset.get(k, v) != v]
        dataset.update(cfg)
        if moved:
            print_log('data: top-level key(s) ' + ', '.join(moved) + ' override data.dataset',
                      logger='current')
    else:
        dataset = cfg
        if not _FLAT_WARNED and dataset:
            _FLAT_WARNED = True
            print_log("data: the flat form is deprecated; nest the dataset keys: data = dict("
                      "batch_size=..., shuffle=..., dataset=dict(type=..., data_root=...))",
                      logger='current', level=30)
    return pipe, dataset


def build_dataset(cfg: Mapping) -> BaseSceneDataset:
    """The scene dataset of a ``data`` config section (nested or flat; pipeline keys ignored)."""
    return DATASETS.build(split_data_cfg(cfg)[1])


@DATASETS.register_module()
class DataPipeline:
    """Feeds views of a scene dataset as batches (see docs/architecture.md, "Data pipeline").

    Train views come in a seeded random order, a new permutation per epoch; the global
    order is consumed ``batch_size * world_size`` views per step and rank r takes its
    ``batch_size`` slice, so W processes see the same views as one with batch ``B * W``.
    The order depends only on (seed, epoch, position), which ``state_dict`` stores.
    Images stay uint8 (CPU, or the compute device with ``image_device='device'``) and are
    converted to float per batch.

    ``dataset`` is a scene dataset or its config; built from a config (``data.type =
    'DataPipeline'``), any other keyword is a dataset key that overrides ``dataset``'s
    (see ``split_data_cfg``).
    """

    def __init__(self, dataset: BaseSceneDataset | Mapping, device: str | torch.device = 'cpu',
                 seed: int = 0, batch_size: int = 1, image_device: str = 'cpu',
                 shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 **dataset_keys: Any) -> None:
        if isinstance(dataset, Mapping):
            dataset = DATASETS.build(split_data_cfg(dict(dataset_keys, dataset=dataset))[1])
        elif dataset_keys:
            raise TypeError(f'DataPipeline got dataset keys {sorted(dataset_keys)} with an '
                            'already built dataset; put them in the dataset config')
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f'bad batch_size={batch_size}, rank={rank}, '
                             f'world_size={world_size}')
        if image_device not in ('cpu', 'device'):
            raise ValueError(f"image_device must be 'cpu' or 'device', got {image_device!r}")
        self.dataset = dataset
        self.device = torch.device(device)
        self.seed, self.batch_size, self.shuffle = int(seed), int(batch_size), bool(shuffle)
        self.rank, self.world_size = int(rank), int(world_size)
        self.image_device = self.device if image_device == 'device' else torch.device('cpu')
        self.epoch, self.position = 0, 0
        self._perm_cache: dict[int, torch.Tensor] = {}
        if len(dataset.train) == 0:
            raise DatasetError(f'{type(dataset).__name__}: the train split is empty')
        if batch_size > 1:
            sizes = {(im.shape[1], im.shape[0]) for im in dataset.train.images}
            if len(sizes) > 1:
                raise DatasetError(f'batch_size={batch_size} needs one image size, but the train '
                                   f'views have {len(sizes)} sizes: {sorted(sizes)[:4]}')
        self._splits: dict[str, dict[str, Any]] = {}
        total = 0
        for name in ('train', 'val', 'test'):
            split = dataset.split(name)
            key = next((k for k, v in self._splits.items() if v['split'] is split), None)
            if key is not None:  # val is often the same object as test: share the storage
                self._splits[name] = self._splits[key]
                continue
            self._splits[name] = self._stage(split)
            total += split.nbytes()
        msg = (f'DataPipeline: {len(dataset.train)} train / {len(dataset.val)} val / '
               f'{len(dataset.test)} test views, {total / 2**20:.1f} MiB of uint8 images on '
               f'{self.image_device}')
        print_log(msg, logger='current')
        if total > LARGE_SCENE_BYTES:
            print_log(f'{msg}: large scene, consider a larger downscale', logger='current',
                      level=30)

    @classmethod
    def from_cfg(cls, cfg: Mapping, device: str | torch.device = 'cpu', seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> DataPipeline:
        """Pipeline from a ``data`` config: ``PIPELINE_KEYS`` here, the dataset built via
        ``DATASETS`` (nested or flat form, see ``split_data_cfg``)."""
        kwargs, dataset_cfg = split_data_cfg(cfg)
        dataset = DATASETS.build(dataset_cfg)
        return cls(dataset, device=device, seed=seed, rank=rank, world_size=world_size, **kwargs)

    # ---- storage --------------------------------------------------------------------------
    def _stage(self, split: SceneSplit) -> dict[str, Any]:
        dev = self.image_device
        return dict(split=split, cameras=split.cameras.to(self.device),
                    images=[im.to(dev) for im in split.images],
                    alphas=None if split.alphas is None else [a.to(dev) for a in split.alphas],
                    masks=None if split.masks is None else [m.to(dev) for m in split.masks])

    # ---- order ----------------------------------------------------------------------------
    def _perm(self, epoch: int) -> torch.Tensor:
        """Train order of ``epoch``: a permutation seeded by (seed, epoch)."""
        if epoch not in self._perm_cache:
            n = len(self.dataset.train)
            if self.shuffle:
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm = torch.randperm(n, generator=gen)
            else:
                perm = torch.arange(n)
            self._perm_cache = {epoch: perm}  # keep only the current epoch
        return self._perm_cache[epoch]

    def next_train_indices(self) -> torch.Tensor:
        """Train indices of this rank for the next step (advances the state)."""
        n = len(self.dataset.train)
        take, glob = self.batch_size * self.world_size, []
        while len(glob) < take:
            perm = self._perm(self.epoch)
            chunk = perm[self.position:self.position + take - len(glob)]
            glob.extend(chunk.tolist())
            self.position += len(chunk)
            if self.position >= n:
                self.epoch, self.position = self.epoch + 1, 0
        r0 = self.rank * self.batch_size
        return torch.tensor(glob[r0:r0 + self.batch_size], dtype=torch.long)

    def next_train_batch(self) -> dict[str, Any]:
        return self.make_batch('train', self.next_train_indices())

    def iter_split(self, split: str = 'test', shard: bool = False) -> Iterator[dict[str, Any]]:
        """Views of 'train' | 'val' | 'test' in order, one per batch (``shard``: every
        ``world_size``-th view from ``rank``)."""
        n = len(self.dataset.split(split))
        start, step = (self.rank, self.world_size) if shard else (0, 1)
        for i in range(start, n, step):
            yield self.make_batch(split, torch.tensor([i]))

    def __len__(self) -> int:
        return len(self.dataset.train)

    # ---- batches --------------------------------------------------------------------------
    def make_batch(self, split: str, index: torch.Tensor) -> dict[str, Any]:
        """Batch dict of the views ``index`` of ``split`` (contract in docs/architecture.md)."""
        store = self._splits[split]
        idx = index.tolist()
        cams = store['cameras'][idx]
        sizes = {(int(w), int(h)) for w, h in zip(cams.width, cams.height)}
        if len(sizes) != 1:
            raise DatasetError(f'views {idx} of {split} have different image sizes {sizes}')
        width, height = sizes.pop()
        images = torch.stack([store['images'][i] for i in idx]).to(self.device)
        batch = dict(image=images.float().div_(255.0), camera=cams, viewmats=cams.viewmats(),
                     Ks=cams.Ks(), width=width, height=height, name=list(cams.names),
                     index=index.to(self.device), split=split)
        if store['alphas'] is not None:
            alphas = torch.stack([store['alphas'][i] for i in idx]).to(self.device)
            batch['alpha'] = alphas.float().div_(255.0)
        if store['masks'] is not None:  # loss weights: 1 = use the pixel, 0 = ignore it
            masks = torch.stack([store['masks'][i] for i in idx]).to(self.device)
            batch['mask'] = masks.float().div_(255.0)
        return batch

    @staticmethod
    def split_views(batch: dict[str, Any]) -> list[dict[str, Any]]:
        """One single-view batch per view of ``batch`` (the inverse of ``make_batch``)."""
        n = int(batch['viewmats'].shape[0])
        if n == 1:
            return [batch]
        views = []
        for i in range(n):
            view = {}
            for key, value in batch.items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == n:
                    view[key] = value[i:i + 1]
                elif isinstance(value, list) and len(value) == n:
                    view[key] = value[i:i + 1]
                elif key == 'camera':
                    view[key] = value[[i]]
                else:
                    view[key] = value
            views.append(view)
        return views

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return dict(seed=self.seed, epoch=self.epoch, position=self.position)

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.seed, self.epoch, self.position = (int(state['seed']), int(state['epoch']),
                                                int(state['position']))
        self._perm_cache = {}
