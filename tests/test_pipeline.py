"""DataPipeline: batch contract, seeded order, resume, rank slicing, eval iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.datasets import BaseSceneDataset, DataPipeline, DatasetError
from nerfreg.datasets.base import parse_background


class TinyScene(BaseSceneDataset):
    """In-memory scene: view i is filled with the value i (so batches reveal their views)."""

    def __init__(self, n: int = 13, alpha: bool = False, size=(8, 6)) -> None:
        w, h = size
        q = np.tile([1.0, 0, 0, 0], (n, 1))
        cams = Cameras.from_colmap(q, np.stack([np.arange(n), np.zeros(n), np.full(n, 3.0)], 1),
                                   fx=10.0, fy=10.0, cx=w / 2, cy=h / 2, width=w, height=h,
                                   names=[f'v{i}' for i in range(n)])
        imgs = [np.full((h, w, 3), i, np.uint8) for i in range(n)]
        alphas = [np.full((h, w, 1), 200, np.uint8) if alpha else None for _ in range(n)]
        names = cams.names
        self.build_splits(cams, imgs, alphas, names, holdout_every=5, val='test')
        self.background = parse_background('black')
        self._set_normalisation()


def ids(batch) -> list[int]:
    return [int(v) for v in batch['image'][:, 0, 0, 0] * 255 + 0.5]


def test_batch_contract():
    pipe = DataPipeline(TinyScene(alpha=True), device='cpu', seed=0, batch_size=3)
    b = pipe.next_train_batch()
    assert b['image'].shape == (3, 6, 8, 3) and b['image'].dtype == torch.float32
    assert b['alpha'].shape == (3, 6, 8, 1) and float(b['alpha'][0, 0, 0, 0]) == pytest.approx(
        200 / 255)
    assert isinstance(b['camera'], Cameras) and len(b['camera']) == 3
    assert b['viewmats'].shape == (3, 4, 4) and b['Ks'].shape == (3, 3, 3)
    assert (b['width'], b['height']) == (8, 6) and isinstance(b['width'], int)
    assert b['index'].dtype == torch.long and b['index'].shape == (3,)
    assert b['name'] == [pipe.dataset.train.names[i] for i in b['index'].tolist()]
    torch.testing.assert_close(b['viewmats'], b['camera'].viewmats())
    assert 'alpha' not in DataPipeline(TinyScene(), batch_size=1).next_train_batch()


def test_order_is_seeded_permutation_per_epoch():
    n = len(TinyScene().train)
    a = DataPipeline(TinyScene(), seed=3)
    seq = [ids(a.next_train_batch())[0] for _ in range(3 * n)]
    b = DataPipeline(TinyScene(), seed=3)
    assert seq == [ids(b.next_train_batch())[0] for _ in range(3 * n)]
    c = DataPipeline(TinyScene(), seed=4)
    assert seq != [ids(c.next_train_batch())[0] for _ in range(3 * n)]
    train_ids = sorted(int(i[1:]) for i in TinyScene().train.names)
    for e in range(3):
        assert sorted(seq[e * n:(e + 1) * n]) == train_ids  # each epoch: every view once
    assert seq[:n] != seq[n:2 * n]  # a new permutation every epoch
    assert a.state_dict() == dict(seed=3, epoch=3, position=0)
    ordered = DataPipeline(TinyScene(), shuffle=False)
    assert [ids(ordered.next_train_batch())[0] for _ in range(n)] == train_ids


def test_resume_continues_the_same_sequence():
    a = DataPipeline(TinyScene(), seed=7, batch_size=2)
    for _ in range(8):  # crosses an epoch boundary (10 train views)
        a.next_train_batch()
    state = a.state_dict()
    expected = [ids(a.next_train_batch()) for _ in range(10)]
    b = DataPipeline(TinyScene(), seed=0, batch_size=2)
    b.load_state_dict(state)
    assert [ids(b.next_train_batch()) for _ in range(10)] == expected


@pytest.mark.parametrize('batch_size', [1, 3])
def test_rank_slicing_matches_single_process(batch_size):
    single = DataPipeline(TinyScene(), seed=5, batch_size=2 * batch_size)
    ranks = [DataPipeline(TinyScene(), seed=5, batch_size=batch_size, rank=r, world_size=2)
             for r in range(2)]
    for _ in range(12):
        want = ids(single.next_train_batch())
        got = ids(ranks[0].next_train_batch()) + ids(ranks[1].next_train_batch())
        assert got == want
    assert ranks[0].state_dict() == ranks[1].state_dict() == single.state_dict()


def test_eval_splits_in_order_and_device_storage():
    pipe = DataPipeline(TinyScene(), image_device='device')
    test = list(pipe.iter_split('test'))
    assert [ids(b)[0] for b in test] == [0, 5, 10]
    assert all(b['image'].shape[0] == 1 for b in test)
    assert [b['name'][0] for b in pipe.iter_split('val')] == ['v0', 'v5', 'v10']
    sharded = DataPipeline(TinyScene(), rank=1, world_size=2)
    assert [ids(b)[0] for b in sharded.iter_split('test', shard=True)] == [5]


def test_mixed_sizes_need_batch_size_one():
    scene = TinyScene()
    scene.train.images[1] = torch.zeros(4, 4, 3, dtype=torch.uint8)
    with pytest.raises(DatasetError, match='one image size'):
        DataPipeline(scene, batch_size=2)
    DataPipeline(scene, batch_size=1)


def test_from_cfg_pops_pipeline_keys(tmp_path):
    cfg = dict(type='ProceduralSceneDataset', data_root=str(tmp_path / 'p'), image_size=16,
               n_train=6, n_val=1, n_test=2, num_points=100, batch_size=2,
               image_device='cpu', shuffle=False)
    pipe = DataPipeline.from_cfg(cfg, device='cpu', seed=1)
    assert pipe.batch_size == 2 and not pipe.shuffle and 'batch_size' in cfg
    b = pipe.next_train_batch()
    assert b['image'].shape == (2, 16, 16, 3) and 'alpha' in b
    assert b['index'].tolist() == [0, 1]


@pytest.mark.shared_data
def test_cup_from_base_config(cup_root):
    from mmengine.config import Config
    root = Path(__file__).resolve().parents[1]
    cfg = Config.fromfile(str(root / 'configs' / '_base_' / 'datasets' / 'colmap.py'))
    assert cfg.data.dataset.data_root == '../shared/data/cup' and cfg.data.batch_size == 1
    # what `--cfg-options data.data_root=... data.downscale=8` does to the nested config
    cfg.merge_from_dict({'data.data_root': str(cup_root), 'data.downscale': 8})
    pipe = DataPipeline.from_cfg(cfg.data, device='cpu', seed=0)
    b = pipe.next_train_batch()
    assert b['image'].shape == (1, 75, 100, 3) and len(pipe.dataset.test) == 10
    ds = pipe.dataset
    assert (len(ds.train), len(ds.val), len(ds.test)) == (58, 9, 10)  # val_every=8
    assert not set(ds.val.names) & (set(ds.train.names) | set(ds.test.names))


def test_split_data_cfg_nested_flat_and_overrides(tmp_path, monkeypatch):
    from nerfreg.datasets import pipeline as pipeline_mod
    from nerfreg.datasets import split_data_cfg
    logged = []
    monkeypatch.setattr(pipeline_mod, 'print_log', lambda msg, **kw: logged.append(msg))
    scene = dict(type='ProceduralSceneDataset', data_root=str(tmp_path / 'p'), image_size=16,
                 n_train=6, n_val=1, n_test=2, num_points=100)
    nested = dict(batch_size=2, shuffle=False, dataset=dict(scene))
    assert split_data_cfg(nested) == (dict(batch_size=2, shuffle=False), scene)
    assert nested['dataset'] == scene  # the caller's config is not modified
    # dataset keys at the top level (--cfg-options data.image_size=8) override data.dataset
    pipe_kw, ds_cfg = split_data_cfg(dict(nested, image_size=8, n_test=2))
    assert pipe_kw == dict(batch_size=2, shuffle=False)
    assert ds_cfg == dict(scene, image_size=8)
    assert logged == ['data: top-level key(s) image_size=8 override data.dataset']
    # the old flat form gives the same split and warns once
    pipeline_mod._FLAT_WARNED = False
    flat = dict(scene, batch_size=2, shuffle=False)
    assert split_data_cfg(flat) == (dict(batch_size=2, shuffle=False), scene)
    split_data_cfg(flat)
    assert sum('flat form is deprecated' in m for m in logged) == 1
    with pytest.raises(TypeError, match='data.dataset must be a dict'):
        split_data_cfg(dict(dataset='ColmapDataset'))
    pipe = DataPipeline.from_cfg(dict(nested, image_size=8), device='cpu', seed=1)
    assert pipe.batch_size == 2 and not pipe.shuffle
    assert pipe.next_train_batch()['image'].shape == (2, 8, 8, 3)
    # `type='DataPipeline'` makes `data` itself a registry entry (as the shipped configs do):
    # the trainer builds it with its device / seed / rank, and `DATASETS.build` of the
    # section without the pipeline keys still yields the pipeline and its dataset
    from nerfreg.datasets import build_dataset
    from nerfreg.registry import DATASETS
    typed = dict(nested, type='DataPipeline', image_size=8)
    assert split_data_cfg(typed) == split_data_cfg(dict(nested, image_size=8))
    built = DATASETS.build(typed, default_args=dict(device='cpu', seed=1, rank=0,
                                                    world_size=1))
    assert isinstance(built, DataPipeline) and built.batch_size == 2
    assert built.next_train_batch()['index'].tolist() == [0, 1]
    assert built.dataset.train.images[0].shape == (8, 8, 3)
    assert build_dataset(typed).train.images[0].shape == (8, 8, 3)
    # switching the dataset type from the top level still works
    switched = dict(dataset=dict(type='ColmapDataset', data_root='nowhere'),
                    type='BlenderDataset', data_root=scene['data_root'])  # data.type=...
    blender = build_dataset(switched)
    assert type(blender).__name__ == 'BlenderDataset'
    with pytest.raises(TypeError, match='already built dataset'):
        DataPipeline(built.dataset, data_root='x')


def test_split_views_inverts_make_batch():
    pipe = DataPipeline(TinyScene(alpha=True), seed=1, batch_size=3)
    batch = pipe.next_train_batch()
    views = pipe.split_views(batch)
    assert len(views) == 3
    for i, view in enumerate(views):
        single = pipe.make_batch('train', batch['index'][i:i + 1])
        assert view.keys() == single.keys()
        for key, value in single.items():
            if torch.is_tensor(value):
                assert torch.equal(view[key], value), key
            elif key == 'camera':
                assert torch.equal(view[key].viewmats(), value.viewmats())
            else:
                assert view[key] == value, key
    assert pipe.split_views(pipe.make_batch('train', torch.tensor([0])))[0]['index'].shape == (1,)
