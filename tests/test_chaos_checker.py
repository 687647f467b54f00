"""The chaos checker on synthetic histories: a clean one passes, and each planted
violation (lost write, fork, double apply, phantom write, stale read, a read or a
balance the chain does not give, no progress, a node not observed) is reported."""

from dataclasses import replace

import pytest

from cloudchain.chaos.checker import (
    BalanceNotConserved,
    ByzantineWindow,
    DoubleApply,
    Fork,
    HonestDoubleSign,
    LostWrite,
    NoProgress,
    PhantomWrite,
    ReadMismatch,
    StaleRead,
    UncaughtEquivocation,
    Unobserved,
    check,
)
from cloudchain.chaos.history import History, Outcome, Read, Transfer, load_history, save_history
from cloudchain.chaos.observe import CommittedTx, EvidenceSeen, HeaderView, NodeView, Recovery

A, B = "a" * 40, "b" * 40
GENESIS = {A: 1_000, B: 1_000}
FEE = 3
S = 1_000_000_000  # ns


def transfer(op_id, sender, recipient, amount, nonce, height, outcome=Outcome.OK, **kw):
    return Transfer(
        op_id=op_id,
        node=0,
        sender=sender,
        recipient=recipient,
        amount=amount,
        nonce=nonce,
        fee=FEE,
        tx_hash=f"{op_id:064x}",
        invoke_ns=op_id * S,
        complete_ns=op_id * S + S // 2,
        outcome=outcome,
        height=height if outcome is Outcome.OK else 0,
        **kw,
    )


def committed(t: Transfer, height: int | None = None, code: int = 0) -> CommittedTx:
    return CommittedTx(
        tx_hash=t.tx_hash,
        height=t.height if height is None else height,
        index=0,
        code=code,
        sender=t.sender,
        nonce=t.nonce,
        fee=t.fee,
        module="token",
        method="transfer",
        recipient=t.recipient,
        amount=t.amount,
    )


T1 = transfer(1, A, B, 10, 0, 2)  # A 987, B 1010 after height 2
T2 = transfer(2, B, A, 5, 0, 3)  # A 992, B 1002 after height 3
R1 = Read(10, 0, 10 * S, 11 * S, Outcome.OK, 2, ((A, 987), (B, 1010)))
R2 = Read(12, 0, 12 * S, 13 * S, Outcome.OK, 3, ((A, 992), (B, 1002)))
HISTORY = History((T1, T2, R1, R2))


def headers(fork_at: int | None = None) -> tuple[HeaderView, ...]:
    out = []
    for h in range(1, 5):
        forked = fork_at is not None and h >= fork_at
        block = f"{'f' if forked else 'c'}{h:063x}"
        out.append(HeaderView(h, block, f"{h - 1:064x}", 1 if h in (2, 3) else 0))
    return tuple(out)


def view(node: int, **changes) -> NodeView:
    base = NodeView(
        node=node,
        latest_height=4,
        headers=headers(),
        txs=(committed(T1), committed(T2)),
        state_height=3,
        state_app_hash=f"{3:064x}",  # what header 4 names
        balances=((A, 992), (B, 1002)),
        supply=1_994,
    )
    return replace(base, **changes)


VIEWS = [view(0), view(1)]


def run(history=HISTORY, views=VIEWS, **kw):
    return check(history, views, GENESIS, **kw)


def test_a_clean_history_passes():
    result = run()
    assert result.ok, [v.describe() for v in result.violations]
    assert result.state_height == 3 and result.fees_paid == 2 * FEE
    assert result.committed_txs == 2


def test_a_committed_transfer_with_a_failing_code_is_ok_and_moves_only_its_fee():
    t1 = replace(T1, code=5)
    txs = (committed(t1, code=5), committed(T2))
    balances = ((A, 1_000 - FEE + 5), (B, 1_000 - 5 - FEE))
    views = [view(n, txs=txs, balances=balances) for n in (0, 1)]
    result = run(History((t1, T2)), views)
    assert result.ok, [v.describe() for v in result.violations]


def test_a_lost_write_is_reported():
    lost = transfer(3, A, B, 7, 1, 3)  # acknowledged at 3, in no block
    result = run(History((*HISTORY.ops, lost)))
    assert [type(v) for v in result.violations] == [LostWrite]
    (violation,) = result.violations
    assert violation.op_id == 3 and violation.nodes == (0, 1) and "absent" in violation.found


def test_a_write_acknowledged_beyond_every_chain_is_lost():
    ahead = transfer(3, A, B, 7, 1, 9)
    (violation,) = run(History((*HISTORY.ops, ahead))).violations
    assert isinstance(violation, LostWrite) and "ends below" in violation.found


def test_a_fork_is_reported_at_its_first_height():
    forked = view(1, headers=headers(fork_at=3))
    result = run(views=[view(0), forked])
    forks = [v for v in result.violations if isinstance(v, Fork)]
    assert len(forks) == 1 and forks[0].height == 3 and forks[0].what == "block hash"


def test_a_different_app_hash_is_a_fork():
    result = run(views=[view(0), view(1, state_app_hash="9" * 64)])
    (violation,) = result.violations
    assert isinstance(violation, Fork) and violation.what == "app hash"
    assert violation.height == 3


def test_a_double_apply_is_reported():
    again = replace(committed(T1), height=3, index=1)
    txs = (committed(T1), committed(T2), again)
    result = run(views=[view(0, txs=txs), view(1)])
    doubles = [v for v in result.violations if isinstance(v, DoubleApply)]
    assert doubles and doubles[0].node == 0 and doubles[0].heights == (2, 3)
    assert doubles[0].op_ids == (1,)
    assert any(isinstance(v, BalanceNotConserved) for v in result.violations)


def test_two_transactions_with_one_nonce_are_a_double_apply():
    twin = replace(committed(T2), tx_hash="e" * 64, sender=A, nonce=0)
    result = run(views=[view(0, txs=(committed(T1), twin)), view(1)])
    assert any(
        isinstance(v, DoubleApply) and v.what == f"nonce 0 of {A}" for v in result.violations
    )


def test_a_phantom_write_is_reported():
    refused = transfer(2, B, A, 5, 0, 0, outcome=Outcome.FAILED, code=10)
    result = run(History((T1, refused, R1)))
    phantoms = [v for v in result.violations if isinstance(v, PhantomWrite)]
    assert [(p.op_id, p.node, p.height) for p in phantoms] == [(2, 0, 3), (2, 1, 3)]


def test_an_unknown_transfer_may_or_may_not_commit():
    unknown = replace(T2, outcome=Outcome.UNKNOWN, height=0)
    assert run(History((T1, unknown, R1, R2))).ok
    lost = [view(n, txs=(committed(T1),), balances=((A, 987), (B, 1010))) for n in (0, 1)]
    assert run(History((T1, unknown, R1)), lost).ok


def test_a_balance_the_chain_does_not_give_is_not_conserved():
    result = run(views=[view(0), view(1, balances=((A, 992), (B, 1003)))])
    kinds = sorted(type(v).__name__ for v in result.violations)
    assert kinds == ["BalanceNotConserved", "BalanceNotConserved"]
    assert {v.node for v in result.violations} == {1}
    assert any("1003" in v.describe() for v in result.violations)


def test_a_replay_that_goes_negative_is_not_conserved():
    big = transfer(1, A, B, 2_000, 0, 2)
    views = [view(n, txs=(committed(big),), balances=((A, -1_003), (B, 3_000))) for n in (0, 1)]
    result = run(History((big,)), views)
    assert any(isinstance(v, BalanceNotConserved) and "< 0" in v.detail for v in result.violations)


def test_a_stale_read_is_reported():
    stale = Read(14, 0, 14 * S, 15 * S, Outcome.OK, 2, ((A, 987), (B, 1010)))
    (violation,) = run(History((*HISTORY.ops, stale))).violations
    assert isinstance(violation, StaleRead)
    assert (violation.op_id, violation.height) == (14, 2)
    assert (violation.earlier_op_id, violation.earlier_height) == (12, 3)


def test_concurrent_reads_may_be_answered_in_either_order():
    overlapping = Read(14, 0, 12 * S + 1, 15 * S, Outcome.OK, 2, ((A, 987), (B, 1010)))
    assert run(History((*HISTORY.ops, overlapping))).ok
    elsewhere = replace(overlapping, node=1, invoke_ns=14 * S)
    assert run(History((*HISTORY.ops, elsewhere))).ok


def test_a_read_the_chain_does_not_give_is_reported():
    wrong = Read(14, 1, 14 * S, 15 * S, Outcome.OK, 3, ((A, 992), (B, 1_010)))
    (violation,) = run(History((*HISTORY.ops, wrong))).violations
    assert isinstance(violation, ReadMismatch) and violation.node == 1
    assert "1010" in violation.detail


def test_no_progress_after_the_heal_is_reported():
    heal = 100 * S
    on_time = [Recovery(0, 4, heal + S, 5), Recovery(1, 4, heal + 2 * S, 5)]
    assert run(heal_ns=heal, progress_bound_ns=5 * S, recoveries=on_time).ok
    late = [Recovery(0, 4, heal + S, 5), Recovery(1, 4, heal + 9 * S, 5)]
    (violation,) = run(heal_ns=heal, progress_bound_ns=5 * S, recoveries=late).violations
    assert isinstance(violation, NoProgress) and violation.node == 1
    never = [Recovery(0, 4, None, error="cannot reach"), Recovery(1, 4, heal + S, 5)]
    (violation,) = run(heal_ns=heal, progress_bound_ns=5 * S, recoveries=never).violations
    assert isinstance(violation, NoProgress) and violation.node == 0
    assert "cannot reach" in violation.detail


def test_evidence_is_expected_inside_a_byzantine_window_and_a_violation_outside_it():
    v = "c" * 40
    window = ByzantineWindow(v, first_height=2, last_height=6)
    caught = [view(n, evidence=(EvidenceSeen(4, v, 3),)) for n in (0, 1)]
    assert run(views=caught, byzantine=[window]).ok
    # A double vote at a height the nemesis did not cause: an honest node signed twice.
    honest = [view(n, evidence=(EvidenceSeen(4, v, 3), EvidenceSeen(5, A, 4))) for n in (0, 1)]
    (violation,) = run(views=honest, byzantine=[window]).violations
    assert isinstance(violation, HonestDoubleSign) and violation.validator == A
    late = [view(n, evidence=(EvidenceSeen(9, v, 8),)) for n in (0, 1)]
    kinds = {type(x) for x in run(views=late, byzantine=[window]).violations}
    assert kinds == {HonestDoubleSign, UncaughtEquivocation}
    # A window too short to be sure a prevote went out is not required to be caught.
    assert run(byzantine=[ByzantineWindow(v, 2, 3)]).ok


def test_a_node_that_did_not_answer_is_reported():
    result = run(views=[view(0), NodeView(1, error="cannot reach")])
    assert [type(v) for v in result.violations] == [Unobserved]


def test_a_history_round_trips_through_json_lines(tmp_path):
    unknown = replace(T2, op_id=3, outcome=Outcome.UNKNOWN, height=0, detail="timed out")
    failed = Read(13, 1, 13 * S, 14 * S, Outcome.UNKNOWN, detail="connection refused")
    history = History((*HISTORY.ops, unknown, failed))
    path = tmp_path / "history.jsonl"
    save_history(history, path)
    assert load_history(path) == history
    assert len(path.read_text().splitlines()) == len(history.ops)


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "write", "op_id": 1}',
        '{"type": "read", "op_id": 1}',
        '{"type": "read", "op_id": 1, "node": 0, "invoke_ns": 2, "complete_ns": 1,'
        ' "outcome": "ok"}',
    ],
)
def test_a_bad_history_line_is_refused(line):
    with pytest.raises(ValueError, match="history line"):
        History.from_jsonl(line)


def test_the_report_lists_faults_operations_violations_and_recovery():
    import json

    from cloudchain.chaos.report import Fault, build_report, render_table, to_json

    heal = 100 * S
    lost = transfer(3, A, B, 7, 1, 3)
    history = History((*HISTORY.ops, lost))
    recoveries = [Recovery(0, 4, heal + S, 5), Recovery(1, 4, None)]
    result = run(history, heal_ns=heal, progress_bound_ns=5 * S, recoveries=recoveries)
    faults = [Fault("kill", (1,), 20 * S, 30 * S), Fault("partition", (0, 1), 40 * S, 0, "halves")]
    report = build_report(7, 2, faults, history, result, recoveries, heal, start_ns=0)
    assert not report.ok
    text = render_table(report)
    assert "kill" in text and "halves" in text and "lost_write" in text and "no_progress" in text
    assert "FAILED" in text
    obj = json.loads(json.dumps(to_json(report)))
    assert obj["operations"] == [
        {"kind": "read", "outcome": "ok", "count": 2},
        {"kind": "transfer", "outcome": "ok", "count": 3},
    ]
    assert obj["recovery_s"] == {"node0": 1.0, "node1": None}
    assert obj["violation_counts"] == {"lost_write": 1, "no_progress": 1}
    assert obj["faults"][1]["end_s"] is None
