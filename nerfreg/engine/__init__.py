"""Training engine: trainer, checkpoint IO and hooks."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .errors import NonFiniteError, TrainingInterrupted
from .trainer import DefaultTrainer

__all__ = ['DefaultTrainer', 'CheckpointError', 'load_checkpoint', 'save_checkpoint',
           'NonFiniteError', 'TrainingInterrupted']
