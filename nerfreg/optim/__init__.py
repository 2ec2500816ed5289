"""Optimizers (``OPTIMIZERS``) and step-indexed lr schedulers (``PARAM_SCHEDULERS``)."""

from ..utils.grad_check import non_finite_gradients
from .gaussian_optimizer import DEFAULT_LRS, GaussianOptimizer
from .schedulers import ExponentialDecayLR, StepLRScheduler

__all__ = ['DEFAULT_LRS', 'GaussianOptimizer', 'ExponentialDecayLR', 'StepLRScheduler',
           'non_finite_gradients']
