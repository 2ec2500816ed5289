"""Default hooks of the trainer, registered in ``nerfreg.registry.HOOKS``."""

from .checkpoint_hook import CheckpointHook
from .iter_timer_hook import IterTimerHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .sync_check_hook import SyncCheckHook

__all__ = ['CheckpointHook', 'IterTimerHook', 'LoggerHook', 'ParamSchedulerHook',
           'SyncCheckHook']
