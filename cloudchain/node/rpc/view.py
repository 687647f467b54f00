"""What the RPC port sees of a running node: `NodeView`, and all it may ask of it.

The RPC methods and the blob routes are written against this protocol, never
against the node itself, so the arrow points one way: the node (runtime.py)
builds the RPC server and hands itself over as a NodeView; nothing in
cloudchain/node/rpc/ imports the runtime. Each part is narrowed to what the
handlers use: the chain store read only, the mempool's counts and pending
transactions, the application's genesis, info and queries, the peers' ids, the
settings the handlers show or obey (the moniker, the listen addresses, the peers
dialled, [rpc] unsafe, [blobs]). No consensus state but the commit of a decided height.

What the RPC may change is declared here and nowhere else: `submit_tx` admits a
client's transaction into the mempool (and gossips it), `refresh_metrics` brings
gauges up to date, the blob store takes uploads, pins, unpins and collects
garbage (`BlobStoreAccess`), and the exchange brings blobs into it from peers
and replicates them to peers (`BlobExchanger`). The chain, the application and
consensus are not written through the view.

tests/test_node_view.py checks that the real objects (Node, ChainStore,
Application, ...) have every member declared here. This module only declares;
it holds no state and does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from cloudchain.blobs.cid import CID
from cloudchain.blobs.exchange import FetchResult
from cloudchain.blobs.importer import BinaryReader, ImportOptions
from cloudchain.blobs.leasefile import Lease
from cloudchain.blobs.store import AddResult, BlobStat, GCResult
from cloudchain.chaincode.application import AppInfo, QueryResult
from cloudchain.genesis import Genesis
from cloudchain.ledger import Block, Commit, DuplicateVoteEvidence, TxResult, Validator
from cloudchain.node.config import BlobsConfig, P2PConfig, RPCConfig
from cloudchain.node.mempool import Admission
from cloudchain.storage.chain import BlockResults


class ChainReader(Protocol):
    """The block store and the transaction index, read only (storage/chain.py)."""

    @property
    def height(self) -> int: ...

    @property
    def last_block(self) -> Block | None: ...

    def block(self, height: int) -> Block | None: ...

    def block_height(self, block_hash: bytes) -> int | None: ...

    def block_results(self, height: int) -> BlockResults | None: ...

    def app_hash_at(self, height: int) -> bytes | None: ...

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None: ...

    def tx_result(self, tx_hash: bytes) -> TxResult | None: ...

    def txs_with_event(
        self, composite_key: str, value: str | None = None
    ) -> Iterator[tuple[str, tuple[int, int]]]: ...


class AppReader(Protocol):
    """The application's genesis, info and queries (chaincode/application.py)."""

    @property
    def genesis(self) -> Genesis: ...

    def info(self) -> AppInfo: ...

    def query(self, path: str, data: bytes = b"", height: int = 0) -> QueryResult: ...


class MempoolReader(Protocol):
    """What waits in the mempool: counts (ready and gapped) and the transactions, the
    ready ones in block order first (node/mempool/pool.py's `pending`)."""

    def __len__(self) -> int: ...

    @property
    def size_bytes(self) -> int: ...

    def pending(self, limit: int) -> list[bytes]: ...


class PeersReader(Protocol):
    """This node's id on the network and the peers connected now."""

    @property
    def node_id(self) -> str: ...

    @property
    def connected(self) -> Sequence[str]: ...


class ValidatorKey(Protocol):
    """The public half of the node's validator key."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def address(self) -> str: ...


class MetricsReader(Protocol):
    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        ...


class NodeSettings(Protocol):
    """The sections of config.toml the handlers read (node/config.py): the moniker
    and the listen addresses `status` shows, the peers dialled `net_info` marks,
    [blobs]'s upload limit. Consensus, mempool and log settings are not the RPC's."""

    @property
    def moniker(self) -> str: ...

    @property
    def p2p(self) -> P2PConfig: ...

    @property
    def rpc(self) -> RPCConfig: ...

    @property
    def blobs(self) -> BlobsConfig: ...


class BlobStoreAccess(Protocol):
    """What the blob routes and the admin methods do with the blob store
    (blobs/store.py): add an upload, leased (within the quota of unanchored bytes);
    read and stat a blob, held from GC while it is fetched and sent; read its blocks
    (blob_dag); pin, unpin, list the pins, look up a lease and collect garbage. Every
    call blocks: they run on the blob routes' threads (blob_http.py)."""

    def add(
        self,
        reader: BinaryReader,
        options: ImportOptions,
        *,
        pin: bool,
        lease: bool,
        expected_size: int | None,
    ) -> AddResult: ...

    def read(self, cid: CID, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def stat(self, cid: CID) -> BlobStat: ...

    def has(self, cid: CID) -> bool: ...

    def get_block(self, cid: CID) -> bytes: ...

    def hold(self, *roots: CID) -> AbstractContextManager[object]: ...

    def pins(self) -> list[CID]: ...

    def lease_of(self, cid: CID) -> Lease | None: ...

    def pin(self, cid: CID) -> bool: ...

    def unpin(self, cid: CID) -> bool: ...

    def gc(self, keep: Iterable[CID] = ()) -> GCResult: ...


class BlobExchanger(Protocol):
    """The blob exchange's calls an upload and a download make (blobs/exchange/)."""

    async def replicate(self, root: CID, replicas: int) -> list[str]: ...

    async def fetch(self, root: CID) -> FetchResult: ...


class NodeView(Protocol):
    """A running node as the RPC port sees it; runtime.py's Node is one."""

    # --- who the node is ---------------------------------------------------------------------

    @property
    def chain_id(self) -> str: ...

    @property
    def config(self) -> NodeSettings:
        """The moniker, the listen addresses, the peers dialled, [blobs]'s limits."""
        ...

    @property
    def key(self) -> ValidatorKey | None:
        """None: the node is not a validator."""
        ...

    @property
    def validators(self) -> Sequence[Validator]:
        """The validator set, in its order (it never changes)."""
        ...

    @property
    def peers(self) -> PeersReader: ...

    @property
    def catching_up(self) -> bool:
        """Whether the node is fetching decided blocks from peers ahead (sync.py)."""
        ...

    # --- the chain -------------------------------------------------------------------------

    @property
    def store(self) -> ChainReader: ...

    @property
    def app(self) -> AppReader: ...

    def decided_commit(self, height: int) -> Commit | None:
        """The commit that decided `height`, if the node still holds it (the latest
        height's commit is in no block yet)."""
        ...

    # --- transactions ----------------------------------------------------------------------

    @property
    def mempool(self) -> MempoolReader: ...

    def submit_tx(self, raw: bytes) -> Admission:
        """Check a client's transaction into the mempool, and gossip it if admitted."""
        ...

    def submit_evidence(self, raw: bytes) -> DuplicateVoteEvidence:
        """Take a client's evidence of a double vote into the pool and gossip it; a
        MalformedError if it does not decode, EvidenceRefused if it may not be committed."""
        ...

    # --- metrics ---------------------------------------------------------------------------

    @property
    def metrics(self) -> MetricsReader: ...

    def refresh_metrics(self) -> None:
        """Bring the gauges read on demand (mempool, peers) up to date."""
        ...

    # --- blobs: None until the node starts -------------------------------------------------

    @property
    def blobs(self) -> BlobStoreAccess | None: ...

    @property
    def exchange(self) -> BlobExchanger | None: ...

    def anchored_cids(self) -> list[CID]:
        """The CIDs anchored on chain, which blob GC keeps besides the pins."""
        ...
