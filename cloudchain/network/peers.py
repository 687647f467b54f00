"""Connections to the other nodes: dialing, accepting, sending, receiving, reconnecting.

Only peers named in the allow-list (the persistent peers of config.toml, by node
id) may connect. To keep exactly one connection per pair of nodes, the node
with the lower id dials and the higher one accepts. A peer that breaks the
protocol (PeerError) or hangs up is dropped; an outbound peer is dialed again
with exponential backoff.

Each connection has three send queues, written in this order of priority. The
urgent one (consensus, block sync) is bounded in messages and in bytes: when a
slow peer lets it fill, further messages to that peer are dropped and counted
(gossip re-sends what matters). The gossip one (transaction batches, `send(...,
gossip=True)`) is bounded and dropped from the same way, but apart: a flood of
transactions never fills the urgent queue and so never costs a vote, and a vote
queued after a thousand transactions goes out before them.
The bulk one (blob blocks, `send(..., bulk=True)`) is bounded in bytes, and its
senders wait for room (`wait_for_room`) instead of losing data. The writer
always empties the urgent queue first, then the gossip one, so a transfer of
gigabytes or a burst of transactions delays a vote by one message at most, as
CometBFT's channel priorities do. The reader yields to the event loop after each
message it hands on, so that one peer's burst does not hold up another's votes. `broadcast`
and `send` say how many peers a message was queued for, so the caller can count
bytes by what they mean.

What the bytes mean is the caller's business: `on_message(peer_id, data)`, and
`on_disconnect(peer_id)` once a connected peer is dropped. A PeerError, from the
transport or from `on_message`, is a refused message: the peer is disconnected
and `refused_messages` counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cloudchain.crypto import PrivateKey, address
from cloudchain.logfields import fields
from cloudchain.network.secret_connection import PeerError, SecretConnection, handshake

log = logging.getLogger(__name__)

SEND_QUEUE_MESSAGES = 1_024  # urgent, per peer; beyond it, messages to that peer are dropped
# The urgent queue's bytes per peer: room for a few proposals of the largest block
# (16 MiB) and their votes; beyond it messages are dropped as when it is full.
SEND_QUEUE_BYTES = 64 * 1024 * 1024
# Bulk bytes queued per peer before `wait_for_room` makes senders wait: 4 MiB, sixteen
# 256 KiB blob blocks, keeps a LAN link busy without holding much memory per peer.
BULK_QUEUE_BYTES = 4 * 1024 * 1024
# The gossip queue per peer (transaction batches of at most 256 KiB each): beyond it,
# batches to that peer are dropped (the peer gets those transactions in blocks).
GOSSIP_QUEUE_MESSAGES = 256
GOSSIP_QUEUE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PeerAddress:
    node_id: str  # address of the peer's node key (40 hex)
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        node_id, _, host_port = text.partition("@")
        host, _, port = host_port.rpartition(":")
        return cls(node_id.lower(), host, int(port))


@dataclass(eq=False)
class _Peer:
    connection: SecretConnection
    urgent: deque[bytes] = field(default_factory=deque)
    urgent_bytes: int = 0
    gossip: deque[bytes] = field(default_factory=deque)
    gossip_bytes: int = 0
    bulk: deque[bytes] = field(default_factory=deque)
    bulk_bytes: int = 0
    queued: asyncio.Event = field(default_factory=asyncio.Event)  # something to write
    room: asyncio.Event = field(default_factory=asyncio.Event)  # bulk below its bound
    closed: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.room.set()

    def next_message(self) -> bytes | None:
        if self.urgent:
            data = self.urgent.popleft()
            self.urgent_bytes -= len(data)
            return data
        if self.gossip:
            data = self.gossip.popleft()
            self.gossip_bytes -= len(data)
            return data
        if self.bulk:
            data = self.bulk.popleft()
            self.bulk_bytes -= len(data)
            if self.bulk_bytes < BULK_QUEUE_BYTES:
                self.room.set()
            return data
        return None


class PeerManager:
    def __init__(
        self,
        node_key: PrivateKey,
        listen: tuple[str, int],
        peers: list[PeerAddress],
        on_message: Callable[[str, bytes], None],
        backoff_ms: tuple[int, int] = (250, 10_000),
        on_disconnect: Callable[[str], None] | None = None,
    ) -> None:
        self.node_id = node_key.address
        self._key = node_key
        self._listen = listen
        self._dial = [p for p in peers if p.node_id > self.node_id]  # the lower id dials
        self._allowed = {p.node_id for p in peers}
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._backoff_ms = backoff_ms
        self._peers: dict[str, _Peer] = {}
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped_messages = 0
        self.refused_peers = 0
        self.refused_messages = 0

    @property
    def connected(self) -> list[str]:
        return sorted(self._peers)

    def _is_allowed(self, public_key: bytes) -> bool:
        return address(public_key) in self._allowed

    async def start(self) -> None:
        host, port = self._listen
        self._server = await asyncio.start_server(self._accept, host, port)
        for peer in self._dial:
            self._tasks.append(asyncio.create_task(self._dial_loop(peer)))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for peer_id in list(self._peers):
            await self._drop(peer_id)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def broadcast(self, data: bytes, *, gossip: bool = False) -> int:
        """Queue `data` for every connected peer; return how many peers it was queued for."""
        return sum(self.send(peer_id, data, gossip=gossip) for peer_id in list(self._peers))

    def send(self, peer_id: str, data: bytes, *, bulk: bool = False, gossip: bool = False) -> bool:
        """Queue `data` for one peer; False if it is not connected or, for an urgent or a
        gossip message, its queue is full. A bulk message is always queued: its sender
        awaits `wait_for_room` first to keep the queue within its bound."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        if bulk:
            peer.bulk.append(data)
            peer.bulk_bytes += len(data)
            if peer.bulk_bytes >= BULK_QUEUE_BYTES:
                peer.room.clear()
        elif gossip:
            if (
                len(peer.gossip) >= GOSSIP_QUEUE_MESSAGES
                or peer.gossip_bytes + len(data) > GOSSIP_QUEUE_BYTES
            ):
                self.dropped_messages += 1
                return False
            peer.gossip.append(data)
            peer.gossip_bytes += len(data)
        elif (
            len(peer.urgent) >= SEND_QUEUE_MESSAGES
            or peer.urgent_bytes + len(data) > SEND_QUEUE_BYTES
        ):
            self.dropped_messages += 1
            return False
        else:
            peer.urgent.append(data)
            peer.urgent_bytes += len(data)
        peer.queued.set()
        return True

    async def wait_for_room(self, peer_id: str) -> bool:
        """Wait until the peer's bulk queue is below its bound; False if the peer is
        not connected (or goes away meanwhile)."""
        peer = self._peers.get(peer_id)
        while peer is not None and not peer.closed and not peer.room.is_set():
            await peer.room.wait()
        return peer is not None and not peer.closed

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            connection = await handshake(reader, writer, self._key, self._is_allowed)
        except PeerError as exc:
            self.refused_peers += 1
            log.info("refused inbound peer", extra=fields(error=str(exc)))
            writer.close()
            return
        if connection.peer_address >= self.node_id or connection.peer_address in self._peers:
            await connection.close()  # it should be us dialing it, or it is already here
            return
        # Dropping the peer (at stop, say) cancels this task, which the server created:
        # asyncio's streams would log that cancellation as an error with a traceback.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(connection)

    async def _dial_loop(self, peer: PeerAddress) -> None:
        delay_ms = self._backoff_ms[0]
        while True:
            try:
                reader, writer = await asyncio.open_connection(peer.host, peer.port)
                connection = await handshake(reader, writer, self._key, self._is_allowed)
                if connection.peer_address != peer.node_id:
                    await connection.close()
                    raise PeerError(f"dialed {peer.node_id} but reached {connection.peer_address}")
                delay_ms = self._backoff_ms[0]
                await self._serve(connection)  # returns when the connection ends
            except (OSError, PeerError) as exc:
                log.debug("dial failed", extra=fields(peer=peer.node_id, error=str(exc)))
            await asyncio.sleep(delay_ms / 1000)  # backoff between attempts
            delay_ms = min(2 * delay_ms, self._backoff_ms[1])

    async def _serve(self, connection: SecretConnection) -> None:
        peer_id = connection.peer_address
        peer = _Peer(connection)
        self._peers[peer_id] = peer
        log.info("peer connected", extra=fields(peer=peer_id))
        writer = asyncio.create_task(self._write_loop(peer))
        peer.tasks.append(writer)
        try:
            while True:
                data = await connection.receive_message()
                self._on_message(peer_id, data)
                await asyncio.sleep(0)  # a yield, not a wait: let other peers' messages in
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except PeerError as exc:
            self.refused_messages += 1
            log.warning(
                "peer misbehaved, disconnecting", extra=fields(peer=peer_id, error=str(exc))
            )
        except Exception:  # our bug, not the peer's: say so loudly, keep the node up
            log.exception(
                "handling a peer's message failed, disconnecting", extra=fields(peer=peer_id)
            )
        finally:
            if self._peers.get(peer_id) is peer:
                await self._drop(peer_id)

    async def _write_loop(self, peer: _Peer) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = peer.next_message()
                if data is None:
                    peer.queued.clear()
                    await peer.queued.wait()
                    continue
                await peer.connection.send_message(data)

    async def _drop(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            return
        peer.closed = True
        peer.room.set()  # wake the bulk senders: the peer is gone
        for task in peer.tasks:
            task.cancel()
        if self._on_disconnect is not None:
            self._on_disconnect(peer_id)
        await peer.connection.close()
        log.info("peer disconnected", extra=fields(peer=peer_id))
