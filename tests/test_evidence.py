"""Evidence of a double vote: its encoding, the rules that let a block commit it, the
slash of an equivocating validator's provider stake, the node's pool, and a network
that detects, gossips and commits it."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from cloudchain import codec
from cloudchain.chaincode.evidence import committed_at
from cloudchain.chaincode.market import state
from cloudchain.client.errors import RPCClientError
from cloudchain.client.jsonrpc import Client
from cloudchain.consensus.events import MessageReceived
from cloudchain.consensus.messages import Vote, VoteType
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.genesis import Genesis, GenesisError
from cloudchain.ledger import (
    Block,
    BlockHeader,
    DuplicateVoteEvidence,
    EvidenceVote,
    MalformedError,
    vote_sign_bytes,
)
from cloudchain.node.evidence_pool import MAX_FOUND, EvidencePool, EvidenceRefused
from cloudchain.node.rpc.shapes import block_json
from cloudchain.node.solo import build_block, sign_commit
from tests.helpers.chain import CHAIN_ID, VALIDATOR, key
from tests.helpers.market import BALANCE, MarketChain, market_genesis, offer
from tests.helpers.network import network, start_node, wait_on_commits
from tests.helpers.rpc import call

STAKE = 10_000
OTHER = key("not-a-validator")


def signed_vote(
    signer: PrivateKey,
    height: int,
    block_hash: bytes,
    *,
    round_: int = 0,
    vote_type: str = "prevote",
    chain_id: str = CHAIN_ID,
    timestamp_ns: int = 5,
) -> EvidenceVote:
    sign_bytes = vote_sign_bytes(chain_id, vote_type, height, round_, block_hash, timestamp_ns)
    return EvidenceVote(
        vote_type,
        height,
        round_,
        block_hash,
        timestamp_ns,
        bytes.fromhex(signer.address),
        signer.sign(sign_bytes),
    )


def double_vote(
    m: MarketChain, height: int, signer: PrivateKey = VALIDATOR, **changes: object
) -> DuplicateVoteEvidence:
    """`signer` voted for nil and for a block at `height`, dated by m's block there."""
    block = m.app.store.block(height)
    assert block is not None
    fields = {
        "total_voting_power": 10,
        "validator_power": 10,
        "timestamp_ns": block.header.time_ns,
    }
    chain_id = str(changes.pop("chain_id", CHAIN_ID))
    fields.update(changes)
    return DuplicateVoteEvidence.of(
        signed_vote(signer, height, b"", chain_id=chain_id),
        signed_vote(signer, height, hashlib.sha256(b"x").digest(), chain_id=chain_id),
        **fields,  # type: ignore[arg-type]
    )


def _chain(genesis: Genesis | None = None, *, provider: bool = True) -> MarketChain:
    """A market chain whose one validator holds funds and, if `provider`, a stake."""
    genesis = genesis or market_genesis(epoch_reward=0)
    balances = tuple(sorted((*genesis.balances, (VALIDATOR.address, BALANCE))))
    m = MarketChain(dataclasses.replace(genesis, balances=balances))
    if provider:
        m.ok(VALIDATOR, "register", name="v0", tier="community", offers=offer(), stake=STAKE)
    m.tick(2)
    return m


def _commit_evidence(m: MarketChain, *evidence: DuplicateVoteEvidence) -> tuple:
    produced = m.chain.produce_block([], evidence)
    return produced.result.block_events


def _next_block(m: MarketChain, *evidence: DuplicateVoteEvidence) -> Block:
    """The block m's validator would propose next, carrying `evidence` as given."""
    last = m.app.store.last_block
    commit = sign_commit(CHAIN_ID, last, VALIDATOR, last.header.time_ns + 10**9)
    return build_block(m.app, [], VALIDATOR, commit, evidence=evidence)


def _supply(m: MarketChain) -> int:
    return m.query("/token/supply")["supply"]


# --- the encoding ----------------------------------------------------------------------


def test_evidence_round_trips_and_has_one_encoding_whichever_vote_came_first():
    a = signed_vote(VALIDATOR, 3, b"")
    b = signed_vote(VALIDATOR, 3, b"\x01" * 32)
    evidence = DuplicateVoteEvidence.of(b, a, 40, 10, 7)
    assert evidence == DuplicateVoteEvidence.of(a, b, 40, 10, 7)
    assert evidence.vote_a == a  # the smaller block hash first
    assert DuplicateVoteEvidence.from_bytes(evidence.to_bytes()) == evidence
    swapped = {**evidence.to_obj(), "vote_a": b.to_obj(), "vote_b": a.to_obj()}
    with pytest.raises(MalformedError, match="sort before"):
        DuplicateVoteEvidence.from_obj(swapped)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (signed_vote(VALIDATOR, 3, b""), "sort before"),  # the same vote twice
        (signed_vote(VALIDATOR, 4, b"\x01" * 32), "differ in validator, height"),
        (signed_vote(VALIDATOR, 3, b"\x01" * 32, round_=1), "differ in validator, height"),
        (signed_vote(VALIDATOR, 3, b"\x01" * 32, vote_type="precommit"), "differ in"),
        (signed_vote(OTHER, 3, b"\x01" * 32), "differ in validator"),
    ],
)
def test_two_votes_that_are_no_double_vote_are_malformed(second, message):
    with pytest.raises(MalformedError, match=message):
        DuplicateVoteEvidence(signed_vote(VALIDATOR, 3, b""), second, 40, 10, 7)


def test_a_validator_power_above_the_total_or_zero_is_malformed():
    a, b = signed_vote(VALIDATOR, 3, b""), signed_vote(VALIDATOR, 3, b"\x01" * 32)
    for total, power in ((10, 11), (10, 0), (0, 0)):
        with pytest.raises(MalformedError):
            DuplicateVoteEvidence(a, b, total, power, 7)


def test_a_block_carries_evidence_under_its_header_hash_and_without_it_encodes_as_before():
    m = _chain(provider=False)
    evidence = double_vote(m, 1)
    last = m.app.store.last_block
    plain = build_block(m.app, [], VALIDATOR, None, last.header.time_ns + 1)
    with_evidence = build_block(m.app, [], VALIDATOR, None, last.header.time_ns + 1, [evidence])
    assert "evidence" not in plain.header.to_obj()
    assert b"evidence" not in plain.to_bytes()  # blocks without evidence hash as before
    assert with_evidence.header.evidence_hash and with_evidence.hash != plain.hash
    decoded = Block.from_bytes(with_evidence.to_bytes())
    assert decoded == with_evidence and decoded.evidence == (evidence,)


def test_an_empty_evidence_hash_or_list_spelled_out_is_malformed():
    m = _chain(provider=False)
    block = m.app.store.last_block
    header = {**block.header.to_obj(), "evidence_hash": b""}
    with pytest.raises(MalformedError, match="evidence_hash: present but empty"):
        BlockHeader.from_obj(header)
    obj = {
        "header": block.header.to_obj(),
        "txs": [],
        "last_commit": block.last_commit.to_obj(),
        "evidence": [],
    }
    with pytest.raises(MalformedError, match="block.evidence: present but empty"):
        Block.from_bytes(codec.encode(obj))


# --- the rules ---------------------------------------------------------------------------


def test_committed_evidence_burns_the_validators_provider_stake_once():
    m = _chain()
    evidence = double_vote(m, 2)
    supply, stake = _supply(m), state.get_provider(m.app.state(), VALIDATOR.address).stake
    totals = state.get_totals(m.app.state()).stake
    events = _commit_evidence(m, evidence)
    slashed = STAKE * 500 // 10_000  # the default double_sign_slash_bps
    provider = state.get_provider(m.app.state(), VALIDATOR.address)
    assert provider.stake == stake - slashed
    assert _supply(m) == supply - slashed  # burnt: nobody gains from a report
    assert state.get_totals(m.app.state()).stake == totals - slashed
    kinds = {e.type: dict(e.attributes) for e in events}
    assert kinds["duplicate_vote"]["validator"] == VALIDATOR.address
    assert kinds["duplicate_vote"]["hash"] == evidence.hash.hex()
    assert kinds["market_double_sign_slash"]["amount"] == str(slashed)
    assert committed_at(m.app.state(), evidence) == m.height
    # Once: the same evidence again is refused, and a block carrying it is invalid.
    assert "already committed" in m.app.evidence_error(evidence)
    block = _next_block(m, evidence)
    assert "already committed" in m.app.process_proposal(block).reason


def test_a_validator_with_no_stake_is_recorded_and_nothing_is_burnt():
    m = _chain(provider=False)
    supply = _supply(m)
    events = _commit_evidence(m, double_vote(m, 1))
    assert [e.type for e in events] == ["duplicate_vote"]
    assert _supply(m) == supply


def test_the_slash_share_is_a_market_parameter():
    m = _chain(market_genesis(epoch_reward=0, double_sign_slash_bps=10_000))
    _commit_evidence(m, double_vote(m, 1))
    assert state.get_provider(m.app.state(), VALIDATOR.address).stake == 0
    with pytest.raises(ValueError, match="double_sign_slash_bps: at most 10000"):
        MarketChain(market_genesis(double_sign_slash_bps=10_001))


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda m: double_vote(m, 1, signer=OTHER), "not in the validator set"),
        (lambda m: double_vote(m, 1, validator_power=5), "validator power 5"),
        (lambda m: double_vote(m, 1, total_voting_power=40), "total voting power 40"),
        (lambda m: double_vote(m, 1, timestamp_ns=123), "not the time of block 1"),
        (lambda m: double_vote(m, 1, chain_id="another-chain"), "signature does not verify"),
        (lambda m: _with_signature(double_vote(m, 1), bytes(64)), "signature does not verify"),
    ],
)
def test_forged_or_misdated_evidence_is_refused_and_a_block_carrying_it_is_invalid(forge, reason):
    m = _chain()
    evidence = forge(m)
    assert reason in m.app.evidence_error(evidence)
    block = _next_block(m, evidence)
    verdict = m.app.process_proposal(block)
    assert not verdict.accept and reason in verdict.reason
    assert m.app.select_evidence([evidence], m.height + 1, 0) == ()


def _with_signature(evidence: DuplicateVoteEvidence, signature: bytes) -> DuplicateVoteEvidence:
    return dataclasses.replace(
        evidence, vote_b=dataclasses.replace(evidence.vote_b, signature=signature)
    )


def test_evidence_of_a_height_not_yet_committed_is_refused():
    m = _chain()
    future = dataclasses.replace(
        double_vote(m, 1),
        vote_a=signed_vote(VALIDATOR, m.height + 1, b""),
        vote_b=signed_vote(VALIDATOR, m.height + 1, b"\x02" * 32),
    )
    assert "in a block of height" in m.app.evidence_error(future)


def test_evidence_expires_once_both_its_age_in_blocks_and_in_time_are_past():
    genesis = dataclasses.replace(
        market_genesis(epoch_reward=0), evidence_max_age_blocks=2, evidence_max_age_ns=10**9
    )
    m = _chain(genesis, provider=False)  # height 2, one clock second a block
    evidence = double_vote(m, 1)
    assert m.app.evidence_error(evidence) == ""  # 2 blocks old at height 3
    m.tick()
    assert "expired" in m.app.evidence_error(evidence)
    block = _next_block(m, evidence)
    assert "expired" in m.app.process_proposal(block).reason
    # By blocks alone it is not expired: both ages must be past.
    assert not evidence.is_expired(10, evidence.timestamp_ns + 10**9, 2, 10**9)
    assert not evidence.is_expired(3, evidence.timestamp_ns + 10**10, 2, 10**9)
    assert evidence.is_expired(4, evidence.timestamp_ns + 10**9 + 1, 2, 10**9)


def test_the_genesis_names_the_evidence_ages_only_when_they_are_not_the_defaults():
    genesis = market_genesis()
    assert "evidence" not in genesis.to_obj()["consensus_params"]
    changed = dataclasses.replace(genesis, evidence_max_age_blocks=7, evidence_max_age_ns=9)
    section = changed.to_obj()["consensus_params"]["evidence"]
    assert section == {"max_age_num_blocks": 7, "max_age_duration": "9"}
    again = Genesis.from_json(changed.to_json())
    assert (again.evidence_max_age_blocks, again.evidence_max_age_ns) == (7, 9)
    assert again.hash == changed.hash != genesis.hash
    bad = changed.to_obj()
    bad["consensus_params"]["evidence"]["max_age_num_blocks"] = 0
    with pytest.raises(GenesisError, match="evidence.max_age_num_blocks: 0 is outside"):
        Genesis.from_obj(bad)


def test_the_block_rpc_lists_evidence_in_cometbfts_shape():
    m = _chain(provider=False)
    evidence = double_vote(m, 1)
    _commit_evidence(m, evidence)
    shown = block_json(m.app.store.last_block, m.app.genesis.validators)["block"]
    [listed] = shown["evidence"]["evidence"]
    assert listed["type"] == "tendermint/DuplicateVoteEvidence"
    value = listed["value"]
    assert value["vote_a"]["block_id"]["hash"] == ""  # the nil vote sorts first
    assert value["vote_b"]["validator_address"] == VALIDATOR.address.upper()
    assert value["vote_a"]["type"] == 1 and value["vote_a"]["height"] == "1"
    assert (value["TotalVotingPower"], value["ValidatorPower"]) == ("10", "10")
    assert (
        shown["header"]["evidence_hash"]
        == m.app.store.last_block.header.evidence_hash.hex().upper()
    )


# --- the pool ---------------------------------------------------------------------------


def _vote(signer: PrivateKey, height: int, block_hash: bytes) -> Vote:
    return Vote.create(signer, CHAIN_ID, VoteType.PREVOTE, height, 0, block_hash, 5)


def test_the_pool_dates_found_votes_once_their_height_is_committed_and_drops_committed_ones():
    m = _chain(provider=False)
    pool = EvidencePool({bytes.fromhex(VALIDATOR.address): 10})
    height = m.height + 1
    pool.found(_vote(VALIDATOR, height, b""), _vote(VALIDATOR, height, b"\x03" * 32))
    pool.found(_vote(OTHER, height, b""), _vote(OTHER, height, b"\x03" * 32))  # no validator
    assert pool.update(m.app.store.last_block, _time(m), m.app.evidence_error) == []
    m.tick()  # the votes' height is committed: now they can be dated
    [evidence] = pool.update(m.app.store.last_block, _time(m), m.app.evidence_error)
    assert evidence.timestamp_ns == m.app.store.block(height).header.time_ns
    assert m.app.evidence_error(evidence) == "" and pool.pending() == [evidence]
    assert not pool.add(evidence, "")  # known: not worth gossiping again
    _commit_evidence(m, evidence)
    assert pool.update(m.app.store.last_block, _time(m), m.app.evidence_error) == []
    assert pool.pending() == []


def test_the_pool_keeps_no_refused_evidence_and_is_bounded():
    m = _chain(provider=False)
    pool = EvidencePool({bytes.fromhex(VALIDATOR.address): 10})
    assert not pool.add(double_vote(m, 1), "forged")
    for _ in range(MAX_FOUND + 10):
        pool.found(_vote(VALIDATOR, 9, b""), _vote(VALIDATOR, 9, b"\x03" * 32))
    assert len(pool._found) == MAX_FOUND


def _time(m: MarketChain):
    def block_time(height: int) -> int | None:
        block = m.app.store.block(height)
        return None if block is None else block.header.time_ns

    return block_time


# --- a network ---------------------------------------------------------------------------


async def test_a_double_vote_seen_by_one_node_is_gossiped_committed_and_shown_by_every_node(
    tmp_path,
):
    """node3's key signs two prevotes at node0's height, and only node0 hears them: the
    evidence must reach a proposer through the evidence channel and be committed, the
    same on every node, and broadcast_evidence must then refuse it as committed."""
    async with network(tmp_path) as (_homes, nodes):
        await wait_on_commits(nodes, lambda: all(n.app.info().height >= 2 for n in nodes))
        signer = read_key_file(tmp_path / "net" / "node3" / "config" / "priv_validator_key.json")
        height = nodes[0].core.height
        for block_hash in (b"", b"\x07" * 32):
            vote = Vote.create(
                signer, nodes[0].chain_id, VoteType.PREVOTE, height, 0, block_hash, 9
            )
            nodes[0].handle(MessageReceived(vote))

        def committed_everywhere() -> bool:
            return all(_committed_evidence(n) for n in nodes)

        await wait_on_commits(nodes, committed_everywhere, what="the evidence committed")
        found = {e.hash for n in nodes for e in _committed_evidence(n)}
        assert len(found) == 1
        [evidence] = _committed_evidence(nodes[1])
        assert evidence.validator_address == bytes.fromhex(signer.address)
        assert evidence.height == height
        assert "already committed" in nodes[2].app.evidence_error(evidence)
        with pytest.raises(EvidenceRefused, match="already committed"):
            nodes[2].submit_evidence(evidence.to_bytes())
        # Through the RPC: what the node refuses, and what does not decode, is a -32602.
        client = Client(f"http://{nodes[1].config.rpc.listen_address}")
        with pytest.raises(RPCClientError, match="already committed") as refused:
            await client.broadcast_evidence(evidence.to_bytes())
        assert refused.value.code == -32602
        with pytest.raises(RPCClientError, match="does not decode") as garbage:
            await client.broadcast_evidence(b"\x81\xa1a\x01")
        assert garbage.value.code == -32602
        reply = await call(nodes[1], "broadcast_evidence", {"evidence": "not base64!"})
        assert reply["error"]["code"] == -32602


def _committed_evidence(node) -> list[DuplicateVoteEvidence]:
    found = []
    for height in range(1, node.store.height + 1):
        found.extend(node.store.block(height).evidence)
    return found


async def test_evidence_a_client_hands_in_is_committed_in_the_next_blocks(tmp_path):
    node = await start_node(tmp_path)
    try:
        await wait_on_commits([node], lambda: node.app.info().height >= 2)
        signer = read_key_file(tmp_path / "net" / "node0" / "config" / "priv_validator_key.json")
        block = node.store.block(1)
        evidence = DuplicateVoteEvidence.of(
            signed_vote(signer, 1, b"", chain_id=node.chain_id),
            signed_vote(signer, 1, b"\x05" * 32, chain_id=node.chain_id),
            node.app.genesis.total_power(),
            node.app.genesis.validators[0].power,
            block.header.time_ns,
        )
        client = Client(f"http://{node.config.rpc.listen_address}")
        assert await client.broadcast_evidence(evidence.to_bytes()) == evidence.hash.hex().upper()
        await wait_on_commits([node], lambda: _committed_evidence(node) == [evidence])
        assert "already committed" in node.app.evidence_error(evidence)
        assert len(node.evidence) == 0  # the pool let it go once committed
    finally:
        await node.stop()
