"""Snakemake's terminal view for tuneladder: `snakemake --logger tuneladder`.

The project's profile turns it on. A real run shows the ladder (tuneladder's own
lines: its plan, trials done, best so far, time left, what won) with warnings and
errors, and keeps Snakemake's job blocks in Snakemake's log file only; a dry run,
``--logger-tuneladder-jobs``, ``--verbose`` or ``--printshellcmds`` shows Snakemake's
full view. Which records stay out is decided by :func:`tuneladder.execution.terminal.hidden`.
"""

# no `from __future__ import annotations`: Snakemake reads the settings' field types
# (bool makes a flag), and would get their names as strings
import sys
from dataclasses import dataclass, field
from logging import LogRecord

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

__all__ = ["LogHandler", "LogHandlerSettings"]


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    jobs: bool = field(
        default=False,
        metadata={"help": "show Snakemake's job blocks and job counts too, as without the plugin"},
    )


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        # Snakemake's own stream handler, filter and formatter draw what is shown
        from snakemake.logging import ColorizingTextHandler, DefaultFilter, DefaultFormatter

        settings = self.common_settings
        self._default_filter = DefaultFilter(
            settings.quiet,
            settings.debug_dag,
            settings.verbose,
            settings.dryrun,
            settings.printshellcmds,
        )
        self._stream = ColorizingTextHandler(
            nocolor=settings.nocolor, stream=sys.stdout if settings.stdout else sys.stderr
        )
        self._stream.setFormatter(DefaultFormatter(settings.quiet, settings.show_failed_logs))
        full = bool(getattr(self.settings, "jobs", False))
        shown = full or settings.dryrun or settings.verbose or settings.printshellcmds
        self._compact = not shown

    def emit(self, record: LogRecord) -> None:
        from tuneladder.execution.terminal import hidden

        if not self._default_filter.filter(record):
            return
        if self._compact and hidden(record):
            return
        self._stream.emit(record)

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
