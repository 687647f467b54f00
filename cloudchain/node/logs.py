"""How a node writes its log: `[log] level` and `[log] format` of config.toml.

format = "plain": one line per record, level, time, module, message, then the
structured fields as key=value (values with spaces, quotes or "=" are quoted):

    INFO 2026-01-02T03:04:05.678Z cloudchain.node.runtime: committed height=5 txs=0

format = "json" (CometBFT's log_format = "json"): one JSON object per line, with
"level", "ts", "module" (the logger's name), "msg" and the fields as members:

    {"level": "info", "ts": "2026-01-02T03:04:05.678Z", "module": "...", "msg": "committed",
     "height": 5, "txs": 0}

Times are RFC 3339, UTC, milliseconds. Fields are what a call passed with
`extra=cloudchain.logfields.fields(...)`; bytes are written as hex. A field named
like one of the record's own members is written with a leading underscore, so it
cannot hide them. A logged exception's traceback follows a plain line on the
lines below it; in JSON it is the "traceback" member and the record stays one line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from cloudchain.logfields import FIELDS_ATTRIBUTE
from cloudchain.node.config import LOG_FORMATS, LogConfig

_BARE_VALUE = re.compile(r'[^\s"=\\]+')  # a plain value written without quotes
_JSON_MEMBERS = ("level", "ts", "module", "msg", "traceback")


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname, _timestamp(record), f"{record.name}:", record.getMessage()]
        parts += [f"{key}={_plain_value(value)}" for key, value in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname.lower(),
            "ts": _timestamp(record),
            "module": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry[f"_{key}" if key in _JSON_MEMBERS else key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=_json_value, ensure_ascii=False)


FORMATTERS: dict[str, type[logging.Formatter]] = {"plain": PlainFormatter, "json": JSONFormatter}
assert set(FORMATTERS) == set(LOG_FORMATS), "every format config.toml accepts has a formatter"


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Send every record at `config.level` or above to `stream` (stdout), in `config.format`.

    The handlers the root logger had are replaced: the node process owns its log."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(FORMATTERS[config.format]())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    values = getattr(record, FIELDS_ATTRIBUTE, None)
    return values if isinstance(values, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = value.hex() if isinstance(value, bytes) else str(value)
    return text if _BARE_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def _json_value(value: Any) -> Any:
    """What json.dumps writes for a field value it has no encoding for."""
    return value.hex() if isinstance(value, bytes) else str(value)
