"""The node's blob endpoints: HTTP for the bytes, JSON-RPC for the bookkeeping.

    POST /blobs[?cid-version=1&replicas=N]   the body, streamed into the store
        200 {"cid", "size", "replicas": [node ids]}   the blob is here and pinned
    GET  /blobs/{cid}   the bytes, streamed; one range at most (Range: bytes=a-b,
        bytes=a-, bytes=-n): 200 whole, 206 with Content-Range, 416 with
        Content-Range: bytes */size when the range starts past the end
    HEAD /blobs/{cid}   the headers the GET would give, no body
    blob_stat {cid}, blob_pin {cid}, blob_unpin {cid}, blob_gc {}   JSON-RPC (rpc.py)

Every HTTP error is JSON {"error": "what went wrong"}: 400 a malformed CID or query,
or an upload cut short; 404 a blob not (wholly) here; 413 an upload above [blobs]
max_upload_bytes; 416 a range past the end; 500 a corrupt block (never served; the
store quarantines it); 503 a store that is not open, or fewer replicas than asked
for. The ETag of a blob is its CID: the bytes under a CID never change.

What this module owns: the mapping of the store's errors to statuses (once, in
`_answer`), and the bridge between aiohttp's streams and the synchronous
BlobStore. Every store call runs on this module's threads (BLOB_THREADS), never on
the event loop; an upload's body is read by the event loop in pieces that the
store's thread waits for (`_UploadReader`), so a body is never held whole in
memory, and the RPC server's client_max_size (a bound for `request.read()`) does
not apply to it.

Where the exchange plugs in (node.exchange, blobs/exchange.py): an upload asking
for `replicas` > 1 has the exchange bring the blob to that many nodes in all
(503, naming the holders, if fewer can); a GET of a blob that is not wholly here
fetches what is missing from the connected peers first, as an IPFS gateway does
(404 if no peer has it). GC keeps the CIDs anchored on chain (`node.anchored_cids`)
besides the pins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.blobs.exchange import BlobExchange, FetchError, NoProvidersError, ReplicationError
from cloudchain.blobs.importer import CID_V1_OPTIONS, DEFAULT_OPTIONS, ImportOptions
from cloudchain.blobs.store import (
    BlobStore,
    BlockNotFoundError,
    CorruptBlockError,
    InputSizeError,
    PinLimitError,
    RangeNotSatisfiableError,
)
from cloudchain.logfields import fields
from cloudchain.node.rpc.errors import INTERNAL_ERROR, RPCError
from cloudchain.node.rpc.params import bad_params

if TYPE_CHECKING:
    from cloudchain.node.runtime import Node

log = logging.getLogger(__name__)

T = TypeVar("T")

# Threads for store calls. An upload holds one for its whole transfer; UPLOADS_MAX
# of them at once leaves the rest to downloads, stats and pins.
BLOB_THREADS = 16
UPLOADS_MAX = 8
# The body is read from the socket in pieces of this size, one piece ahead of the store.
READ_AHEAD_BYTES = 1024 * 1024
# The longest an upload's store thread waits for the next piece of the body: a client
# that stops sending frees its thread after this.
BODY_PIECE_TIMEOUT_S = 60.0
# Replicas a put may ask for: more than any network we run has nodes.
REPLICAS_MAX = 64
CID_VERSIONS: dict[str, ImportOptions] = {"0": DEFAULT_OPTIONS, "1": CID_V1_OPTIONS}
BLOB_HEADERS = {
    hdrs.ACCEPT_RANGES: "bytes",
    hdrs.CONTENT_TYPE: "application/octet-stream",
    hdrs.CACHE_CONTROL: "public, max-age=31536000, immutable",  # content-addressed
}
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


# -- errors and pure helpers ---------------------------------------------------------


class BlobHTTPError(Exception):
    """A request refused with an HTTP status and a JSON {"error": message} body."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = headers or {}
        self.extra = extra


class UploadInterruptedError(Exception):
    """The body stopped before its end: the connection was lost or went silent."""


class UploadTooLargeError(Exception):
    """The body went past max_upload_bytes."""


class UnsatisfiableRangeError(ValueError):
    """A Range that starts at or past the end of the blob (HTTP 416)."""

    def __init__(self, start: int, size: int) -> None:
        super().__init__(
            f"the range starts at byte {start}, past the end of the blob ({size} bytes)"
        )
        self.start, self.size = start, size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range [start, end) a Range header asks of a blob of `size` bytes, or
    None for the whole blob: no header, or one we ignore as RFC 9110 allows (not
    bytes, malformed, or several ranges). Raises UnsatisfiableRangeError (416) for
    a range that starts at or past the end, or a suffix of zero bytes."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None  # "bytes=-": malformed
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise UnsatisfiableRangeError(size, size)
        return max(size - suffix, 0), size
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise UnsatisfiableRangeError(start, size)
    end = size if not last else min(int(last) + 1, size)
    return start, end


def parse_cid(text: Any) -> CID:
    """A CID from a client; CIDError (a ValueError) if it is not one."""
    if not isinstance(text, str):
        raise CIDError(f"expected CID text, got {type(text).__name__}")
    return CID.parse(text)


def _query_options(query: Any) -> ImportOptions:
    version = query.get("cid-version", "0")
    if version not in CID_VERSIONS:
        raise BlobHTTPError(400, f"cid-version must be 0 or 1, not {version!r}")
    return CID_VERSIONS[version]


def _query_replicas(query: Any) -> int:
    text = query.get("replicas", "1")
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= REPLICAS_MAX):
        raise BlobHTTPError(
            400, f"replicas must be an integer from 1 to {REPLICAS_MAX}, not {text!r}"
        )
    return int(text)


# -- the upload bridge ---------------------------------------------------------------


class _UploadReader:
    """An upload's body as the blocking reader `BlobStore.add` takes; runs on a store
    thread, while the event loop reads the body in pieces of READ_AHEAD_BYTES. One
    piece is always being read ahead, so the network and the disk work at once; the
    memory held is two pieces, whatever the body's size. The pieces are kept as
    aiohttp gives them and joined once, into the chunk `read` returns: a copy per
    byte, not one per step."""

    def __init__(self, content: Any, loop: asyncio.AbstractEventLoop, limit_bytes: int) -> None:
        self._content = content
        self._loop = loop
        self._limit_bytes = limit_bytes
        self._pieces: deque[memoryview] = deque()
        self._buffered = 0  # bytes in _pieces
        self._ahead: concurrent.futures.Future[list[bytes]] | None = None
        self._waiting: concurrent.futures.Future[list[bytes]] | None = None  # the thread's
        self._ahead_lock = threading.Lock()  # the loop (close) and the thread (_fill) share
        self._eof = False
        self.bytes_read = 0
        self.cancelled = threading.Event()

    def read(self, size: int = -1, /) -> bytes:
        assert size != 0
        want = size if size > 0 else READ_AHEAD_BYTES
        while self._buffered < want and not self._eof:
            self._fill()
        taken: list[memoryview] = []
        need = min(want, self._buffered)
        while need:
            piece = self._pieces.popleft()
            if len(piece) > need:
                self._pieces.appendleft(piece[need:])
                piece = piece[:need]
            taken.append(piece)
            need -= len(piece)
            self._buffered -= len(piece)
        return b"".join(taken)

    def _fill(self) -> None:
        """Wait for the piece being read ahead, and start reading the next one."""
        with self._ahead_lock:
            if self.cancelled.is_set():
                raise UploadInterruptedError("the upload was cancelled")
            future = self._ahead if self._ahead is not None else self._start()
            self._ahead, self._waiting = None, future
        try:
            pieces = future.result(timeout=BODY_PIECE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise UploadInterruptedError(
                f"no bytes of the body for {BODY_PIECE_TIMEOUT_S:g} s after {self.bytes_read}"
            ) from None
        except concurrent.futures.CancelledError:
            raise UploadInterruptedError("the upload was cancelled") from None
        size = sum(len(piece) for piece in pieces)
        self.bytes_read += size
        if self.bytes_read > self._limit_bytes:
            raise UploadTooLargeError(f"the body is larger than {self._limit_bytes} bytes")
        if not size:
            self._eof = True
            return
        self._pieces.extend(memoryview(piece) for piece in pieces)
        self._buffered += size
        with self._ahead_lock:
            if not self.cancelled.is_set():
                self._ahead = self._start()

    def _start(self) -> concurrent.futures.Future[list[bytes]]:
        size = min(READ_AHEAD_BYTES, self._limit_bytes - self.bytes_read + 1)
        return asyncio.run_coroutine_threadsafe(self._read(size), self._loop)

    def close(self) -> None:
        """Stop the reads nobody will wait for (the upload ended or failed); with
        `cancelled` set first, the thread starts no other."""
        with self._ahead_lock:
            for future in (self._ahead, self._waiting):
                if future is not None:
                    future.cancel()
            self._ahead = self._waiting = None

    async def _read(self, size: int) -> list[bytes]:
        """The body's next pieces, `size` bytes in all or fewer at its end."""
        pieces: list[bytes] = []
        got = 0
        try:
            while got < size:
                piece = await self._content.read(size - got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
        except (OSError, HttpProcessingError) as exc:
            read = self.bytes_read + got
            raise UploadInterruptedError(
                f"the upload was cut off after {read} bytes: {exc or type(exc).__name__}"
            ) from None
        return pieces


# -- the service ---------------------------------------------------------------------


class BlobHTTP:
    """The routes and JSON-RPC methods over the node's BlobStore (`node.blobs`)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._executor = concurrent.futures.ThreadPoolExecutor(
            BLOB_THREADS, thread_name_prefix="blob-rpc"
        )
        self._uploads = asyncio.Semaphore(UPLOADS_MAX)
        self._readers: set[_UploadReader] = set()
        self.uploads_in_flight = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/blobs", self._post_blob)
        app.router.add_get("/blobs/{cid}", self._get_blob)  # and HEAD (allow_head)

    def rpc_methods(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "blob_stat": self.blob_stat,
            "blob_pin": self.blob_pin,
            "blob_unpin": self.blob_unpin,
            "blob_gc": self.blob_gc,
        }

    async def stop(self) -> None:
        """Cut the uploads still reading and wait for every store call to end."""
        for reader in self._readers:
            reader.cancelled.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    @property
    def max_upload_bytes(self) -> int:
        return self._node.config.blobs.max_upload_bytes

    async def _run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future = self._executor.submit(function, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def _store(self) -> BlobStore:
        store = self._node.blobs
        if store is None:
            raise BlobHTTPError(503, "the blob store is not open (the node is not running)")
        return store

    def _exchange(self) -> BlobExchange:
        exchange = self._node.exchange
        if exchange is None:
            raise BlobHTTPError(503, "the blob exchange is not running (the node is not)")
        return exchange

    # -- HTTP --------------------------------------------------------------------

    async def _post_blob(self, request: web.Request) -> web.StreamResponse:
        return await _answer(request, self._upload)

    async def _get_blob(self, request: web.Request) -> web.StreamResponse:
        return await _answer(request, self._download)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        store = self._store()
        options = _query_options(request.query)
        replicas = _query_replicas(request.query)
        expected = request.content_length  # None for a chunked body
        limit_bytes = self.max_upload_bytes
        if expected is not None and expected > limit_bytes:
            raise UploadTooLargeError(
                f"the body ({expected} bytes) is larger than {limit_bytes} bytes"
            )
        reader = _UploadReader(request.content, asyncio.get_running_loop(), limit_bytes)
        async with self._uploads:
            self._readers.add(reader)
            self.uploads_in_flight += 1
            adding = asyncio.wrap_future(
                self._executor.submit(store.add, reader, options, pin=True, expected_size=expected)
            )
            try:
                added = await asyncio.shield(adding)
            except asyncio.CancelledError:
                # The client went away: stop the reader, and hold the upload's slot until
                # its thread is done (it ends at its next read).
                reader.cancelled.set()
                reader.close()
                await asyncio.gather(adding, return_exceptions=True)
                raise
            finally:
                reader.close()
                self._readers.discard(reader)
                self.uploads_in_flight -= 1
        cid = str(added.root)
        log.info(
            "blob added",
            extra=fields(cid=cid, size=added.size, blocks_written=added.blocks_written),
        )
        try:
            holders = await self._exchange().replicate(added.root, replicas)
        except ReplicationError as exc:
            raise BlobHTTPError(
                503, str(exc), cid=cid, size=added.size, replicas=exc.holders
            ) from None
        return web.json_response({"cid": cid, "size": added.size, "replicas": holders})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        store = self._store()
        cid = parse_cid(request.match_info["cid"])
        with store.hold(cid):  # GC keeps what a fetch brings until it is sent
            return await self._send_blob(request, store, cid)

    async def _send_blob(
        self, request: web.Request, store: BlobStore, cid: CID
    ) -> web.StreamResponse:
        # HEAD says what is here: it does not bring a blob from the peers.
        size = await self._whole_size(store, cid, fetch=request.method != hdrs.METH_HEAD)
        span = parse_range(request.headers.get(hdrs.RANGE), size)
        headers = {**BLOB_HEADERS, hdrs.ETAG: f'"{cid}"'}
        start, end = (0, size) if span is None else span
        if span is not None:
            headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end - 1}/{size}"
        response = web.StreamResponse(status=200 if span is None else 206, headers=headers)
        response.content_length = end - start
        if request.method == hdrs.METH_HEAD:
            await response.prepare(request)
            return response
        pieces = await self._run(store.read, cid, start, end)
        # The first piece before the status line: an error there is still a clean answer.
        piece = await self._run(next, pieces, None)
        await response.prepare(request)
        try:
            while piece is not None:
                await response.write(piece)
                piece = await self._run(next, pieces, None)
        except (BlockNotFoundError, CorruptBlockError) as exc:
            # Headers are sent: the only way to say so is to cut the connection short.
            log.error("blob download cut", extra=fields(cid=str(cid), error=str(exc)))
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _whole_size(self, store: BlobStore, cid: CID, *, fetch: bool = True) -> int:
        """The blob's size, once every block of it is here: what is missing is
        fetched from the connected peers first (unless not `fetch`: a 404)."""
        try:
            stat = await self._run(store.stat, cid)
        except BlockNotFoundError:
            stat = None
        if stat is not None and stat.complete:
            return stat.size
        if not fetch:
            where = "not here" if stat is None else "only partly here"
            raise BlobHTTPError(404, f"blob {cid} is {where}")
        try:
            await self._exchange().fetch(cid)
        except NoProvidersError as exc:
            where = (
                "not here"
                if stat is None
                else (f"only partly here ({stat.blocks_missing} blocks missing)")
            )
            raise BlobHTTPError(
                404,
                f"blob {cid} is {where}, and no connected peer has "
                f"{'it' if exc.cid == cid else f'block {exc.cid}'}",
            ) from None
        except FetchError as exc:  # the peers gave a DAG that is not a UnixFS file
            raise BlobHTTPError(502, str(exc)) from None
        return (await self._run(store.stat, cid)).size

    # -- JSON-RPC ----------------------------------------------------------------

    async def blob_stat(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        store = self._rpc_store()
        stat = await self._rpc_run(store.stat, cid)
        pinned = cid in await self._rpc_run(store.pins)
        return {
            "cid": str(cid),
            "size": stat.size,
            "complete": stat.complete,
            "blocks_local": stat.blocks_local,
            "blocks_missing": stat.blocks_missing,
            "pinned": pinned,
        }

    async def blob_pin(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        changed = await self._rpc_run(self._rpc_store().pin, cid)
        return {"cid": str(cid), "pinned": True, "changed": changed}

    async def blob_unpin(self, params: dict[str, Any]) -> dict[str, Any]:
        cid = _cid_param(params)
        changed = await self._rpc_run(self._rpc_store().unpin, cid)
        return {"cid": str(cid), "pinned": False, "changed": changed}

    async def blob_gc(self, params: dict[str, Any]) -> dict[str, Any]:
        keep = await self._rpc_run(self._node.anchored_cids)  # the store keeps its pins
        result = await self._rpc_run(self._rpc_store().gc, keep)
        return {
            "blocks_removed": result.blocks_removed,
            "bytes_freed": result.bytes_freed,
            "blocks_kept": result.blocks_kept,
        }

    def _rpc_store(self) -> BlobStore:
        try:
            return self._store()
        except BlobHTTPError as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", exc.message) from None

    async def _rpc_run(self, function: Callable[..., T], *args: Any) -> T:
        """A store call, its errors as JSON-RPC's."""
        try:
            return await self._run(function, *args)
        except BlockNotFoundError as exc:
            raise RPCError(
                INTERNAL_ERROR, "Internal error", f"blob {exc.cid} is not in the store"
            ) from None
        except (CorruptBlockError, PinLimitError) as exc:
            raise RPCError(INTERNAL_ERROR, "Internal error", str(exc)) from None


def _cid_param(params: dict[str, Any]) -> CID:
    try:
        return parse_cid(params.get("cid"))
    except CIDError as exc:
        raise bad_params(f"cid: {exc}") from None


async def _answer(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run a blob handler; its errors become JSON answers, mapped here and only here."""
    try:
        return await handler(request)
    except BlobHTTPError as exc:
        return _error(request, exc.status, exc.message, exc.headers, **exc.extra)
    except CIDError as exc:
        return _error(request, 400, f"malformed CID: {exc}")
    except UploadInterruptedError as exc:
        return _error(request, 400, str(exc))
    except InputSizeError as exc:
        return _error(request, 400, f"truncated upload: {exc}")
    except UploadTooLargeError as exc:
        return _error(request, 413, str(exc))
    except BlockNotFoundError as exc:
        return _error(request, 404, f"blob {exc.cid} is not here")
    except (UnsatisfiableRangeError, RangeNotSatisfiableError) as exc:
        return _error(
            request,
            416,
            f"the range starts at byte {exc.start}, past the end of the blob ({exc.size} bytes)",
            {hdrs.CONTENT_RANGE: f"bytes */{exc.size}"},
            size=exc.size,
        )
    except CorruptBlockError as exc:
        return _error(request, 500, f"corrupt block, not served: {exc}")
    except PinLimitError as exc:
        return _error(request, 507, str(exc))


def _error(
    request: web.Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    log.info(
        "blob request refused",
        extra=fields(method=request.method, path=request.path, status=status, error=message),
    )
    return web.json_response({"error": message, **extra}, status=status, headers=headers)
