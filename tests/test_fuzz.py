"""The fuzzing harness (fuzz/): a short pass of every target, proof that a crash is
reported, and a registry that covers every decoder with seeds that decode.

`make fuzz` runs a million inputs per target; here each runs FUZZ_TEST_RUNS in a
process of its own (atheris' libFuzzer exits the process when it is done), with a
scratch work corpus and crash directory so that nothing is left in the checkout.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fuzz import REGRESSION_DIR, ROOT, SEED_DIR
from fuzz.seeds import seeds
from fuzz.targets import load, load_all, names

FUZZ_TEST_RUNS = 5_000
SEED_BYTES_MAX = 64 * 1024
SEEDS_PER_TARGET_MAX = 20

# The decoders issue 19 asks fuzzers for: a target may be added, never dropped.
REQUIRED = {
    "codec",
    "transaction",
    "block",
    "block_header",
    "tx_result",
    "evidence",
    "consensus_message",
    "wal_record",
    "wal_file",
    "blob_message",
    "dagpb",
    "unixfs",
    "file_node",
    "cid_bytes",
    "cid_text",
    "multihash",
    "varint",
    "multibase",
    "rpc_request",
    "rpc_uri",
    "tx_query",
    "blob_range",
    "manifest",
    "result_index",
    "rfc3339",
}


def _fuzz(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    paths = [str(ROOT), *([str(pythonpath)] if pythonpath else [])]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )


@pytest.mark.parametrize("name", names())
def test_a_short_pass_of_each_target_finds_no_crash(name: str, tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    run = _fuzz(
        "run",
        name,
        "--runs",
        str(FUZZ_TEST_RUNS),
        "--corpus",
        str(tmp_path / "corpus"),
        "--crashes",
        str(crashes),
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert f"stat::number_of_executed_units: {FUZZ_TEST_RUNS}" in run.stderr
    assert not any(crashes.iterdir())


BROKEN = """
import atheris

from cloudchain import codec
from cloudchain.ledger import MalformedError, Transaction
from fuzz.targets import Target


def on_a_seed(data: bytes) -> object:
    tx = Transaction.from_bytes(data)
    if tx.nonce == 7:  # one of the transaction seeds
        raise KeyError("broken on purpose")
    return tx


@atheris.instrument_func  # its comparison guides libFuzzer, as cloudchain's do
def found_by_mutation(data: bytes) -> object:
    if data[:4] == b"\\xde\\xad\\xbe\\xef":  # in no seed: libFuzzer must get there
        raise IndexError("broken on purpose")
    return codec.decode(data)


TARGETS = {
    "broken_on_a_seed": Target("broken_on_a_seed", on_a_seed, (MalformedError,), "test"),
    "broken_by_mutation": Target(
        "broken_by_mutation", found_by_mutation, (codec.CodecError,), "test"
    ),
}
"""


@pytest.mark.parametrize(
    ("name", "seeds_of", "error"),
    [
        ("broken_on_a_seed", "transaction", "KeyError"),
        ("broken_by_mutation", "codec", "IndexError"),
    ],
)
def test_an_error_outside_the_allowed_ones_is_a_crash(
    name: str, seeds_of: str, error: str, tmp_path: Path
) -> None:
    """Not vacuous: a decoder that raises what it may not is reported, with its input."""
    (tmp_path / "broken_targets.py").write_text(textwrap.dedent(BROKEN))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in (SEED_DIR / seeds_of).iterdir():
        (corpus / seed.name).write_bytes(seed.read_bytes())
    crashes = tmp_path / "crashes"
    run = _fuzz(
        "run",
        name,
        "--runs",
        str(FUZZ_TEST_RUNS),
        "--corpus",
        str(corpus),
        "--crashes",
        str(crashes),
        "--target-module",
        "broken_targets",
        pythonpath=tmp_path,
    )
    assert run.returncode != 0
    assert f"{error}: " in run.stdout, run.stdout[-4000:]
    artifacts = list(crashes.iterdir())
    assert len(artifacts) == 1 and artifacts[0].name.startswith("crash-")
    replay = _fuzz(
        "replay", name, str(artifacts[0]), "--target-module", "broken_targets", pythonpath=tmp_path
    )
    assert replay.returncode != 0 and error in replay.stderr


def test_the_registry_covers_every_decoder_of_the_issue() -> None:
    assert set(names()) >= REQUIRED
    for name, target in load_all().items():
        assert target.name == name and target.doc
        assert target.allowed and all(issubclass(e, BaseException) for e in target.allowed)


def test_every_target_has_seeds_that_decode_or_are_refused_as_allowed() -> None:
    assert {d.name for d in SEED_DIR.iterdir()} == set(names()), "a seed dir per target"
    for name in names():
        target = load(name)
        files = sorted((SEED_DIR / name).iterdir())
        assert 1 <= len(files) <= SEEDS_PER_TARGET_MAX, name
        decoded = 0
        for path in files:
            data = path.read_bytes()
            assert len(data) < SEED_BYTES_MAX, path
            assert path.name == hashlib.sha1(data).hexdigest(), f"{path}: named by its hash"
            try:
                target.decode(data)
                decoded += 1
            except target.allowed:
                pass
        assert decoded, f"{name}: no seed decodes, so the fuzzer starts from nothing valid"


def test_the_checked_in_seeds_are_what_python_m_fuzz_seeds_writes() -> None:
    for name, inputs in seeds().items():
        on_disk = {p.read_bytes() for p in (SEED_DIR / name).iterdir()}
        assert on_disk == set(inputs), f"{name}: run `python -m fuzz seeds` and commit"


def test_the_wire_bound_of_the_consensus_target_is_the_nodes() -> None:
    from cloudchain.node.runtime import MAX_WIRE_BYTES
    from fuzz.targets import MAX_WIRE_BYTES as TARGET_MAX_WIRE_BYTES

    assert TARGET_MAX_WIRE_BYTES == MAX_WIRE_BYTES


def test_every_regression_directory_names_a_target() -> None:
    if REGRESSION_DIR.is_dir():
        assert {d.name for d in REGRESSION_DIR.iterdir()} <= set(names())
