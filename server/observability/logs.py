"""Structured logs: one JSON object a line (``onemap serve --log-format json``) with the request id.

The request id of the request being served is kept in a context variable by the observability
middleware, so every line logged while serving it (the access log included) carries it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("onemap_request_id", default=None)

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...}``; extra fields given to the logger are kept."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config`` dictionary for uvicorn and the server's loggers in ``text`` or ``json``."""
    formatter = ({"()": "server.observability.logs.JsonFormatter"} if log_format == "json"
                 else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
               for name in ("uvicorn", "uvicorn.access", "onemap")}
    loggers["uvicorn.error"] = {"level": level.upper()}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"default": formatter},
            "handlers": {"default": handler}, "loggers": loggers,
            "root": {"handlers": ["default"], "level": "WARNING"}}
