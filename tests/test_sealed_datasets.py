"""Sealed datasets (cloudchain/privacy/sealed.py): the round trip at every size that
matters, and every kind of tampering refused loudly."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudchain.privacy.sealed import (
    HEADER,
    MIN_CHUNK,
    TAG_BYTES,
    SealError,
    new_data_key,
    open_file,
    open_stream,
    seal_file,
    seal_stream,
)

CHUNK = MIN_CHUNK
KEY = new_data_key()


def seal(data: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, key, CHUNK)
    return out.getvalue()


def unseal(sealed: bytes, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    open_stream(io.BytesIO(sealed), out, key)
    return out.getvalue()


def chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    header, body = sealed[: HEADER.size], sealed[HEADER.size :]
    size = CHUNK + TAG_BYTES
    return header, [body[i : i + size] for i in range(0, len(body), size)] or [b""]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_every_size_comes_back_and_only_ciphertext_is_stored(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data)
    assert unseal(sealed) == data
    full, rest = divmod(size, CHUNK)
    expected_chunks = full + (1 if rest or not full else 0)
    assert len(sealed) == HEADER.size + size + TAG_BYTES * expected_chunks
    if size >= 16:
        assert data[:16] not in sealed


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=4 * CHUNK))
def test_the_round_trip_holds_for_any_bytes(data: bytes) -> None:
    assert unseal(seal(data)) == data


def test_two_seals_of_one_file_differ_and_a_wrong_key_is_refused() -> None:
    data = b"patients.csv\n" * 200
    assert seal(data) != seal(data)  # a fresh salt and nonce prefix each time
    with pytest.raises(SealError, match="chunk 0 does not authenticate"):
        unseal(seal(data), new_data_key())


DATA = os.urandom(3 * CHUNK + 100)


def test_a_flipped_bit_anywhere_is_refused() -> None:
    sealed = seal(DATA)
    for position in (
        0,
        9,
        HEADER.size - 1,
        HEADER.size + 5,
        HEADER.size + CHUNK + 20,
        len(sealed) - 1,
    ):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(SealError):
            unseal(bytes(tampered))


CASES = {
    "reordered": lambda p: [p[1], p[0], *p[2:]],
    "dropped": lambda p: [p[0], *p[2:]],
    "duplicated": lambda p: [p[0], *p],
    "cut at a chunk's end": lambda p: p[:3],
    "cut inside a chunk": lambda p: [*p[:3], p[3][:10]],
    "appended to": lambda p: [*p, p[3]],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reordered_dropped_duplicated_or_cut_chunks_are_refused(case: str) -> None:
    header, parts = chunks(seal(DATA))
    assert len(parts) == 4
    with pytest.raises(SealError):
        unseal(header + b"".join(CASES[case](parts)))


def test_a_chunk_from_another_file_sealed_with_the_same_key_is_refused() -> None:
    header, parts = chunks(seal(DATA))
    _, other = chunks(seal(os.urandom(len(DATA))))
    with pytest.raises(SealError):
        unseal(header + b"".join([parts[0], other[1], *parts[2:]]))


def test_what_is_not_a_sealed_dataset_is_refused_by_name() -> None:
    with pytest.raises(SealError, match="shorter than its header"):
        unseal(b"plain")
    with pytest.raises(SealError, match="magic"):
        unseal(b"x" * 100)


def test_a_file_opens_only_whole(tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(DATA)
    sealed = tmp_path / "data.sealed"
    seal_file(source, sealed, KEY, CHUNK)
    assert open_file(sealed, tmp_path / "opened.csv", KEY) == len(DATA)
    assert (tmp_path / "opened.csv").read_bytes() == DATA
    sealed.write_bytes(sealed.read_bytes()[:-5])  # cut short: nothing appears
    with pytest.raises(SealError):
        open_file(sealed, tmp_path / "cut.csv", KEY)
    assert not (tmp_path / "cut.csv").exists() and not list(tmp_path.glob("*.partial"))
