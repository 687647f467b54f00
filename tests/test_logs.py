"""The node's log formats: plain key=value lines and JSON lines, chosen in config.toml."""

import io
import json
import logging
import re
import time

import pytest

from cloudchain.logfields import fields
from cloudchain.node.config import ConfigError, LogConfig, NodeConfig
from cloudchain.node.logs import FORMATTERS, JSONFormatter, PlainFormatter, configure_logging
from cloudchain.timefmt import parse_rfc3339_ns

RFC3339_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def logger():
    """A logger of its own, whose records go only where `capture` sends them."""
    logger = logging.getLogger("cloudchain.test_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def capture(logger, formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.handlers[:] = [handler]
    return stream


def test_json_lines_carry_level_time_module_message_and_fields(logger):
    stream = capture(logger, JSONFormatter())
    before_ns = time.time_ns()
    logger.info("committed", extra=fields(height=5, txs=0, hash=b"\xab\xcd", ok=True))
    logger.warning("peer %s misbehaved", "ab12", extra=fields(msg="shadowed", error="bad\nframe"))
    logger.debug("no fields")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # one JSON object per line, newlines in values escaped
    first, second, third = (json.loads(line) for line in lines)
    assert first == {
        "level": "info",
        "ts": first["ts"],
        "module": "cloudchain.test_logs",
        "msg": "committed",
        "height": 5,
        "txs": 0,
        "hash": "abcd",
        "ok": True,
    }
    assert re.fullmatch(RFC3339_MS, first["ts"])
    assert abs(parse_rfc3339_ns(first["ts"]) - before_ns) < 60 * 10**9
    assert (second["level"], second["msg"]) == ("warning", "peer ab12 misbehaved")
    assert (second["_msg"], second["error"]) == ("shadowed", "bad\nframe")
    assert third["level"] == "debug" and set(third) == {"level", "ts", "module", "msg"}


def test_plain_lines_are_level_time_module_message_then_key_values(logger):
    stream = capture(logger, PlainFormatter())
    logger.info("committed", extra=fields(height=5, hash=b"\x01", note="two words", empty=""))
    logger.error("plain %s", "args")
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(
        rf"INFO {RFC3339_MS} cloudchain.test_logs: committed height=5 hash=01 "
        r'note="two words" empty=""',
        first,
    )
    assert re.fullmatch(rf"ERROR {RFC3339_MS} cloudchain.test_logs: plain args", second)


@pytest.mark.parametrize("formatter", [PlainFormatter(), JSONFormatter()])
def test_a_logged_exception_keeps_its_traceback(logger, formatter):
    stream = capture(logger, formatter)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("handler failed", extra=fields(height=3))
    text = stream.getvalue()
    if isinstance(formatter, JSONFormatter):
        (line,) = text.splitlines()
        entry = json.loads(line)
        assert entry["level"] == "error" and entry["height"] == 3
        assert "ValueError: boom" in entry["traceback"]
    else:
        assert text.startswith("ERROR ") and "handler failed height=3\nTraceback" in text
        assert "ValueError: boom" in text


def test_configure_logging_applies_the_level_and_format_of_config():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging(LogConfig(level="warning", format="json"), stream)
        logging.getLogger("cloudchain.configured_by_test").info("not shown")
        logging.getLogger("cloudchain.configured_by_test").warning("shown")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["msg"] == "shown"
    assert json.loads(line)["module"] == "cloudchain.configured_by_test"


def test_log_format_in_config_toml(tmp_path):
    assert NodeConfig().log.format == "plain" and set(FORMATTERS) == {"plain", "json"}
    path = tmp_path / "config.toml"
    path.write_text('[log]\nlevel = "debug"\nformat = "json"\n')
    assert NodeConfig.load(path).log == LogConfig(level="debug", format="json")
    path.write_text('[log]\nformat = "xml"\n')
    with pytest.raises(ConfigError, match=r"\[log\] format must be one of plain, json"):
        NodeConfig.load(path)


@pytest.mark.parametrize("formatter", [PlainFormatter(), JSONFormatter()])
def test_testnet_up_shows_commits_and_warnings_in_either_format(logger, formatter):
    from cloudchain.cli.node_commands import _worth_showing

    stream = capture(logger, formatter)
    logger.info("committed", extra=fields(height=7, txs=2))
    logger.info("peer connected", extra=fields(peer="ab"))
    logger.warning("WAL torn tail truncated", extra=fields(bytes=3))
    shown = [_worth_showing(line) for line in stream.getvalue().splitlines(keepends=True)]
    assert shown[1] is None
    assert shown[0].startswith("committed") and "height=7" in shown[0] and "txs=2" in shown[0]
    assert "WAL torn tail truncated" in shown[2] and "bytes=3" in shown[2]
