"""The validator set: voting power, quorums, proposer selection and commit verification.

Quorums are measured in voting power, never in head count: `+2/3` means more
than two thirds of the total power, `+1/3` more than one third (the paper's
2f+1 and f+1 when power is n = 3f+1 equal shares).

Proposer selection is CometBFT's weighted round robin (`types/validator_set.go`):
each step every validator's priority grows by its power, the highest priority
proposes (ties: the lower address) and pays back the total power. Over any
window of `total_power` steps a validator proposes exactly `power` times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloudchain.crypto import verify
from cloudchain.ledger import Commit, Validator, precommit_sign_bytes

# CometBFT's PriorityWindowSizeFactor: priorities are kept within 2x total power.
PRIORITY_WINDOW_FACTOR = 2


class CommitError(ValueError):
    """A commit certificate does not prove +2/3 precommits for its block."""


@dataclass(frozen=True)
class ValidatorSet:
    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        assert self.validators, "a validator set is never empty"
        addresses = [v.address for v in self.validators]
        assert len(set(addresses)) == len(addresses), "validator addresses are unique"

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    @property
    def powers(self) -> Mapping[bytes, int]:
        return {v.address: v.power for v in self.validators}

    def get(self, address: bytes) -> Validator | None:
        for v in self.validators:
            if v.address == address:
                return v
        return None

    def has_two_thirds(self, power: int) -> bool:
        """More than two thirds of the total power (the paper's 2f+1)."""
        return 3 * power > 2 * self.total_power

    def has_one_third(self, power: int) -> bool:
        """More than one third of the total power (the paper's f+1)."""
        return 3 * power > self.total_power


class ProposerPriority:
    """CometBFT's proposer priorities for a fixed validator set, stepped one round at a time."""

    def __init__(self, validators: Sequence[Validator]) -> None:
        self._validators = tuple(validators)
        self._total = sum(v.power for v in validators)
        # New validators start at -1.125 * total power (CometBFT computeNewPriorities);
        # NewValidatorSet then steps once.
        start = -(self._total + (self._total >> 3))
        self._priority = [start] * len(validators)
        self.step()

    def copy(self) -> ProposerPriority:
        other = object.__new__(ProposerPriority)
        other._validators = self._validators
        other._total = self._total
        other._priority = list(self._priority)
        other._proposer = self._proposer
        return other

    def proposer(self) -> Validator:
        """The validator chosen by the last step (CometBFT's vals.Proposer)."""
        return self._proposer

    def _most_priority(self) -> Validator:
        """The validator with the highest priority (ties: the lower address)."""
        best = 0
        for i in range(1, len(self._validators)):
            if self._priority[i] > self._priority[best] or (
                self._priority[i] == self._priority[best]
                and self._validators[i].address < self._validators[best].address
            ):
                best = i
        return self._validators[best]

    def step(self, times: int = 1) -> None:
        """CometBFT IncrementProposerPriority(times)."""
        assert times >= 1
        self._rescale(PRIORITY_WINDOW_FACTOR * self._total)
        self._shift_by_average()
        for _ in range(times):
            for i, v in enumerate(self._validators):
                self._priority[i] += v.power
            self._proposer = self._most_priority()
            chosen = self._validators.index(self._proposer)
            self._priority[chosen] -= self._total

    def _rescale(self, window: int) -> None:
        spread = max(self._priority) - min(self._priority)
        if spread > window:
            ratio = (spread + window - 1) // window
            # Go's integer division truncates toward zero.
            self._priority = [_div_trunc(p, ratio) for p in self._priority]

    def _shift_by_average(self) -> None:
        average = sum(self._priority) // len(self._priority)  # big.Int Div: floor for n > 0
        self._priority = [p - average for p in self._priority]


def _div_trunc(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def verify_commit(chain_id: str, validators: ValidatorSet, commit: Commit, height: int) -> None:
    """Check that `commit` holds valid precommits for its block from +2/3 of the power.

    Needs nothing but the validator set, so a light client or an auditor can run it.
    Raises CommitError saying what is wrong.
    """
    if commit.height != height:
        raise CommitError(f"commit is for height {commit.height}, expected {height}")
    power = 0
    seen: set[bytes] = set()
    for sig in commit.signatures:
        validator = validators.get(sig.validator_address)
        if validator is None:
            raise CommitError(f"commit signed by non-validator {sig.validator_address.hex()}")
        if sig.validator_address in seen:
            raise CommitError(f"validator {sig.validator_address.hex()} signs twice")
        seen.add(sig.validator_address)
        message = precommit_sign_bytes(
            chain_id, commit.height, commit.round, commit.block_hash, sig.timestamp_ns
        )
        if not verify(validator.public_key, message, sig.signature):
            raise CommitError(f"bad signature from {sig.validator_address.hex()}")
        power += validator.power
    if not validators.has_two_thirds(power):
        raise CommitError(f"commit power {power} is not +2/3 of {validators.total_power}")
