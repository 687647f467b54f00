"""Structured fields on log records, for every layer.

    log.info("peer connected", extra=fields(peer=peer_id))

puts {"peer": peer_id} on the record as `record.fields`; the node's formatters
(node/logs.py) print them after the message as key=value pairs, or as members
of the record's JSON object. The message is a short constant phrase ("peer
connected", "committed") and the values go in fields, so a log reader can
filter on them. This module sits at the bottom of the layers so that network/
and chaincode/ can use it too; it knows nothing about formatting.
"""

from __future__ import annotations

from typing import Any

FIELDS_ATTRIBUTE = "fields"  # the LogRecord attribute the formatters read


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """The `extra` argument of a logging call that carries `values` as structured fields."""
    return {FIELDS_ATTRIBUTE: values}
