"""The genesis file: who validates, who holds what, and the chain's parameters.

JSON, in the spirit of CometBFT's ``genesis.json``:

    {
      "chain_id": "cloudchain-local",
      "genesis_time": "2026-01-01T00:00:00.000000000Z",
      "consensus_params": {"block": {"max_bytes": 4194304, "max_txs": 10000},
                           "evidence": {"max_age_num_blocks": 100000,
                                        "max_age_duration": "172800000000000"}},
      "validators": [
        {"name": "node0", "power": 10,
         "pub_key": {"type": "tendermint/PubKeyEd25519", "value": "<base64>"}}
      ],
      "app_state": {
        "authority": "<address>",
        "accounts": [{"address": "<address>", "balance": 1000000}],
        "params": {"token": {"denom": "ucc"},
                   "fees": {"base": 100, "per_byte": 1,
                            "surcharges": {"market.submit": 1000}}}
      }
    }

Integers may be JSON numbers or decimal strings (CometBFT writes int64 as
strings); floats and booleans are refused. Everything is checked on load and
every error names the offending field.

consensus_params.evidence is CometBFT's: evidence of a validator's double vote may be
committed until both more than max_age_num_blocks blocks and more than
max_age_duration nanoseconds have passed since its height. Left out, it is CometBFT's
default (100,000 blocks, 48 hours), and a genesis at the defaults writes no
"evidence" section, so that the genesis hash of a chain that never set it is the one
it always had.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cloudchain import codec
from cloudchain.crypto import PUBKEY_TYPE, is_address
from cloudchain.fees import FeeSchedule, FeeScheduleError
from cloudchain.ledger import (
    CHAIN_ID_PATTERN,
    INT64_MAX,
    MAX_BLOCK_BYTES,
    MAX_BLOCK_TXS,
    MAX_CHAIN_ID_CHARS,
    MAX_TX_BYTES,
    TX_FRAMING_BYTES,
    MalformedError,
    Validator,
    block_overhead_bytes,
    validators_hash,
)
from cloudchain.timefmt import TimeFormatError, format_rfc3339_ns, parse_rfc3339_ns

DEFAULT_MAX_BLOCK_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_BLOCK_TXS = MAX_BLOCK_TXS
DEFAULT_EVIDENCE_MAX_AGE_BLOCKS = 100_000
DEFAULT_EVIDENCE_MAX_AGE_NS = 48 * 3600 * 10**9
MAX_VALIDATORS = 1_000
MAX_ACCOUNTS = 1_000_000
MAX_TOTAL_POWER = INT64_MAX // 8  # as CometBFT: proposer priorities must not overflow


class GenesisError(ValueError):
    """The genesis file is missing, not JSON, or breaks a rule; the message says where."""


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ns: int
    validators: tuple[Validator, ...]
    authority: str
    balances: tuple[tuple[str, int], ...]  # sorted by address
    params: Mapping[str, Mapping[str, Any]]  # per module, frozen
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES
    max_block_txs: int = DEFAULT_MAX_BLOCK_TXS
    evidence_max_age_blocks: int = DEFAULT_EVIDENCE_MAX_AGE_BLOCKS
    evidence_max_age_ns: int = DEFAULT_EVIDENCE_MAX_AGE_NS

    @cached_property
    def validators_hash(self) -> bytes:
        return validators_hash(self.validators)

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding of the genesis document."""
        return codec.hash_value(self.to_obj())

    @cached_property
    def fees(self) -> FeeSchedule:
        """The fee schedule of app_state.params.fees (cloudchain/fees.py's defaults for
        what it leaves out)."""
        try:
            return FeeSchedule.from_obj(self.params.get("fees", {}))
        except FeeScheduleError as exc:
            raise GenesisError(str(exc)) from None

    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def to_obj(self) -> dict[str, Any]:
        consensus_params: dict[str, Any] = {
            "block": {"max_bytes": self.max_block_bytes, "max_txs": self.max_block_txs}
        }
        if (self.evidence_max_age_blocks, self.evidence_max_age_ns) != (
            DEFAULT_EVIDENCE_MAX_AGE_BLOCKS,
            DEFAULT_EVIDENCE_MAX_AGE_NS,
        ):
            consensus_params["evidence"] = {
                "max_age_num_blocks": self.evidence_max_age_blocks,
                "max_age_duration": str(self.evidence_max_age_ns),
            }
        return {
            "chain_id": self.chain_id,
            "genesis_time": format_rfc3339_ns(self.genesis_time_ns),
            "consensus_params": consensus_params,
            "validators": [
                {
                    "name": v.name,
                    "power": v.power,
                    "pub_key": {
                        "type": PUBKEY_TYPE,
                        "value": base64.b64encode(v.public_key).decode(),
                    },
                }
                for v in self.validators
            ],
            "app_state": {
                "authority": self.authority,
                "accounts": [{"address": a, "balance": b} for a, b in self.balances],
                "params": codec.thaw(self.params),
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_obj(), indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Genesis:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise GenesisError(f"genesis file {path} is not UTF-8 text") from None
        except OSError as exc:
            raise GenesisError(f"cannot read genesis file {path}: {exc.strerror}") from None
        return cls.from_json(text)

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        try:
            obj = json.loads(text, parse_float=_refuse_float, parse_constant=_refuse_float)
        except json.JSONDecodeError as exc:
            raise GenesisError(f"genesis is not valid JSON: {exc}") from None
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            raise GenesisError(f"genesis cannot be read: {exc}") from None
        return cls.from_obj(obj)

    @classmethod
    def from_obj(cls, obj: Any) -> Genesis:
        g = _map(
            obj,
            "genesis",
            required=("chain_id", "genesis_time", "validators", "app_state"),
            optional=("consensus_params",),
        )
        chain_id = g["chain_id"]
        if not (
            isinstance(chain_id, str)
            and 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS
            and CHAIN_ID_PATTERN.match(chain_id)
        ):
            raise GenesisError(
                f"genesis.chain_id: {chain_id!r} must be 1-{MAX_CHAIN_ID_CHARS} characters "
                "of letters, digits, '.', '_' or '-'"
            )
        try:
            time_ns = parse_rfc3339_ns(g["genesis_time"])
        except TimeFormatError as exc:
            raise GenesisError(f"genesis.genesis_time: {exc}") from None
        if not 0 <= time_ns <= INT64_MAX:
            raise GenesisError("genesis.genesis_time: must lie between 1970 and 2262")
        consensus_params = g.get("consensus_params", {})
        max_bytes, max_txs = _consensus_params(consensus_params)
        max_age_blocks, max_age_ns = _evidence_params(consensus_params)
        validators = _validators(g["validators"])
        needed = block_overhead_bytes(len(validators)) + MAX_TX_BYTES + TX_FRAMING_BYTES
        if max_bytes < needed:
            raise GenesisError(
                f"genesis.consensus_params.block.max_bytes: {max_bytes} cannot hold the "
                f"largest transaction with a commit of {len(validators)} validators; "
                f"at least {needed} is needed"
            )
        app = _map(
            g["app_state"],
            "genesis.app_state",
            required=("authority",),
            optional=("accounts", "params"),
        )
        authority = app["authority"]
        if not is_address(authority):
            raise GenesisError(f"genesis.app_state.authority: {authority!r} is not an address")
        balances = _accounts(app.get("accounts", []))
        params = app.get("params", {})
        if not isinstance(params, Mapping) or not all(
            isinstance(v, Mapping) for v in params.values()
        ):
            raise GenesisError("genesis.app_state.params: expected a map of module -> map")
        try:
            frozen_params = codec.freeze(params)
        except codec.CodecError as exc:
            raise GenesisError(f"genesis.app_state.params: {exc}") from None
        genesis = cls(
            chain_id,
            time_ns,
            validators,
            authority,
            balances,
            frozen_params,
            max_bytes,
            max_txs,
            max_age_blocks,
            max_age_ns,
        )
        _ = genesis.fees  # checked on load, so that a bad schedule names its field now
        return genesis


def _refuse_float(text: str) -> Any:
    raise GenesisError(f"genesis: {text} is not an integer; amounts are integer units")


def _map(obj: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
    if not isinstance(obj, Mapping):
        raise GenesisError(f"{where}: expected an object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise GenesisError(f"{where}: missing field(s) {', '.join(missing)}")
    extra = sorted(set(obj) - set(required) - set(optional))
    if extra:
        raise GenesisError(f"{where}: unknown field(s) {', '.join(extra)}")
    return obj


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GenesisError(f"{where}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise GenesisError(f"{where}: {value} is outside [{low}, {high}]")
    return value


def _consensus_params(obj: Any) -> tuple[int, int]:
    params = _map(obj, "genesis.consensus_params", required=(), optional=("block", "evidence"))
    block = _map(
        params.get("block", {}),
        "genesis.consensus_params.block",
        required=(),
        optional=("max_bytes", "max_txs"),
    )
    max_bytes = _integer(
        block.get("max_bytes", DEFAULT_MAX_BLOCK_BYTES),
        "genesis.consensus_params.block.max_bytes",
        MAX_TX_BYTES,
        MAX_BLOCK_BYTES,
    )
    max_txs = _integer(
        block.get("max_txs", DEFAULT_MAX_BLOCK_TXS),
        "genesis.consensus_params.block.max_txs",
        1,
        MAX_BLOCK_TXS,
    )
    return max_bytes, max_txs


def _evidence_params(obj: Any) -> tuple[int, int]:
    """consensus_params.evidence: (max_age_num_blocks, max_age_duration in ns)."""
    evidence = _map(
        obj.get("evidence", {}),
        "genesis.consensus_params.evidence",
        required=(),
        optional=("max_age_num_blocks", "max_age_duration"),
    )
    max_age_blocks = _integer(
        evidence.get("max_age_num_blocks", DEFAULT_EVIDENCE_MAX_AGE_BLOCKS),
        "genesis.consensus_params.evidence.max_age_num_blocks",
        1,
        INT64_MAX,
    )
    max_age_ns = _integer(
        evidence.get("max_age_duration", DEFAULT_EVIDENCE_MAX_AGE_NS),
        "genesis.consensus_params.evidence.max_age_duration",
        1,
        INT64_MAX,
    )
    return max_age_blocks, max_age_ns


def _validators(obj: Any) -> tuple[Validator, ...]:
    if not isinstance(obj, list) or not obj:
        raise GenesisError("genesis.validators: expected a non-empty list")
    if len(obj) > MAX_VALIDATORS:
        raise GenesisError(f"genesis.validators: {len(obj)} validators, limit is {MAX_VALIDATORS}")
    validators = []
    seen: set[bytes] = set()
    for i, item in enumerate(obj):
        where = f"genesis.validators[{i}]"
        v = _map(item, where, required=("pub_key", "power"), optional=("name", "address"))
        key = _map(v["pub_key"], f"{where}.pub_key", required=("type", "value"))
        if key["type"] != PUBKEY_TYPE:
            raise GenesisError(f"{where}.pub_key.type: {key['type']!r} is not {PUBKEY_TYPE!r}")
        try:
            public_key = base64.b64decode(key["value"], validate=True)
        except (ValueError, TypeError):
            raise GenesisError(f"{where}.pub_key.value: not base64") from None
        power = _integer(v["power"], f"{where}.power", 1, INT64_MAX // 8)
        name = v.get("name", f"validator{i}")
        if not (
            isinstance(name, str) and len(name) <= 64 and name.isascii() and name.isprintable()
        ):
            raise GenesisError(f"{where}.name: expected at most 64 printable ASCII characters")
        try:
            validator = Validator(public_key, power, name)
        except MalformedError as exc:
            raise GenesisError(f"{where}: {exc}") from None
        if "address" in v and str(v["address"]).lower() != validator.address.hex():
            raise GenesisError(f"{where}.address does not match its public key")
        if public_key in seen:
            raise GenesisError(f"{where}: duplicate validator public key")
        seen.add(public_key)
        validators.append(validator)
    if sum(v.power for v in validators) > MAX_TOTAL_POWER:
        raise GenesisError(f"genesis.validators: total power exceeds {MAX_TOTAL_POWER}")
    return tuple(validators)


def _accounts(obj: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(obj, list):
        raise GenesisError("genesis.app_state.accounts: expected a list")
    if len(obj) > MAX_ACCOUNTS:
        raise GenesisError(f"genesis.app_state.accounts: more than {MAX_ACCOUNTS} accounts")
    balances: dict[str, int] = {}
    for i, item in enumerate(obj):
        where = f"genesis.app_state.accounts[{i}]"
        account = _map(item, where, required=("address", "balance"))
        addr = account["address"]
        if not is_address(addr):
            raise GenesisError(f"{where}.address: {addr!r} is not an address")
        if addr in balances:
            raise GenesisError(f"{where}.address: {addr} is listed twice")
        balances[addr] = _integer(account["balance"], f"{where}.balance", 0, INT64_MAX)
    if sum(balances.values()) > INT64_MAX:
        raise GenesisError("genesis.app_state.accounts: total supply exceeds 2^63-1")
    return tuple(sorted(balances.items()))
