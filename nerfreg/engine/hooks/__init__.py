"""Default hooks of the trainer, registered in ``nerfreg.registry.HOOKS``."""

from .checkpoint_hook import CheckpointHook
from .final_export_hook import FinalExportHook
from .iter_timer_hook import IterTimerHook
from .logger_hook import LoggerHook
from .param_scheduler_hook import ParamSchedulerHook
from .sync_check_hook import SyncCheckHook
from .test_output_hook import TestOutputHook
from .visualization_hook import VisualizationHook

__all__ = ['CheckpointHook', 'FinalExportHook', 'IterTimerHook', 'LoggerHook',
           'ParamSchedulerHook', 'SyncCheckHook', 'TestOutputHook', 'VisualizationHook']
