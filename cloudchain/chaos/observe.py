"""What each node holds once the faults are healed, read over its RPC, as typed views.

`observe(rpc_urls, accounts)` asks every node, concurrently, for:

- its latest height, and for every height from 1 its block hash, the app hash its
  header carries (the state after the previous block) and its transaction count,
  from `blockchain` (twenty headers a call: cheap even for long runs);
- the app hash the node itself computed at the top height every node reached
  (`block_results(H).app_hash`), and the accounts' balances and the token supply at H;
- the transactions of every block that has any (`block` and `block_results`): each
  one's hash, height, index, result code, and the transfer it makes, decoded;
- the evidence of double votes every block whose header has an evidence hash commits
  (`block`'s DuplicateVoteEvidence): whose votes, at what height.

Transactions are fetched from one node (the highest) for each height, and from every
other node only where its block hash differs there: equal block hashes mean equal
transactions (the header's data hash), so the views of nodes that agree share them.

Fees are burnt (`cloudchain/chaincode/fees.py`): each committed transaction, failed or
not, takes its `fee` from its sender out of the supply. So the accounts' balances plus
the fees their transactions paid equal their genesis balances, exactly.

`watch_recovery(rpc_urls, heal_ns, bound_s)` is called as the faults heal: it reads
each node's height as soon as the node answers, then how soon it commits a new block.

Every call has a timeout; a node that does not answer gets a view with its error and
no blocks, and the checker reports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from cloudchain.client import Client, RPCClientError, decode_query_value
from cloudchain.client.results import Block, BlockResults
from cloudchain.codec import CodecError
from cloudchain.ledger import MalformedError, Transaction

CALL_TIMEOUT_S = 10.0  # one RPC call
EMPTY_EVIDENCE_HASH = hashlib.sha256(b"").digest()  # a header's evidence hash with none
HEADERS_PER_CALL = 20  # what `blockchain` answers at most
MAX_HEIGHTS = 100_000  # read at most this many heights of a node's chain
PARALLEL_CALLS = 8  # per node
RECOVERY_POLL_S = 0.05  # how often watch_recovery asks a node its height

T = TypeVar("T")


@dataclass(frozen=True)
class CommittedTx:
    """A transaction in a block: `code` is its result (0: applied); `fee` was burnt from
    `sender` either way. `recipient` and `amount` are a token.transfer's, else empty."""

    tx_hash: str
    height: int
    index: int
    code: int
    sender: str
    nonce: int
    fee: int
    module: str
    method: str
    recipient: str = ""
    amount: int = 0

    @property
    def is_transfer(self) -> bool:
        return (self.module, self.method) == ("token", "transfer")


@dataclass(frozen=True)
class HeaderView:
    """A block as a node's `blockchain` lists it; `app_hash` is its header's (the state
    after the previous block), hex."""

    height: int
    block_hash: str
    app_hash: str
    num_txs: int
    has_evidence: bool = False


@dataclass(frozen=True)
class EvidenceSeen:
    """A double vote committed in block `height`: validator `validator` (hex, as the
    genesis's addresses) voted twice at `vote_height`."""

    height: int
    validator: str
    vote_height: int


@dataclass(frozen=True)
class NodeView:
    """Node `node` as observed: `headers` from height 1 up to `latest_height` (or to
    MAX_HEIGHTS), `txs` those blocks' transactions in chain order, and at
    `state_height` (the top every answering node reached) its own app hash,
    the accounts' balances (sorted by address) and the supply. `error` says why a node
    has no view (it did not answer)."""

    node: int
    latest_height: int = 0
    headers: tuple[HeaderView, ...] = ()
    txs: tuple[CommittedTx, ...] = ()
    state_height: int = 0
    state_app_hash: str = ""
    balances: tuple[tuple[str, int], ...] = ()
    supply: int | None = None
    evidence: tuple[EvidenceSeen, ...] = ()
    error: str = ""

    @property
    def answered(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class Recovery:
    """Node `node` after the heal: the height it first answered with, and when (the
    monotonic ns) it first answered with a higher one; None if not within the bound."""

    node: int
    height_at_heal: int
    new_block_ns: int | None
    new_height: int = 0
    error: str = ""


class ObserveError(Exception):
    """A node's answer cannot be read as a view (the message says which call)."""


async def _timed(call: Awaitable[T], timeout_s: float = CALL_TIMEOUT_S) -> T:
    try:
        return await asyncio.wait_for(call, timeout_s)
    except TimeoutError:
        raise RPCClientError(-1, f"no answer within {timeout_s} s") from None


async def observe(
    rpc_urls: Sequence[str], accounts: Sequence[str], max_heights: int = MAX_HEIGHTS
) -> list[NodeView]:
    """Every node's view (see the module's docstring); `accounts` are addresses."""
    clients = [Client(url) for url in rpc_urls]
    headers = await asyncio.gather(*(_headers(c, max_heights) for c in clients))
    views = [
        NodeView(i, latest_height=h[-1].height if h else 0, headers=h)
        if isinstance(h, tuple)
        else NodeView(i, error=h)
        for i, h in enumerate(headers)
    ]
    answering = [v for v in views if v.answered]
    if not answering:
        return views
    views = await _with_txs(clients, views)
    views = await _with_evidence(clients, views)
    state_height = min(v.latest_height for v in answering)
    states = await asyncio.gather(
        *(_state(c, v, state_height, accounts) for c, v in zip(clients, views, strict=True))
    )
    return list(states)


async def _headers(client: Client, max_heights: int) -> tuple[HeaderView, ...] | str:
    """The node's headers from 1, or why it did not give them."""
    try:
        top = min((await _timed(client.status())).latest_block_height, max_heights)
        limit = asyncio.Semaphore(PARALLEL_CALLS)

        async def page(low: int) -> list[HeaderView]:
            high = min(low + HEADERS_PER_CALL - 1, top)
            async with limit:
                info = await _timed(client.blockchain(low, high))
            return [
                HeaderView(
                    m.header.height,
                    m.block_id.hash.hex(),
                    m.header.app_hash.hex(),
                    m.num_txs,
                    m.header.evidence_hash not in (None, EMPTY_EVIDENCE_HASH),
                )
                for m in info.block_metas
                if low <= m.header.height <= high
            ]

        pages = await asyncio.gather(*(page(low) for low in range(1, top + 1, HEADERS_PER_CALL)))
    except RPCClientError as exc:
        return str(exc)
    found = sorted((h for p in pages for h in p), key=lambda h: h.height)
    if [h.height for h in found] != list(range(1, top + 1)):
        return f"blockchain did not list every height 1..{top}"
    return tuple(found)


async def _with_txs(clients: Sequence[Client], views: list[NodeView]) -> list[NodeView]:
    """The views with their transactions: fetched from the highest node at each height,
    and from another only where its block hash differs."""
    answering = [v for v in views if v.answered]
    reference = max(answering, key=lambda v: (v.latest_height, -v.node))
    wanted: dict[tuple[int, int], None] = {}  # (node, height) to fetch
    for view in answering:
        for header in view.headers:
            if header.num_txs == 0:
                continue
            ref = _header_at(reference, header.height)
            source = reference if ref is not None and ref == header else view
            wanted[(source.node, header.height)] = None
    limit = asyncio.Semaphore(PARALLEL_CALLS)

    async def fetch(node: int, height: int) -> tuple[tuple[int, int], list[CommittedTx] | str]:
        async with limit:
            try:
                return (node, height), await _block_txs(clients[node], height)
            except (RPCClientError, ObserveError) as exc:
                return (node, height), str(exc)

    fetched = dict(await asyncio.gather(*(fetch(n, h) for n, h in sorted(wanted))))
    out = []
    for view in views:
        if not view.answered:
            out.append(view)
            continue
        txs: list[CommittedTx] = []
        error = ""
        for header in view.headers:
            if header.num_txs == 0:
                continue
            ref = _header_at(reference, header.height)
            source = reference.node if ref is not None and ref == header else view.node
            got = fetched[(source, header.height)]
            if isinstance(got, str):
                error = f"block {header.height}: {got}"
                break
            txs.extend(got)
        out.append(replace(view, txs=tuple(txs), error=error))
    return out


async def _with_evidence(clients: Sequence[Client], views: list[NodeView]) -> list[NodeView]:
    """The views with the evidence their blocks commit (few blocks hold any: each is
    fetched from its own node)."""
    limit = asyncio.Semaphore(PARALLEL_CALLS)

    async def of_view(view: NodeView) -> NodeView:
        if not view.answered:
            return view
        heights = [h.height for h in view.headers if h.has_evidence]

        async def fetch(height: int) -> list[EvidenceSeen]:
            async with limit:
                return block_evidence(await _timed(clients[view.node].block(height)))

        try:
            found = await asyncio.gather(*(fetch(h) for h in heights))
        except (RPCClientError, ObserveError) as exc:
            return replace(view, error=f"evidence: {exc}")
        return replace(view, evidence=tuple(e for block in found for e in block))

    return list(await asyncio.gather(*(of_view(v) for v in views)))


def block_evidence(block: Block) -> list[EvidenceSeen]:
    """The double votes a `block` result lists (CometBFT's amino-JSON envelope)."""
    try:
        listed = block.raw["block"].get("evidence", {}).get("evidence", [])
        return [
            EvidenceSeen(
                block.height,
                e["value"]["vote_a"]["validator_address"].lower(),
                int(e["value"]["vote_a"]["height"]),
            )
            for e in listed
            if e.get("type") == "tendermint/DuplicateVoteEvidence"
        ]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        what = f"block {block.height}: evidence not as CometBFT lists it: {exc}"
        raise ObserveError(what) from None


def _header_at(view: NodeView, height: int) -> HeaderView | None:
    if 1 <= height <= len(view.headers):
        return view.headers[height - 1]
    return None


async def _block_txs(client: Client, height: int) -> list[CommittedTx]:
    block, results = await asyncio.gather(
        _timed(client.block(height)), _timed(client.block_results(height))
    )
    return committed_txs(block, results)


def committed_txs(block: Block, results: BlockResults) -> list[CommittedTx]:
    """The block's transactions with their results, decoded."""
    if len(block.txs) != len(results.txs_results):
        raise ObserveError(
            f"block {block.height} has {len(block.txs)} txs, its results {len(results.txs_results)}"
        )
    out = []
    for index, (raw, result) in enumerate(zip(block.txs, results.txs_results, strict=True)):
        try:
            tx = Transaction.from_bytes(raw)
        except (MalformedError, CodecError) as exc:
            raise ObserveError(f"block {block.height} tx {index}: {exc}") from None
        transfer = (tx.module, tx.method) == ("token", "transfer")
        out.append(
            CommittedTx(
                tx_hash=tx.hash.hex(),
                height=block.height,
                index=index,
                code=result.code,
                sender=tx.sender_address,
                nonce=tx.nonce,
                fee=tx.fee,
                module=tx.module,
                method=tx.method,
                recipient=str(tx.args.get("to", "")) if transfer else "",
                amount=int(tx.args.get("amount", 0)) if transfer else 0,
            )
        )
    return out


async def _state(client: Client, view: NodeView, height: int, accounts: Sequence[str]) -> NodeView:
    if not view.answered:
        return view
    try:
        results, supply, *balances = await asyncio.gather(
            _timed(client.block_results(height)),
            _timed(client.query("/token/supply", b"", height)),
            *(_timed(client.query("/token/balance", a.encode(), height)) for a in accounts),
        )
    except RPCClientError as exc:
        return replace(view, error=f"state at height {height}: {exc}")
    return replace(
        view,
        state_height=height,
        state_app_hash=results.app_hash.hex(),
        balances=tuple(sorted((b["address"], int(b["balance"])) for b in balances)),
        supply=int(supply["supply"]),
    )


async def read_balances(
    client: Client, accounts: Sequence[str], timeout_s: float = CALL_TIMEOUT_S
) -> tuple[int, tuple[tuple[str, int], ...]]:
    """Every account's balance at one height: the latest the node answers the first
    query at, then the others at that height. (height, sorted balances)."""
    first, *rest = accounts
    response = await _timed(client.abci_query("/token/balance", first.encode()), timeout_s)
    if not response.ok:
        raise RPCClientError(response.code, "query refused", response.log)
    height = response.height
    answers = await asyncio.gather(
        *(_timed(client.query("/token/balance", a.encode(), height), timeout_s) for a in rest)
    )
    first_answer = decode_query_value(response)
    pairs = [(first_answer["address"], int(first_answer["balance"]))]
    pairs.extend((a["address"], int(a["balance"])) for a in answers)
    return height, tuple(sorted(pairs))


async def watch_recovery(rpc_urls: Sequence[str], heal_ns: int, bound_s: float) -> list[Recovery]:
    """For each node, the height it answers with first after the heal and when it first
    answers with a higher one, waiting at most `bound_s` from `heal_ns`."""
    deadline_ns = heal_ns + int(bound_s * 1e9)
    return list(
        await asyncio.gather(
            *(_recovery(i, Client(u), deadline_ns) for i, u in enumerate(rpc_urls))
        )
    )


async def _recovery(node: int, client: Client, deadline_ns: int) -> Recovery:
    first: int | None = None
    error = ""
    while time.monotonic_ns() < deadline_ns:
        remaining_s = (deadline_ns - time.monotonic_ns()) / 1e9
        try:
            height = (
                await _timed(client.status(), max(0.1, min(CALL_TIMEOUT_S, remaining_s)))
            ).latest_block_height
        except RPCClientError as exc:
            error = str(exc)
        else:
            if first is None:
                first = height
            elif height > first:
                return Recovery(node, first, time.monotonic_ns(), height)
        await asyncio.sleep(RECOVERY_POLL_S)  # a poll interval, not a synchronisation
    return Recovery(node, first or 0, None, error=error if first is None else "")
