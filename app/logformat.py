"""Log lines as JSON objects, and the one setting prometheus-client needs before it is imported.

Kept apart from ``app.observability`` (which imports prometheus-client): the CLI configures
logging and points ``PROMETHEUS_MULTIPROC_DIR`` at a directory before anything imports it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from typing import Any

import orjson

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str:
    """Before the workers start: ``PROMETHEUS_MULTIPROC_DIR`` (the operator's, or a fresh
    temporary directory), emptied of a previous run's values, which would otherwise be added
    to this run's."""
    directory = os.environ.get(MULTIPROCESS_ENV) or tempfile.mkdtemp(prefix="trainer-metrics-")
    os.makedirs(directory, exist_ok=True)
    for entry in os.listdir(directory):
        if entry.endswith(".db"):
            os.unlink(os.path.join(directory, entry))
    os.environ[MULTIPROCESS_ENV] = directory
    return directory


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the record's request
    id and fields when it has them, and the traceback of an exception."""

    _second = -1
    _second_text = ""

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds; the date and time of a second made once."""
        second = int(created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["requestId"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _Ours(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (so that it replaces only its own)."""


def configure_logging(level: str, log_format: str = "json") -> None:
    """The root logger writes to stderr, JSON lines or plain text; idempotent."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Ours)]:
        root.removeHandler(handler)
    handler = _Ours(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
