"""The client's side of a node's blob endpoints (node/rpc/blob_http.py): files streamed up
to `POST /blobs` and down from `GET /blobs/{cid}`, never held whole in memory.

`Client.blob_put` and `Client.blob_get` call these; the JSON-RPC methods (blob_stat,
blob_pin, blob_unpin, blob_gc) go through `Client.call`, their results parsed by
`cloudchain.client.results`. Errors are the client's one RPCClientError: an HTTP
refusal has the HTTP status as its code and the node's message ("blob Qm... is not here
(404)"); a node that cannot be reached, a download cut short or a reply of the wrong
shape has code CLIENT_ERROR.
A download goes to DEST.part and is renamed to DEST only once it is whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from cloudchain.client.errors import CLIENT_ERROR, RPCClientError, malformed
from cloudchain.client.results import BlobPut

# progress(bytes_done, bytes_total or None when the total is not known)
Progress = Callable[[int, int | None], None]
Source = str | os.PathLike[str] | IO[bytes]

PIECE_BYTES = 1024 * 1024  # read from a file, or written to one, at a time
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0  # the longest silence while a transfer runs (a node hashing a GC, say)
PART_SUFFIX = ".part"


@dataclass(frozen=True)
class BlobGot:
    cid: str
    path: Path
    start: int  # the first byte written, of the blob
    bytes_written: int
    size: int | None  # the whole blob's size, when the node said it


def _session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S
    )
    return aiohttp.ClientSession(timeout=timeout)


async def _refusal(response: aiohttp.ClientResponse) -> RPCClientError:
    """The error for a response that is not a success: the node's {"error": ...}."""
    text = await response.read()
    try:
        message = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status} {response.reason}: {text[:60]!r}"
    return RPCClientError(response.status, str(message))


def _unreachable(url: str, exc: BaseException) -> RPCClientError:
    return RPCClientError(CLIENT_ERROR, f"cannot reach {url}", str(exc) or type(exc).__name__)


async def put_blob(
    base_url: str,
    source: Source,
    *,
    replicas: int = 1,
    cid_version: int = 0,
    progress: Progress | None = None,
) -> BlobPut:
    """Upload a file (a path, or a binary stream read to its end) to the node."""
    if replicas < 1 or cid_version not in (0, 1):
        raise ValueError("replicas must be >= 1 and cid_version 0 or 1")
    url = base_url + "blobs"
    with contextlib.ExitStack() as stack:
        if isinstance(source, str | os.PathLike):
            stream: IO[bytes] = stack.enter_context(open(source, "rb"))
        else:
            stream = source
        total = _remaining_bytes(stream)

        async def body() -> AsyncIterator[bytes]:
            done = 0
            while piece := await asyncio.to_thread(stream.read, PIECE_BYTES):
                done += len(piece)
                if progress is not None:
                    progress(done, total)
                yield piece

        headers = {"Content-Type": "application/octet-stream"}
        if total is not None:
            headers["Content-Length"] = str(total)  # the node refuses a body cut short
        params = {"replicas": str(replicas), "cid-version": str(cid_version)}
        try:
            async with (
                _session() as session,
                session.post(url, data=body(), headers=headers, params=params) as response,
            ):
                if response.status != 200:
                    raise await _refusal(response)
                result = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from None
    return BlobPut.from_json(result)


def _remaining_bytes(stream: IO[bytes]) -> int | None:
    """The bytes left in a regular file from its position; None for a pipe or socket."""
    try:
        size = os.fstat(stream.fileno()).st_size
        position = stream.tell()
    except (OSError, AttributeError, ValueError):
        return None
    return max(size - position, 0)


async def get_blob(
    base_url: str,
    cid: str,
    dest: str | os.PathLike[str],
    *,
    start: int | None = None,
    end: int | None = None,
    progress: Progress | None = None,
) -> BlobGot:
    """Download the blob's bytes [start, end) (default: all of them) to `dest`."""
    first = start or 0
    if first < 0 or (end is not None and end <= first):
        raise ValueError(f"invalid byte range start={start} end={end}")
    headers = {}
    if start is not None or end is not None:
        headers["Range"] = f"bytes={first}-{'' if end is None else end - 1}"
    url = f"{base_url}blobs/{cid}"
    path = Path(dest)
    part = path.with_name(path.name + PART_SUFFIX)
    try:
        written, size = await _download(url, cid, headers, part, progress)
        os.replace(part, path)
    except (aiohttp.ClientError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, aiohttp.ClientPayloadError):
            raise RPCClientError(CLIENT_ERROR, "the download was cut short", str(exc)) from None
        raise _unreachable(url, exc) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return BlobGot(cid, path, first, written, size)


async def _download(
    url: str, cid: str, headers: dict[str, str], part: Path, progress: Progress | None
) -> tuple[int, int | None]:
    async with _session() as session, session.get(url, headers=headers) as response:
        if response.status not in (200, 206):
            raise await _refusal(response)
        if response.headers.get("ETag") != f'"{cid}"':
            raise malformed(
                "GET /blobs ETag", f"expected the CID, got {response.headers.get('ETag')!r:.60}"
            )
        expected = response.content_length
        size = expected
        content_range = response.headers.get("Content-Range", "")
        if response.status == 206:
            size_text = content_range.rpartition("/")[2]
            size = int(size_text) if size_text.isdigit() else None
        written = 0
        with open(part, "wb") as out:
            buffer = bytearray()
            async for piece in response.content.iter_chunked(PIECE_BYTES):
                buffer += piece
                if len(buffer) >= PIECE_BYTES:
                    await asyncio.to_thread(out.write, bytes(buffer))
                    written += len(buffer)
                    buffer.clear()
                    if progress is not None:
                        progress(written, expected)
            await asyncio.to_thread(out.write, bytes(buffer))
            written += len(buffer)
            if progress is not None:
                progress(written, expected)
        if expected is not None and written != expected:
            raise RPCClientError(
                CLIENT_ERROR, "the download was cut short", f"{written} of {expected} bytes"
            )
        return written, size
