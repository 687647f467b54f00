"""An upload's body as the blocking reader the blob store takes, fed by the event loop.

`BlobStore.add` reads its input on a store thread, as a file; aiohttp gives the
body on the event loop, in pieces. `UploadReader` bridges the two: the loop
reads the body READ_AHEAD_BYTES at a time, one piece ahead of the store, and the
thread waits for each piece (at most BODY_PIECE_TIMEOUT_S), so the network and
the disk work at once and a body is never held whole in memory. A body cut
short is an UploadInterruptedError, one past the limit an UploadTooLargeError;
blob_http.py maps both to HTTP statuses.

What this module does not know: HTTP, CIDs, or the store's own errors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

# The body is read from the socket in pieces of this size, one piece ahead of the store.
READ_AHEAD_BYTES = 1024 * 1024
# The longest an upload's store thread waits for the next piece of the body: a client
# that stops sending frees its thread after this.
BODY_PIECE_TIMEOUT_S = 60.0


class UploadInterruptedError(Exception):
    """The body stopped before its end: the connection was lost or went silent."""


class UploadTooLargeError(Exception):
    """The body went past max_upload_bytes."""


class UploadReader:
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
