"""The market's parameters: set in genesis (app_state.params.market), fixed after
(stored at market/params: state.get_params).

Every number is an integer: token units, blocks, basis points (1/10,000) or
milliseconds. Ratios are in basis points so that no float ever enters state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from cloudchain.crypto import is_address

BPS = 10_000  # basis points in one


@dataclass(frozen=True)
class MarketParams:
    min_stake: int = 1_000  # a provider's stake, at least, to be assigned tasks
    unbonding_blocks: int = 20  # after `leave`, the stake stays slashable this long
    quorum_bps: int = 6_666  # of the oracles (rounded up: 2 of 3), to decide an outcome
    attestation_blocks: int = 20  # after completion; no quorum by then: refunded unverified
    dispute_blocks: int = 10  # after an outcome is decided, either party may dispute
    dispute_vote_blocks: int = 20  # oracles vote on a dispute; no quorum: the outcome stands
    epoch_blocks: int = 10  # rewards are minted and prices move every this many blocks
    epoch_reward: int = 10_000  # minted per epoch, if anyone did verified work
    oracle_reward_bps: int = 1_000  # of the epoch reward, for oracles that attested honestly
    target_utilisation_bps: int = 7_000  # reference prices rise above it, fall below
    price_step_bps: int = 500  # the most a reference price moves in one epoch
    reputation_start_bps: int = 5_000
    reputation_gain_bps: int = 100  # per task settled without a violation
    reputation_loss_bps: int = 500  # per violation
    max_assignments_per_block: int = 64
    max_assignments_per_provider: int = 4  # in one block: nobody is flooded at once
    max_open_tasks_scanned: int = 256  # read per block, shared by the classes with room
    max_transitions_per_block: int = 512  # deadlines and windows handled; the rest wait
    max_tasks_listed: int = 100  # by one query
    # Who takes a task (policy.py): 0 the cheapest offer, 1 the fair one (the smallest
    # share of work for its capacity among offers within fair_price_slack_bps of the
    # cheapest). Stored only when not the defaults, so that a chain that never set them
    # stores the bytes it always did.
    assignment_policy: int = 0
    fair_price_slack_bps: int = 1_000
    # Of the providers' epoch reward, the share paid for capacity offered rather than for
    # work done (epoch.py), as Filecoin's block reward pays for proven storage power: by
    # each active provider's units, as far as its stake backs them at
    # capacity_stake_per_unit a unit, times its reputation (which the oracles' probes and
    # its SLA record move). 0: all of it for verified work.
    capacity_reward_bps: int = 0
    capacity_stake_per_unit: int = 10
    # Of a validator's stake as a provider (if its validator key is a provider's), the
    # share burnt when a block commits evidence that it voted twice (misbehaviour.py):
    # Cosmos's slash_fraction_double_sign, 5%.
    double_sign_slash_bps: int = 500

    OPTIONAL: ClassVar[tuple[tuple[str, int], ...]] = (
        ("assignment_policy", 0),
        ("fair_price_slack_bps", 1_000),
        ("capacity_reward_bps", 0),
        ("capacity_stake_per_unit", 10),
        ("double_sign_slash_bps", 500),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"genesis.app_state.params.market.{f.name}: expected a "
                    f"non-negative integer, got {value!r}"
                )
        for name in (
            "quorum_bps",
            "oracle_reward_bps",
            "target_utilisation_bps",
            "price_step_bps",
            "reputation_start_bps",
            "capacity_reward_bps",
            "double_sign_slash_bps",
        ):
            if getattr(self, name) > BPS:
                raise ValueError(f"genesis.app_state.params.market.{name}: at most {BPS}")
        if self.assignment_policy not in (0, 1):
            raise ValueError(
                "genesis.app_state.params.market.assignment_policy: 0 (cheapest) or 1 (fair)"
            )
        if self.fair_price_slack_bps > 10 * BPS:
            raise ValueError(
                f"genesis.app_state.params.market.fair_price_slack_bps: at most {10 * BPS}"
            )
        for name in (
            "quorum_bps",
            "epoch_blocks",
            "max_assignments_per_block",
            "max_assignments_per_provider",
            "max_open_tasks_scanned",
            "max_transitions_per_block",
            "max_tasks_listed",
            "capacity_stake_per_unit",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"genesis.app_state.params.market.{name}: at least 1")

    def quorum(self, oracles: int) -> int:
        """Attestations (or votes) that decide, of `oracles`: the fraction, rounded up."""
        return max(1, -(-oracles * self.quorum_bps // BPS))

    def to_obj(self) -> dict[str, int]:
        obj = asdict(self)
        for name, default in self.OPTIONAL:
            if obj[name] == default:
                del obj[name]
        return obj


def params_from_genesis(section: Any) -> tuple[MarketParams, tuple[str, ...], dict[str, int]]:
    """(params, genesis oracles, reference prices by resource class) from
    app_state.params.market; an unknown or bad field is a ValueError naming it."""
    values = dict(section)
    oracles = tuple(values.pop("oracles", ()))
    prices = dict(values.pop("reference_prices", {}))
    known = {f.name for f in fields(MarketParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"genesis.app_state.params.market: unknown field(s) {unknown}")
    params = MarketParams(**values)
    for oracle in oracles:
        if not is_address(oracle):
            raise ValueError(
                f"genesis.app_state.params.market.oracles: {oracle!r} is not an address"
            )
    if len(set(oracles)) != len(oracles):
        raise ValueError("genesis.app_state.params.market.oracles: listed twice")
    for name, price in prices.items():
        if not (isinstance(price, int) and not isinstance(price, bool) and price > 0):
            raise ValueError(
                f"genesis.app_state.params.market.reference_prices.{name}: "
                "expected a positive integer"
            )
    return params, oracles, prices
