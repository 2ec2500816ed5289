"""Messages of library modules (``logging.getLogger(__name__)`` under ``nerfreg.``, e.g.
strategy and model messages) reach the run's mmengine logger: console and log file."""

from __future__ import annotations

import logging

_FORWARD_NAME = 'nerfreg-to-mmlogger'


class _ToMMLogger(logging.Handler):
    """Hands records to the current run's ``MMLogger`` (its own handlers filter them)."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.set_name(_FORWARD_NAME)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def route_library_logs(target: logging.Logger, package: str = 'nerfreg',
                       level: int | str = logging.INFO) -> None:
    """Forward records of the stdlib logger ``package`` (and its children) to ``target``;
    called again by a later run, the forwarding moves to that run's logger."""
    library = logging.getLogger(package)
    library.handlers = [h for h in library.handlers if h.get_name() != _FORWARD_NAME]
    library.addHandler(_ToMMLogger(target))
    library.setLevel(level)  # records still propagate to the root (pytest's caplog, apps)
