"""The node's blob routes on the RPC port: HTTP for the bytes.

    POST /blobs[?cid-version=1&replicas=N]   the body, streamed into the store
        200 {"cid", "size", "replicas": [node ids]}   the blob is here, under a lease
    GET  /blobs/{cid}   the bytes, streamed; one range at most (Range: bytes=a-b,
        bytes=a-, bytes=-n): 200 whole, 206 with Content-Range, 416 with
        Content-Range: bytes */size when the range starts past the end
    HEAD /blobs/{cid}   the headers the GET would give, no body

The bookkeeping (blob_stat, blob_pin, blob_unpin, blob_gc) is JSON-RPC, in
admin.py, on this module's threads.

Every HTTP error is JSON {"error": "what went wrong"}: 400 a malformed CID or query,
or an upload cut short; 404 a blob not (wholly) here; 413 an upload above [blobs]
max_upload_bytes; 416 a range past the end; 500 a corrupt block (never served; the
store quarantines it); 503 a store that is not open, or fewer replicas than asked
for; 507 an upload past [blobs] max_unanchored_bytes. The ETag of a blob is its
CID: the bytes under a CID never change.

An upload is kept under a lease, not a pin (blobs/store.py, "Leases"): its bytes
count against [blobs] max_unanchored_bytes until it is anchored on chain or an
operator pins it. One that would go past the quota, even after the store made room
(releasing anchored leases, collecting those unanchored for longer than [blobs]
unanchored_grace_s, oldest first), is refused with 507 Insufficient Storage (RFC
4918: the server cannot store what the request needs; the condition is the node's
and passes, unlike 413's, which is about the request alone and would fail again
however long the client waited), a Retry-After when a lease's grace will end, and
JSON naming the setting and the numbers. It is refused before its body is read
when Content-Length says it cannot fit, or else as soon as a block would cross the
quota; either way nothing of it is kept (the store rolls back the blocks it
wrote) and nothing stored before is touched. A GET that fetches a blob from peers
keeps it only while it is sent (neither pinned nor leased: the next GC collects it).

What this module owns: the mapping of the store's errors to statuses (once, in
`_answer`), and the threads of the synchronous BlobStore. Every store call runs
on this module's threads (BLOB_THREADS), never on the event loop; an upload's
body is read by the event loop in pieces that the store's thread waits for
(blob_upload.py), so a body is never held whole in memory, and the RPC server's
client_max_size (a bound for `request.read()`) does not apply to it.

Where the exchange plugs in (the NodeView's `exchange`, blobs/exchange/): an
upload asking for `replicas` > 1 has the exchange bring the blob to that many
nodes in all (503, naming the holders, if fewer can); a GET of a blob that is not
wholly here fetches what is missing from the connected peers first, as an IPFS
gateway does (404 if no peer has it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import hdrs, web

from cloudchain.blobs.cid import CID
from cloudchain.blobs.errors import CIDError
from cloudchain.blobs.exchange import FetchError, NoProvidersError, ReplicationError
from cloudchain.blobs.importer import CID_V1_OPTIONS, DEFAULT_OPTIONS, ImportOptions
from cloudchain.blobs.store import (
    BlockNotFoundError,
    CorruptBlockError,
    InputSizeError,
    PinLimitError,
    QuotaExceededError,
    RangeNotSatisfiableError,
)
from cloudchain.logfields import fields
from cloudchain.node.rpc.blob_upload import (
    UploadInterruptedError,
    UploadReader,
    UploadTooLargeError,
)
from cloudchain.node.rpc.view import BlobExchanger, BlobStoreAccess, NodeView

log = logging.getLogger(__name__)

T = TypeVar("T")

# Threads for store calls. An upload holds one for its whole transfer; UPLOADS_MAX
# of them at once leaves the rest to downloads, stats and pins.
BLOB_THREADS = 16
UPLOADS_MAX = 8
# Replicas a put may ask for: more than any network we run has nodes.
REPLICAS_MAX = 64
CID_VERSIONS: dict[str, ImportOptions] = {"0": DEFAULT_OPTIONS, "1": CID_V1_OPTIONS}
BLOB_HEADERS = {
    hdrs.ACCEPT_RANGES: "bytes",
    hdrs.CONTENT_TYPE: "application/octet-stream",
    hdrs.CACHE_CONTROL: "public, max-age=31536000, immutable",  # content-addressed
    # A stranger's bytes: never run as a script or a page under this origin, whatever
    # they look like (the web UI's pages are served from the same port, ui_http.py).
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
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


# -- the service ---------------------------------------------------------------------


class BlobHTTP:
    """The routes over the node's blob store (the NodeView's `blobs`), and the threads
    every call of that store runs on (`run`), the JSON-RPC methods' too (admin.py)."""

    def __init__(self, node: NodeView) -> None:
        self._node = node
        self._executor = concurrent.futures.ThreadPoolExecutor(
            BLOB_THREADS, thread_name_prefix="blob-rpc"
        )
        self._uploads = asyncio.Semaphore(UPLOADS_MAX)
        self._readers: set[UploadReader] = set()
        self.uploads_in_flight = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/blobs", self._post_blob)
        app.router.add_get("/blobs/{cid}", self._get_blob)  # and HEAD (allow_head)

    async def stop(self) -> None:
        """Cut the uploads still reading and wait for every store call to end."""
        for reader in self._readers:
            reader.cancelled.set()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    @property
    def max_upload_bytes(self) -> int:
        return self._node.config.blobs.max_upload_bytes

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `function` on one of the store's threads."""
        future = self._executor.submit(function, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def store(self) -> BlobStoreAccess:
        """The node's blob store; BlobHTTPError (503) while it is not open."""
        store = self._node.blobs
        if store is None:
            raise BlobHTTPError(503, "the blob store is not open (the node is not running)")
        return store

    def _exchange(self) -> BlobExchanger:
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
        store = self.store()
        options = _query_options(request.query)
        replicas = _query_replicas(request.query)
        expected = request.content_length  # None for a chunked body
        limit_bytes = self.max_upload_bytes
        if expected is not None and expected > limit_bytes:
            raise UploadTooLargeError(
                f"the body ({expected} bytes) is larger than {limit_bytes} bytes"
            )
        reader = UploadReader(request.content, asyncio.get_running_loop(), limit_bytes)
        async with self._uploads:
            self._readers.add(reader)
            self.uploads_in_flight += 1
            adding = asyncio.wrap_future(
                self._executor.submit(
                    store.add, reader, options, pin=False, lease=True, expected_size=expected
                )
            )
            try:
                added = await asyncio.shield(adding)
            except QuotaExceededError as exc:
                raise self._quota_refusal(exc, reader.bytes_read) from None
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

    def _quota_refusal(self, exc: QuotaExceededError, received_bytes: int) -> BlobHTTPError:
        """The 507 for an upload the store's quota refused (see the module docstring)."""
        blobs = self._node.config.blobs
        others = exc.unanchored_bytes - exc.session_bytes  # what stays once it is rolled back
        upload = exc.session_bytes + exc.needed_bytes
        if exc.too_many_leases:
            why = f"the node holds {exc.leases} unanchored blobs, the most it keeps"
        else:
            why = (
                f"the node's other unanchored blobs hold {others} bytes, and with this "
                f"upload's {upload} bytes so far they would exceed [blobs] "
                f"max_unanchored_bytes = {exc.max_unanchored_bytes}"
            )
        message = (
            f"upload refused after {received_bytes} bytes of its body: {why}. Nothing of it "
            "is kept. A blob stops counting once it is anchored on chain or pinned; one "
            f"unanchored for [blobs] unanchored_grace_s = {blobs.unanchored_grace_s} s may "
            "be collected to make room"
        )
        headers = {}
        if exc.retry_after_s is not None:
            headers[hdrs.RETRY_AFTER] = str(exc.retry_after_s)
        return BlobHTTPError(
            507,
            message,
            headers,
            max_unanchored_bytes=exc.max_unanchored_bytes,
            unanchored_bytes=others,
            upload_bytes=upload,
            received_bytes=received_bytes,
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        store = self.store()
        cid = parse_cid(request.match_info["cid"])
        with store.hold(cid):  # GC keeps what a fetch brings until it is sent
            return await self._send_blob(request, store, cid)

    async def _send_blob(
        self, request: web.Request, store: BlobStoreAccess, cid: CID
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
        pieces = await self.run(store.read, cid, start, end)
        # The first piece before the status line: an error there is still a clean answer.
        piece = await self.run(next, pieces, None)
        await response.prepare(request)
        try:
            while piece is not None:
                await response.write(piece)
                piece = await self.run(next, pieces, None)
        except (BlockNotFoundError, CorruptBlockError) as exc:
            # Headers are sent: the only way to say so is to cut the connection short.
            log.error("blob download cut", extra=fields(cid=str(cid), error=str(exc)))
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _whole_size(self, store: BlobStoreAccess, cid: CID, *, fetch: bool = True) -> int:
        """The blob's size, once every block of it is here: what is missing is
        fetched from the connected peers first (unless not `fetch`: a 404)."""
        try:
            stat = await self.run(store.stat, cid)
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
        return (await self.run(store.stat, cid)).size


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
