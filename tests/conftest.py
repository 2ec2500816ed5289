"""Shared pytest fixtures: paths to the real scenes beside the repo, seeded torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / 'shared' / 'data'


def shared_scene(name: str) -> Path:
    """Path of a real scene in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f'real scene {path} is absent (../shared/data is not beside the repo)')
    return path


@pytest.fixture
def cup_root() -> Path:
    return shared_scene('cup')


@pytest.fixture
def fox_root() -> Path:
    return shared_scene('fox')


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture(autouse=True)
def _cache_dir_in_tmp(tmp_path_factory, monkeypatch):
    """Derived images (and the default procedural scene) go to one temp cache per session,
    never to ~/.cache/nerfreg or beside the data."""
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(tmp_path_factory.getbasetemp() / 'nerfreg_cache'))
    yield
