"""What each peer already has of this height's consensus messages, so gossip sends it
only what it lacks.

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
  a peer whose core dropped it as too early. Small messages (votes) come again
  every gossip interval, as before; large ones (proposals with big blocks) at most
  every LARGE_RESEND_S.

A message is known by its signature, which no other message has. The memory is
per height (`new_height` clears it), so it holds at most the messages of one
height per peer.
"""

from __future__ import annotations

from collections.abc import Iterable

# Messages above this size are "large": a proposal whose block holds more than a
# few transactions. Votes are about 200 bytes.
LARGE_MESSAGE_BYTES = 64 * 1024
# How often a large message is offered again to a peer that was already sent it.
LARGE_RESEND_S = 10.0

RECEIVED = -1.0  # the "sent at" of a message the peer itself sent us


class GossipMemory:
    def __init__(self, small_resend_s: float) -> None:
        self.small_resend_s = small_resend_s
        self._known: dict[str, dict[bytes, float]] = {}  # peer -> signature -> sent at

    def resend_after_s(self, size_bytes: int) -> float:
        return LARGE_RESEND_S if size_bytes > LARGE_MESSAGE_BYTES else self.small_resend_s

    def peers_lacking(self, key: bytes, size_bytes: int, peers: Iterable[str],
                      now_s: float) -> list[str]:  # fmt: skip
        """The peers among `peers` to send the message `key` of `size_bytes` now."""
        wait_s = self.resend_after_s(size_bytes)
        lacking = []
        for peer in peers:
            sent_at = self._known.get(peer, {}).get(key)
            if sent_at is None or (sent_at != RECEIVED and now_s - sent_at >= wait_s):
                lacking.append(peer)
        return lacking

    def note_sent(self, peer: str, key: bytes, now_s: float) -> None:
        known = self._known.setdefault(peer, {})
        if known.get(key) != RECEIVED:
            known[key] = now_s

    def note_received(self, peer: str, key: bytes) -> None:
        self._known.setdefault(peer, {})[key] = RECEIVED

    def forget_peer(self, peer: str) -> None:
        """The peer disconnected: a new connection starts knowing nothing."""
        self._known.pop(peer, None)

    def new_height(self) -> None:
        self._known.clear()
