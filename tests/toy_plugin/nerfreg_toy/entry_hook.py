"""Registered only through the ``nerfreg.plugins`` entry point in the engine tests."""

from nerfreg.registry import HOOKS
from nerfreg_toy import RecordingHook


@HOOKS.register_module()
class EntryPointHook(RecordingHook):
    pass
