"""The wantlist of one fetch on its own: no store, no loop, time passed in.

Each test drives the state machine with the inputs a fetch would feed it and
checks the messages it decides to send, so the rules the fetch relies on
(round-robin, the in-flight and storing bounds, dont-have, timeouts, one fault
per peer, when a block has no provider left) are pinned without a network.
"""

from cloudchain.blobs.cid import CID, RAW
from cloudchain.blobs.exchange.messages import Cancel, WantBlock, WantHave
from cloudchain.blobs.exchange.wantlist import IN_FLIGHT_PER_PEER, STORES_IN_FLIGHT, Wantlist

TIMEOUT_S = 10.0
ROOT = CID.for_data(b"root", RAW, 1)


def cid(i: int) -> CID:
    return CID.for_data(i.to_bytes(4, "big"), RAW, 1)


def wantlist(peers: list[str], providers: list[str], blocks: int) -> Wantlist:
    """A wantlist past its want-have: `providers` said have, the others dont-have."""
    wants = Wantlist(ROOT, peers, TIMEOUT_S)
    wants.add([(cid(i), 1) for i in range(blocks)])
    wants.start(0.0)
    for peer in peers:
        if peer in providers:
            wants.on_have(peer, [ROOT])
        else:
            wants.on_dont_have(peer, [ROOT])
    wants.take_messages()
    return wants


def asked(messages, kind=WantBlock) -> dict[str, list[CID]]:
    out: dict[str, list[CID]] = {}
    for peer, message in messages:
        if isinstance(message, kind):
            out.setdefault(peer, []).extend(message.cids)
    return out


def test_start_asks_every_peer_for_the_root_and_nothing_else():
    wants = Wantlist(ROOT, ["a", "b"], TIMEOUT_S)
    wants.add([(ROOT, 0)])
    wants.start(5.0)
    assert wants.take_messages() == [("a", WantHave((ROOT,))), ("b", WantHave((ROOT,)))]
    assert wants.next_deadline() == 5.0 + TIMEOUT_S
    wants.schedule(5.0)  # no provider yet: nothing to ask of anyone
    assert wants.take_messages() == []


def test_blocks_go_round_robin_and_no_provider_exceeds_its_in_flight_bound():
    wants = wantlist(["a", "b"], ["a", "b"], 3 * IN_FLIGHT_PER_PEER)
    wants.schedule(0.0)
    by_peer = asked(wants.take_messages())
    assert by_peer["a"] == [cid(i) for i in range(0, 2 * IN_FLIGHT_PER_PEER, 2)]
    assert by_peer["b"] == [cid(i) for i in range(1, 2 * IN_FLIGHT_PER_PEER, 2)]
    assert list(wants.todo) == [
        cid(i) for i in range(2 * IN_FLIGHT_PER_PEER, 3 * IN_FLIGHT_PER_PEER)
    ]
    wants.schedule(1.0)  # still full: nothing more
    assert wants.take_messages() == []


def test_a_provider_that_answers_later_gets_the_blocks_a_full_one_cannot_take():
    wants = Wantlist(ROOT, ["a", "b"], TIMEOUT_S)
    wants.add([(cid(i), 1) for i in range(3 * IN_FLIGHT_PER_PEER)])
    wants.start(0.0)
    wants.on_have("a", [ROOT])
    wants.schedule(0.0)
    first = asked(wants.take_messages())
    assert first == {"a": [cid(i) for i in range(IN_FLIGHT_PER_PEER)]}
    wants.on_have("b", [ROOT])
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {
        "b": [cid(i) for i in range(IN_FLIGHT_PER_PEER, 2 * IN_FLIGHT_PER_PEER)]
    }


def test_no_more_is_asked_while_the_disk_is_behind():
    assert STORES_IN_FLIGHT == IN_FLIGHT_PER_PEER == 16  # the numbers below
    wants = wantlist(["a"], ["a"], STORES_IN_FLIGHT + 2 * IN_FLIGHT_PER_PEER)
    received = 0
    while received < STORES_IN_FLIGHT:  # receive everything asked, store nothing
        wants.schedule(0.0)
        for _, message in wants.take_messages():
            for block in message.cids:
                if received < STORES_IN_FLIGHT:
                    assert wants.on_block("a", block)
                    received += 1
    wants.schedule(0.0)
    assert wants.take_messages() == []
    wants.on_stored(cid(0))  # one written: below the bound, the provider's room opens
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"a": [cid(i) for i in range(16, 32)]}


def test_dont_have_moves_the_block_to_another_provider():
    wants = wantlist(["a", "b"], ["a", "b"], 1)
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"a": [cid(0)]}
    wants.on_dont_have("a", [cid(0)])
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"b": [cid(0)]}
    assert wants.unservable() is None


def test_a_block_every_provider_refused_is_unservable():
    wants = wantlist(["a", "b"], ["a", "b"], 2)
    wants.schedule(0.0)
    wants.take_messages()
    assert wants.unservable() is None
    wants.on_dont_have("a", [cid(0)])
    wants.schedule(0.0)
    wants.on_dont_have("b", [cid(0)])
    assert wants.unservable() == cid(0)


def test_the_root_is_unservable_only_once_every_want_have_is_answered_or_late():
    wants = Wantlist(ROOT, ["a", "b"], TIMEOUT_S)
    wants.add([(ROOT, 0)])
    wants.start(0.0)
    wants.on_dont_have("a", [ROOT])
    assert wants.unservable() is None  # b may still say have
    assert wants.expire(TIMEOUT_S - 1) == []
    assert wants.unservable() is None
    wants.expire(TIMEOUT_S)
    assert wants.unservable() == ROOT
    assert wants.next_deadline() is None


def test_a_peer_never_asked_that_disconnects_does_not_end_the_wait_for_one_that_was():
    wants = Wantlist(ROOT, ["a", "b"], TIMEOUT_S)
    wants.add([(ROOT, 0)])
    wants.start(0.0)
    wants.on_dont_have("a", [ROOT])
    wants.on_disconnected("stranger")  # connected after the fetch began: never asked
    assert wants.unservable() is None  # b may still say have
    wants.on_have("b", [ROOT])
    assert wants.providers == ["b"]
    wants.on_disconnected("b")  # an asked provider gone: now nobody is left
    assert wants.unservable() == ROOT


def test_a_late_provider_is_dropped_and_its_blocks_asked_of_another():
    wants = wantlist(["a", "b"], ["a", "b"], 2)
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"a": [cid(0)], "b": [cid(1)]}
    wants.on_block("b", cid(1))
    assert wants.next_deadline() == TIMEOUT_S
    assert wants.expire(TIMEOUT_S) == ["a"]
    assert wants.take_messages() == [("a", Cancel((cid(0),)))]
    wants.schedule(TIMEOUT_S)
    assert asked(wants.take_messages()) == {"b": [cid(0)]}
    assert wants.providers == ["b"]


def test_a_block_from_another_peer_is_cancelled_where_it_was_asked():
    wants = wantlist(["a", "b"], ["a", "b"], 1)
    wants.schedule(0.0)
    wants.take_messages()
    assert wants.on_block("b", cid(0))
    assert wants.take_messages() == [("a", Cancel((cid(0),)))]
    assert not wants.on_block("a", cid(0))  # the duplicate is not stored twice
    wants.on_stored(cid(0))
    assert wants.done


def test_a_bad_block_is_one_fault_per_peer_and_is_asked_again_elsewhere():
    wants = wantlist(["a", "b"], ["a", "b"], 4)
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"a": [cid(0), cid(2)], "b": [cid(1), cid(3)]}
    assert wants.on_block("a", cid(0))
    assert wants.on_bad_block("a", cid(0))  # news: a is dropped, its other want cancelled
    assert wants.take_messages() == [("a", Cancel((cid(2),)))]
    assert wants.on_block("a", cid(2))  # it was in flight and still arrives, also bad
    assert not wants.on_bad_block("a", cid(2))
    wants.schedule(0.0)
    assert asked(wants.take_messages()) == {"b": [cid(2), cid(0)]}
    assert wants.providers == ["b"]


def test_a_peer_that_says_have_after_being_dropped_is_not_a_provider_again():
    wants = Wantlist(ROOT, ["a"], TIMEOUT_S)
    wants.add([(ROOT, 0)])
    wants.start(0.0)
    wants.on_disconnected("a")
    wants.on_have("a", [ROOT])
    assert wants.providers == []
    assert wants.unservable() == ROOT
