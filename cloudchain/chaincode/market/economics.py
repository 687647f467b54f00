"""The paper's profit and utility models, eq. 2 and eq. 3, in integer token units.

    Π_p = Σ_i (P_i·C_i - λ_i·R_i)       (2)  a provider's profit over its tasks i
    U_r = Σ_i (Q_i - P_i)               (3)  a requester's utility over its tasks i

What each symbol is in the market, and its unit:

    P_i (eq. 2)  price per compute unit of task i: the price of the offer the task was
                 assigned at (`Task.price`), in tokens per compute unit
    C_i          compute units of task i: the units the oracles' quorum verified
                 (`Outcome.units`; 0 for a task that was not completed), compute units
    λ_i          penalty per SLA violation, set by the requester (`Task.penalty`), tokens
    R_i          violations: the SLA terms the quorum found broken (`Outcome.violations`;
                 not completed, uptime below the minimum, latency above the maximum),
                 or 2 (not completed, and late) for an assigned task whose deadline passed
    Q_i          quality of service, in tokens: what the requester valued the units it
                 got at (its `max_price` per unit, times C_i), scaled by the quality
                 delivered (`quality_bps`: all of it, less a quarter per violation)
    P_i (eq. 3)  the price the requester paid for task i, in tokens, net: the provider's
                 payment, less the provider's stake it was given when the penalty went
                 beyond the payment (negative then: the requester was compensated)

Eq. 3's P_i is a whole price, eq. 2's a price per unit; the code says `price` for the
one per unit and `paid` for the whole one.

The chain keeps only running sums (market/stats): Σ P_i·C_i (`gross`) and Σ λ_i·R_i
(`penalties`) for a provider, Σ Q_i (`worth`) and Σ P_i (`paid`) for a requester. A sum
of terms is a term, so the functions below take either the terms of single tasks (as
settlement and the tests do) or those sums (as the /market/account query does).

Settlement (lifecycle.py) builds each final task's ProfitTerm and UtilityTerm here and
books their fields, so the sums are exactly the equations': the provider is paid its
term of Π_p where positive (`earned`) and answers for it from its stake where negative
(`owed`); the requester's P_i is what the provider earned less what was slashed.

Pure: no state, no I/O; every amount an int.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from cloudchain.chaincode.market.params import BPS
from cloudchain.chaincode.module import MAX_AMOUNT

Tokens: TypeAlias = int  # token units
Units: TypeAlias = int  # compute units
Bps: TypeAlias = int  # basis points: 10,000 is one

QUALITY_LOSS_PER_VIOLATION_BPS: Bps = 2_500  # of Q_i, per SLA term broken


def payment(price: Tokens, units: Units) -> Tokens:
    """P_i·C_i: what the verified units are worth at the task's price per unit."""
    return price * units


def penalty(penalty_per_violation: Tokens, violations: int) -> Tokens:
    """λ_i·R_i, at most MAX_AMOUNT: a payment and a stake, all a penalty can be taken
    from, are amounts too, so that an outcome always fits in state."""
    return min(penalty_per_violation * violations, MAX_AMOUNT)


def quality_bps(violations: int) -> Bps:
    """The quality of service delivered: all of it, less a quarter per violation."""
    return max(0, BPS - QUALITY_LOSS_PER_VIOLATION_BPS * violations)


def quality_value(max_price: Tokens, units: Units, quality: Bps) -> Tokens:
    """Q_i: the units delivered at what the requester would pay for them (its max_price
    per unit), scaled by the quality delivered; rounded down."""
    return max_price * units * quality // BPS


@dataclass(frozen=True)
class ProfitTerm:
    """P_i·C_i and λ_i·R_i of one task, or their sums over many."""

    payment: Tokens  # P_i·C_i
    penalty: Tokens  # λ_i·R_i

    @classmethod
    def of(
        cls, price: Tokens, units: Units, penalty_per_violation: Tokens, violations: int
    ) -> ProfitTerm:
        """Task i's term from the paper's symbols: P_i, C_i, λ_i, R_i."""
        return cls(payment(price, units), penalty(penalty_per_violation, violations))

    @property
    def earned(self) -> Tokens:
        """What the provider is paid for the task: its term of Π_p, where positive."""
        return max(0, provider_profit([self]))

    @property
    def owed(self) -> Tokens:
        """What the provider answers for from its stake: its term of Π_p, where negative
        (as a positive amount)."""
        return max(0, -provider_profit([self]))


@dataclass(frozen=True)
class UtilityTerm:
    """Q_i and P_i (the price paid) of one task, or their sums over many."""

    quality: Tokens  # Q_i
    paid: Tokens  # P_i: the net price paid

    @classmethod
    def of(
        cls, max_price: Tokens, units: Units, violations: int, earned: Tokens, slashed: Tokens
    ) -> UtilityTerm:
        """Task i's term: Q_i, the `units` delivered at the requester's `max_price` and
        the quality that `violations` left; and P_i, what the provider `earned` (its
        ProfitTerm's) less the stake `slashed` in the requester's favour."""
        return cls(quality_value(max_price, units, quality_bps(violations)), earned - slashed)


def provider_profit(terms: Iterable[ProfitTerm]) -> Tokens:
    """Π_p = Σ (P_i·C_i - λ_i·R_i), eq. 2. Negative when penalties outweigh payments."""
    return sum(term.payment - term.penalty for term in terms)


def requester_utility(terms: Iterable[UtilityTerm]) -> Tokens:
    """U_r = Σ (Q_i - P_i), eq. 3. Compensation for a broken SLA (a negative P_i)
    counts in the requester's favour."""
    return sum(term.quality - term.paid for term in terms)
