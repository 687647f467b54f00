"""Block sync's policy (cloudchain/node/sync.py) on its own: plain heights, peer ids and
times in integer nanoseconds, no node, no network, no clock. One test per rule, with
its edges."""

from cloudchain.node.gossip import LARGE_MESSAGE_BYTES
from cloudchain.node.sync import (
    LARGE_DECISION_GAP_NS,
    AnswerLog,
    AnswerSpacing,
    PeerSync,
    answer_spacing,
    is_behind,
    is_lagging,
)

MS = 1_000_000  # ns
AGAIN = 200 * MS  # the runtime asks again after its gossip interval


# --- reading a peer's message height ---------------------------------------------------------


def test_a_peer_is_lagging_only_below_our_consensus_height():
    assert is_lagging(4, core_height=5)
    assert not is_lagging(5, core_height=5)  # deciding the same height as we are
    assert not is_lagging(6, core_height=5)


def test_we_are_behind_when_a_peer_is_past_our_height_and_we_have_not_committed_it():
    assert is_behind(6, core_height=5, committed_height=4)
    assert is_behind(1_000, core_height=5, committed_height=4)
    # Committed already: only waiting out the commit timeout of the height we decided.
    assert not is_behind(6, core_height=5, committed_height=5)
    assert not is_behind(5, core_height=5, committed_height=4)  # the same height: no
    assert not is_behind(4, core_height=5, committed_height=4)


# --- claimed heights -------------------------------------------------------------------------


def test_a_claim_counts_only_when_it_is_higher_than_the_peer_claimed_before():
    sync = PeerSync(AGAIN)
    assert not sync.note_height("a", 0)  # nothing claimed is height 0
    assert sync.note_height("a", 3)
    assert not sync.note_height("a", 3)
    assert not sync.note_height("a", 2)  # an old message says nothing new
    assert sync.note_height("a", 4)
    assert sync.note_height("b", 1)  # per peer


def test_a_large_message_goes_only_to_peers_that_would_keep_its_height():
    sync = PeerSync(AGAIN)
    assert sync.may_hold("unknown", 10)  # claimed nothing yet: the benefit of the doubt
    sync.note_height("a", 9)
    sync.note_height("b", 8)
    sync.note_height("c", 12)
    assert sync.may_hold("a", 10)  # one height behind: it keeps the next height's
    assert not sync.may_hold("b", 10)  # two behind: it would drop it
    assert sync.may_hold("c", 10)


# --- proven heights and catching_up ----------------------------------------------------------


def test_a_signature_is_worth_checking_only_beyond_the_next_height_and_what_was_proven():
    sync = PeerSync(AGAIN)
    assert not sync.needs_proof("a", 5, core_height=5)
    assert not sync.needs_proof("a", 6, core_height=5)  # the next height: the core reads it
    assert sync.needs_proof("a", 7, core_height=5)
    sync.note_proven("a", 9)
    assert not sync.needs_proof("a", 9, core_height=5)  # once per peer and height
    assert not sync.needs_proof("a", 8, core_height=5)
    assert sync.needs_proof("a", 10, core_height=5)
    assert sync.needs_proof("b", 7, core_height=5)  # per peer


def test_catching_up_takes_a_proven_height_beyond_the_next_one():
    sync = PeerSync(AGAIN)
    assert not sync.is_catching_up(core_height=5)
    sync.note_height("a", 1_000)  # claimed, not proven: no
    assert not sync.is_catching_up(core_height=5)
    sync.note_proven("a", 6)  # one ahead: it decided only the height we are deciding
    assert not sync.is_catching_up(core_height=5)
    sync.note_proven("a", 7)
    assert sync.is_catching_up(core_height=5)
    assert not sync.is_catching_up(core_height=6)  # we moved up to it


def test_a_peer_gone_no_longer_counts():
    sync = PeerSync(AGAIN)
    sync.note_height("a", 20)
    sync.note_proven("a", 20)
    sync.note_height("b", 20)
    sync.forget_peer("a")
    assert not sync.is_catching_up(core_height=5)
    assert sync.needs_proof("a", 7, core_height=5)  # starts again from nothing
    assert sync.note_height("a", 3)  # a claim below the old one counts again
    assert sync.on_committed(5) == "b"
    sync.forget_peer("b")
    sync.forget_peer("never-connected")  # harmless
    assert sync.on_committed(5) is None


# --- asking ----------------------------------------------------------------------------------


def test_the_same_peer_is_asked_for_the_same_height_again_only_after_the_interval():
    sync = PeerSync(AGAIN)
    assert sync.may_ask("a", 5, now_ns=0)
    assert not sync.may_ask("a", 5, now_ns=AGAIN - 1)
    assert sync.may_ask("a", 6, now_ns=1)  # another height
    assert sync.may_ask("b", 5, now_ns=1)  # another peer
    assert sync.may_ask("a", 5, now_ns=AGAIN)  # the interval is over, to the nanosecond
    assert not sync.may_ask("a", 5, now_ns=AGAIN + 1)  # counted from the last ask


def test_a_refused_ask_does_not_restart_the_interval():
    sync = PeerSync(AGAIN)
    assert sync.may_ask("a", 5, now_ns=0)
    assert not sync.may_ask("a", 5, now_ns=150 * MS)
    assert sync.may_ask("a", 5, now_ns=AGAIN)


def test_a_commit_asks_the_first_peer_that_decided_the_next_height_right_away():
    sync = PeerSync(AGAIN)
    sync.note_height("c", 8)
    sync.note_height("b", 7)
    sync.note_height("a", 6)  # deciding height 6: it has not decided it
    assert sync.on_committed(5) == "b"  # the lowest id of those claiming above 6
    sync.note_height("a", 9)
    assert sync.on_committed(5) == "a"
    assert sync.on_committed(8) is None  # nobody decided 9 (a is deciding it)


def test_a_commit_forgets_what_was_asked_only_when_it_asks_again():
    sync = PeerSync(AGAIN)
    sync.note_height("a", 6)
    assert sync.may_ask("a", 5, now_ns=0)
    assert sync.on_committed(5) is None  # nobody ahead: what was asked stands
    assert not sync.may_ask("a", 5, now_ns=1)
    sync.note_height("a", 7)
    assert sync.on_committed(5) == "a"
    assert sync.may_ask("a", 5, now_ns=2)  # forgotten: the ask goes out at once


# --- answering -------------------------------------------------------------------------------


def test_a_small_decision_goes_to_a_lagging_peer_asked_or_not():
    for asked in (False, True):
        spacing = answer_spacing(100, asked=asked, resend_after_ns=AGAIN)
        assert spacing == AnswerSpacing(every_ns=AGAIN, gap_ns=0)
    at_the_bound = answer_spacing(LARGE_MESSAGE_BYTES, asked=False, resend_after_ns=AGAIN)
    assert at_the_bound == AnswerSpacing(AGAIN, 0)  # "large" is above the bound


def test_a_large_decision_goes_only_to_a_peer_that_asked_and_no_faster_than_the_gap():
    size = LARGE_MESSAGE_BYTES + 1
    assert answer_spacing(size, asked=False, resend_after_ns=10_000 * MS) is None
    spacing = answer_spacing(size, asked=True, resend_after_ns=10_000 * MS)
    assert spacing == AnswerSpacing(every_ns=10_000 * MS, gap_ns=LARGE_DECISION_GAP_NS)


def test_the_same_height_goes_to_the_same_peer_again_only_after_every_ns():
    log = AnswerLog()
    assert log.may_answer("p", 5, now_ns=0, every_ns=AGAIN)
    log.note_answered("p", 5, now_ns=0)
    assert not log.may_answer("p", 5, now_ns=AGAIN - 1, every_ns=AGAIN)
    assert log.may_answer("p", 5, now_ns=AGAIN, every_ns=AGAIN)
    assert log.may_answer("p", 6, now_ns=1, every_ns=AGAIN)  # another height, no gap: yes
    assert log.may_answer("q", 5, now_ns=1, every_ns=AGAIN)  # per peer


def test_any_decision_waits_out_the_gap_after_the_last_one_sent():
    log = AnswerLog()
    gap = LARGE_DECISION_GAP_NS
    log.note_answered("p", 5, now_ns=0)
    assert not log.may_answer("p", 6, now_ns=gap - 1, every_ns=AGAIN, gap_ns=gap)
    assert log.may_answer("p", 6, now_ns=gap, every_ns=AGAIN, gap_ns=gap)
    log.note_answered("p", 6, now_ns=gap)  # the last one is what counts
    assert not log.may_answer("p", 5, now_ns=gap + 1, every_ns=0, gap_ns=gap)
    assert log.may_answer("q", 6, now_ns=1, every_ns=AGAIN, gap_ns=gap)  # per peer
