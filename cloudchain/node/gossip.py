"""What each peer already has of the consensus messages of the current heights, so
gossip sends it only what it lacks.

The consensus core says what peers may still need (`Consensus.gossip_messages`:
the proposals and votes of the rounds that matter, ours and relayed alike), and
the node offers it every GOSSIP_INTERVAL. Sent blindly, that is every proposal,
with its whole block, to every peer five times a second: with blocks of 16 MiB,
hundreds of MB/s, which no link carries and no queue should hold. CometBFT keeps
a PeerState per peer for this; ours is simpler, and the same in spirit:

- a message a peer sent us, it has: we never send it back;
- a message we queued for a peer on its current connection, it has or will have
  (TCP delivers in order or drops the connection, and a new connection starts with
  an empty memory): we send it again only after `resend_after_s`, a safety net for
  a peer whose core dropped it. Small messages (votes) come again every gossip
  interval, as before; large ones (proposals with big blocks) at most every
  LARGE_RESEND_S;
- when a peer shows a new height, what we sent it is forgotten: a peer that was
  behind dropped what was ahead of it, and may need it now.

A message is known by its signature, which no other message has, and remembered
with its height; `prune(height)` forgets the heights below the current one, so
that what arrived early for the next height survives the move to it. A peer's
memory holds at most PEER_MESSAGES_MAX messages (a peer sending garbage cannot
grow it further: the oldest are forgotten, which only costs a resend).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Messages above this size are "large": a proposal whose block holds more than a
# few transactions. Votes are about 200 bytes.
LARGE_MESSAGE_BYTES = 64 * 1024
# How often a large message is offered again to a peer that was already sent it.
LARGE_RESEND_S = 10.0
# Messages remembered per peer: the votes and proposals of a few rounds of two
# heights of a large validator set.
PEER_MESSAGES_MAX = 8_192


@dataclass(slots=True)
class _Known:
    height: int
    sent_at_s: float | None  # None: the peer sent it to us


class GossipMemory:
    def __init__(self, small_resend_s: float) -> None:
        self.small_resend_s = small_resend_s
        self._known: dict[str, dict[bytes, _Known]] = {}  # peer -> signature -> what we know

    def resend_after_s(self, size_bytes: int) -> float:
        return LARGE_RESEND_S if size_bytes > LARGE_MESSAGE_BYTES else self.small_resend_s

    def peers_lacking(
        self, key: bytes, size_bytes: int, peers: Iterable[str], now_s: float
    ) -> list[str]:
        """The peers among `peers` to send the message `key` of `size_bytes` now."""
        wait_s = self.resend_after_s(size_bytes)
        lacking = []
        for peer in peers:
            known = self._known.get(peer, {}).get(key)
            if known is None or (known.sent_at_s is not None and now_s - known.sent_at_s >= wait_s):
                lacking.append(peer)
        return lacking

    def note_sent(self, peer: str, key: bytes, height: int, now_s: float) -> None:
        known = self._peer(peer)
        if key not in known or known[key].sent_at_s is not None:
            known[key] = _Known(height, now_s)

    def note_received(self, peer: str, key: bytes, height: int) -> None:
        self._peer(peer)[key] = _Known(height, None)

    def peer_advanced(self, peer: str) -> None:
        """The peer showed a higher height: forget what we sent it (not what it sent)."""
        known = self._known.get(peer)
        if known:
            self._known[peer] = {k: v for k, v in known.items() if v.sent_at_s is None}

    def forget_peer(self, peer: str) -> None:
        """The peer disconnected: a new connection starts knowing nothing."""
        self._known.pop(peer, None)

    def prune(self, height: int) -> None:
        """Forget the messages of heights below `height` (the core moved on)."""
        for peer, known in self._known.items():
            if any(v.height < height for v in known.values()):
                self._known[peer] = {k: v for k, v in known.items() if v.height >= height}

    def _peer(self, peer: str) -> dict[bytes, _Known]:
        known = self._known.setdefault(peer, {})
        while len(known) >= PEER_MESSAGES_MAX:
            del known[next(iter(known))]  # the oldest: it costs a resend at most
        return known
