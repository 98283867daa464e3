"""Logging without personal data or secrets.

:class:`RedactingFilter` rewrites every record that passes a handler it is attached to: citizen ID numbers
(GB 11643, 18 characters), credentials (``llk_...``/``llh_...``), ``Authorization`` header values,
32-hex-digit strings (the shape of a KEK) and 64-hex-digit strings next to the word ``salt`` are replaced by
``[redacted]``.
It is a net under the rule, not the rule: the node never logs documents, request bodies or query strings.
Access log lines (uvicorn's ``uvicorn.access`` records) are rewritten to method, path and status only: the
client's address (personal information under PIPL art. 4 when it identifies a person's device) and the query
string are dropped; paths hold license identifiers, which are public.

:func:`configure_logging` installs one stderr handler with the filter on the root logger and routes uvicorn's
loggers to it; :func:`uvicorn_log_config` is the same for ``uvicorn.run``.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from node.tokens import CREDENTIAL_PATTERN

REDACTED = "[redacted]"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])"), REDACTED),
    (re.compile(CREDENTIAL_PATTERN), REDACTED),
    (re.compile(r"(?i)(authorization[\"':=\s]+)((?:bearer|basic)\s+)?[^\s\"',]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)(bearer\s+)(?!\[redacted\])[^\s\"',]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Fa-f])"), REDACTED),
    (re.compile(r"(?i)(salt[\"':= ]+)[0-9a-f]{64}"), rf"\1{REDACTED}"),
)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    """``text`` with citizen IDs, credentials, bearer values, KEK-shaped and salt values replaced."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redact the formatted message (and any exception text) of every record; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            _client, method, full_path, _version, status = record.args  # uvicorn's '%s - "%s %s HTTP/%s" %d'
            record.msg = redact(f'"{method} {str(full_path).split("?", 1)[0]}" {status}')
            record.args = None
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
            record.msg = f"{record.msg} ({type(exc).__name__})"
        return True


def configure_logging(level: str = "INFO") -> None:
    """Root logger -> one stderr handler with :class:`RedactingFilter`; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_licledger", False):
            root.removeHandler(old)
    handler._licledger = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run``: every handler redacts."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter}},
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": level},
        },
    }
