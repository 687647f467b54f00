"""Block sync's policy: whom to ask for a decided block and how often, when to answer a
peer behind us, and how far ahead a peer must be for this node to be catching up.

A node that falls behind (it was down, or slow) does not replay the rounds it
missed: it asks a peer ahead for the decision of its height (a Decision: the
proposal with its block and the commit certificate, which the core verifies
before it applies the block), and the next, until it is level. The rules:

- Claimed heights. Every message a peer sends is of some height; the highest is
  what the peer claims (unverified). It says whom to ask: a peer claiming a
  height above h has decided h.
- Proven heights. A height shown by a message a validator signed (or a
  decision's commit certificate) is proven; only proven heights count for
  catching_up, so a peer cannot make us say we are behind by claiming a height.
  A peer one height ahead of us has decided only the height we are deciding:
  catching up means a peer proved a height beyond the next one.
- Asking. A peer's message ahead of our height while we have not committed our
  height means we are behind (and not merely waiting out the commit timeout of a
  height we decided): ask that peer for the decision of our height. The same peer
  is asked for the same height again no sooner than `ask_again_after_ns`. Each
  commit forgets what was asked, and asks the first peer (by id) that decided the
  next height right away.
- Answering. A peer whose message is of a height below ours gets the decision
  of that height, asked or not, unless the block is large (LARGE_MESSAGE_BYTES):
  unasked, the peer may only be waiting out its commit timeout with that decision
  in hand, so a large block goes only to a peer that asked. The same height goes
  to the same peer again no sooner than gossip would resend a message of that
  size, and large ones at most every LARGE_DECISION_GAP_NS, whatever their
  heights: a peer asking for heights in turn cannot make us load and send
  blocks nonstop.

Pure: plain inputs (peer ids, heights, sizes, and times in integer nanoseconds
passed in) to decisions. No I/O, no clock, no signature checks: the runtime
(runtime.py) verifies a message before it calls it proven, reads the clock,
loads the blocks and sends what this module decides.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cloudchain.node.gossip import LARGE_MESSAGE_BYTES

# The least time between two large decisions sent to one peer, whatever their heights.
LARGE_DECISION_GAP_NS = 250_000_000


def is_lagging(peer_height: int, core_height: int) -> bool:
    """Whether a peer's message of `peer_height` shows it behind our consensus height:
    it lacks a decision we have (or is waiting out its commit timeout with it)."""
    return peer_height < core_height


def is_behind(peer_height: int, core_height: int, committed_height: int) -> bool:
    """Whether a peer's message of `peer_height` shows that it decided our consensus
    height while our application has not committed it: we are behind, and should
    ask that peer for the decision. Committed already, we are only waiting out the
    commit timeout of the height we decided."""
    return peer_height > core_height and committed_height < core_height


@dataclass(frozen=True)
class AnswerSpacing:
    every_ns: int  # the same height to the same peer again, no sooner
    gap_ns: int  # any decision to the same peer again, no sooner (0: no limit)


def answer_spacing(size_bytes: int, *, asked: bool, resend_after_ns: int) -> AnswerSpacing | None:
    """How far apart to send a lagging peer decisions whose block has `size_bytes`;
    None: not at all (a large block nobody asked for). `resend_after_ns` is how
    often gossip resends a message of that size (gossip.py)."""
    large = size_bytes > LARGE_MESSAGE_BYTES
    if large and not asked:
        return None
    return AnswerSpacing(resend_after_ns, LARGE_DECISION_GAP_NS if large else 0)


class PeerSync:
    """What the connected peers showed of their heights, and what we asked them for."""

    def __init__(self, ask_again_after_ns: int) -> None:
        assert ask_again_after_ns > 0
        self._ask_again_after_ns = ask_again_after_ns
        self._claimed: dict[str, int] = {}  # unverified: whom to ask
        self._proven: dict[str, int] = {}  # shown by signed messages: catching_up
        self._asked: dict[tuple[str, int], int] = {}  # (peer, height) -> when, in ns

    # --- what peers show ---------------------------------------------------------------------

    def note_height(self, peer: str, height: int) -> bool:
        """A message of `height` came from `peer`; True if it claims more than before
        (the peer advanced)."""
        if height <= self._claimed.get(peer, 0):
            return False
        self._claimed[peer] = height
        return True

    def needs_proof(self, peer: str, height: int, core_height: int) -> bool:
        """Whether a message of `height` from `peer`, if a validator signed it, would
        prove more than we knew: beyond the next height and beyond what the peer
        proved before. Only then is its signature worth checking (the core never reads
        a message beyond the next height, so it does not check those)."""
        return height > max(core_height + 1, self._proven.get(peer, 0))

    def note_proven(self, peer: str, height: int) -> None:
        """The caller verified that a validator signed a message of `height` (see
        `needs_proof`)."""
        self._proven[peer] = height

    def forget_peer(self, peer: str) -> None:
        """The peer disconnected: what it showed no longer counts."""
        self._claimed.pop(peer, None)
        self._proven.pop(peer, None)

    def is_catching_up(self, core_height: int) -> bool:
        """Whether a connected peer proved a height beyond the next one: this node is
        fetching decided blocks (status's catching_up)."""
        return any(h > core_height + 1 for h in self._proven.values())

    def may_hold(self, peer: str, height: int) -> bool:
        """Whether `peer` would keep a message of `height` rather than drop it: it
        keeps the next height's at most, so not if it claims two heights less (a peer
        that claimed nothing yet gets the benefit of the doubt)."""
        return self._claimed.get(peer, height) >= height - 1

    # --- asking ------------------------------------------------------------------------------

    def may_ask(self, peer: str, height: int, now_ns: int) -> bool:
        """Whether to ask `peer` for the decision of `height` now: not if we asked it
        the same less than `ask_again_after_ns` ago. True counts as asked."""
        last = self._asked.get((peer, height))
        if last is not None and now_ns - last < self._ask_again_after_ns:
            return False
        self._asked[(peer, height)] = now_ns
        return True

    def on_committed(self, height: int) -> str | None:
        """We committed `height`. If a peer decided the next one too, the first of them
        by id, to ask for it right away; what was asked before is then forgotten, so
        the ask goes out."""
        ahead = [p for p, h in self._claimed.items() if h > height + 1]
        if not ahead:
            return None
        self._asked.clear()
        return min(ahead)


class AnswerLog:
    """The last decision sent to each lagging peer, and when (see `answer_spacing`)."""

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[int, int]] = {}  # peer -> (height, when in ns)

    def may_answer(
        self, peer: Hashable, height: int, now_ns: int, every_ns: int, gap_ns: int = 0
    ) -> bool:
        """Whether to send `peer` the decision of `height` now: not if we sent it that
        same height less than `every_ns` ago (its gossip would make us answer every
        message), nor any decision less than `gap_ns` ago."""
        last = self._last.get(peer)
        if last is None:
            return True
        elapsed = now_ns - last[1]
        return not ((last[0] == height and elapsed < every_ns) or elapsed < gap_ns)

    def note_answered(self, peer: Hashable, height: int, now_ns: int) -> None:
        self._last[peer] = (height, now_ns)
