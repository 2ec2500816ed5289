"""Training never writes into the data folder; derived images come from the cache next time."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from nerfreg.datasets import natural_key
from nerfreg.datasets.colmap_io import read_model, write_model

REPO = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: files by content hash and size, folders by name, with
    their modes (the listing and the bytes; root ignores permission bits, so CI's root user
    could write to a read-only folder without this noticing otherwise)."""
    out = {}
    for path in sorted(root.rglob('*')):
        rel = str(path.relative_to(root))
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_file():
            out[rel] = ('file', mode, path.stat().st_size,
                        hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = ('dir', mode)
    return out


def cup_subset(cup_root: Path, dest: Path, n: int = 12) -> Path:
    """A small real scene: the first ``n`` cup photos (full size) and their COLMAP model."""
    cams, images, points = read_model(cup_root / 'sparse' / '0')
    keep = sorted(images.values(), key=lambda im: natural_key(im.name))[:n]
    images = {im.id: im for im in keep}
    cams = {im.camera_id: cams[im.camera_id] for im in keep}
    write_model(cams, images, points, dest / 'sparse' / '0', '.bin')
    (dest / 'images').mkdir(parents=True)
    for im in keep:
        shutil.copy2(cup_root / 'images' / im.name, dest / 'images' / im.name)
    return dest


def train_a_few_steps(scene: Path, work_dir: Path):
    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({
        'data.data_root': str(scene), 'data.downscale': 4, 'data.holdout_every': 4,
        'data.val_every': 4, 'train_cfg.max_steps': 4, 'train_cfg.val_interval': 4,
        'custom_hooks': [], 'default_hooks.checkpoint.interval': 4,
        'work_dir': str(work_dir), 'device': 'cpu'})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    trainer.test()
    return trainer


@pytest.mark.shared_data
def test_training_leaves_a_read_only_scene_byte_identical(cup_root, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(cache))
    scene = cup_subset(cup_root, tmp_path / 'cup12')
    for path in [scene, *scene.rglob('*')]:  # chmod -R a-w
        os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)
    before = snapshot(scene)
    assert len([v for v in before.values() if v[0] == 'file']) == 15  # 12 photos + 3 .bin
    try:
        first = train_a_few_steps(scene, tmp_path / 'work1')
        ds = first.data.dataset
        assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 3, 3)
        assert ds.image_cache.stats() == dict(hits=0, misses=12, writes=12)
        assert 'psnr' in first.val_metrics and 'psnr' in first.test_metrics
        assert snapshot(scene) == before  # byte-identical, nothing added
        entries = sorted(cache.rglob('*.npy'))
        assert len(entries) == 12
        stamps = [p.stat().st_mtime_ns for p in entries]

        second = train_a_few_steps(scene, tmp_path / 'work2')
        assert second.data.dataset.image_cache.stats() == dict(hits=12, misses=0, writes=0)
        assert [p.stat().st_mtime_ns for p in sorted(cache.rglob('*.npy'))] == stamps
        assert snapshot(scene) == before
        for a, b in zip(ds.train.images, second.data.dataset.train.images):
            assert a.equal(b)
    finally:
        for path in [scene, *scene.rglob('*')]:  # let pytest clean tmp_path up
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)


def test_unwritable_cache_warns_once_in_the_run_log(tmp_path):
    """A cache folder that cannot be created costs only memory, and says so once, through
    mmengine's logger (so the message reaches the run's log file, not just the terminal)."""
    import numpy as np
    from mmengine.logging import MMLogger

    from nerfreg.datasets.cache import ImageCache
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('x')
    log_file = tmp_path / 'run.log'
    logger = MMLogger.get_instance(f'cache_test_{tmp_path.name}', log_file=str(log_file))
    cache = ImageCache(blocker / 'cache')
    src = tmp_path / 'src.png'
    src.write_bytes(b'png')
    for factor in (2, 4):
        key = cache.key(src, factor=factor)
        cache.put(key, np.zeros((2, 2, 3), np.uint8))
        assert cache.get(key) is None
    for handler in logger.handlers:
        handler.flush()
    text = log_file.read_text()
    assert text.count('is not writable') == 1 and 'NERFREG_CACHE_DIR' in text
    assert cache.writes == 0 and blocker.read_text() == 'x'
