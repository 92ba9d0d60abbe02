"""Structured logs: one JSON object per line on stderr, each carrying the request's id.

The id of the request being served lives in a context variable that the request middleware
sets (couponapi.api.middleware), so every line logged while serving it, by our code or a
library's, says which request it belongs to. Headers, bodies and tokens are never logged.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextvars import ContextVar
from typing import Any

import msgspec

REQUEST_ID: ContextVar[str | None] = ContextVar("couponapi_request_id", default=None)

_ENCODER = msgspec.json.Encoder()
_make_record = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record notes the request being served when it is made (formatting may be later)."""
    record = _make_record(*args, **kwargs)
    record.request_id = REQUEST_ID.get()
    return record


if not getattr(_make_record, "adds_request_id", False):
    _record_with_request_id.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"?, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return _ENCODER.encode(entry).decode()


def log_config(level: str = "info") -> dict[str, Any]:
    """A logging.config.dictConfig for the server: ours, uvicorn's and granian's, all JSON."""
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "couponapi.logs.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


class Throttle:
    """Lets one line through per `interval` seconds and counts the ones it held back, so an
    outage answered 10,000 times a second writes one warning a second, not 10,000."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0
        self._held = 0

    def allow(self) -> int | None:
        """None to stay quiet; else how many lines were held back since the last one."""
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return None
        held, self._held, self._next = self._held, 0, now + self.interval
        return held
