"""Scene datasets (registered in ``DATASETS``) and the ``DataPipeline`` feeding the trainer.

Importing this package registers every dataset (the registry's lazy location).
"""

from .base import (
    BaseSceneDataset,
    DatasetError,
    SceneSplit,
    holdout_indices,
    natural_key,
    split_indices,
)
from .blender import BlenderDataset
from .colmap import ColmapDataset
from .ngp import NGPDataset
from .pipeline import DataPipeline, build_dataset, split_data_cfg
from .procedural import ProceduralSceneDataset
from .ray_pipeline import RayPipeline

__all__ = [
    'BaseSceneDataset', 'BlenderDataset', 'ColmapDataset', 'DataPipeline', 'DatasetError',
    'NGPDataset', 'ProceduralSceneDataset', 'RayPipeline', 'SceneSplit', 'build_dataset',
    'holdout_indices', 'natural_key', 'split_data_cfg', 'split_indices',
]
