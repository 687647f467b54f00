"""The typed market stores the same bytes as the dict-based market it replaced.

A fixed scenario (deterministic keys, clock and signatures) sends every market
method, refusals among them, and reaches every end-of-block path: assignment (with
a queue cursor moving past tasks nobody can take), expiry of an open task, a
cancel, settlement without and with a penalty beyond the payment, a dispute
overturned for the provider, one overturned for the requester, one upheld when its
vote closes, a refund unverified, unbonding finished, epoch rewards and reference
prices stepping up and down, and, last, tasks expiring while assigned and running.
After every block it takes three fingerprints: the app hash (of the state but the fee
schedule, see FREE), a digest of what the
block's transactions and end-of-block work returned (codes, logs, events), and a
digest of the answers to every /market/ query.

The expected values (EXPECTED) were computed by running this scenario on the code
before the market's records were typed, at commit 214a7c3. A change to them is a
change to stored bytes (or to results or query answers): every node would compute
another app hash from the same blocks.

One change is deliberate (lifecycle.slash): a provider's stake slashed when its task
expires is now booked, as it always was at settlement, as a negative price paid by
the requester it goes to (`market/stats/requester/<address>` field `paid`), so that
U_r counts the compensation whichever path it came by. The app hashes therefore
match the old code's exactly up to the first block in which an expired task slashed
a stake (FIRST_SLASH_AT_EXPIRY), and from then on match once that one field is
booked as the old code booked it (`_as_booked_before`): nothing else differs.

A second one adds to the answers only: /market/provider and /market/providers name each
provider's advertised `endpoint` (market.advertise, which the scenario never sends, so
it is "" throughout and no stored byte changes); the answers are compared without it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

from cloudchain import codec
from cloudchain.chaincode.auth import GENESIS_HASH_KEY
from cloudchain.chaincode.fees import PARAMS_KEY as FEE_SCHEDULE_KEY
from cloudchain.ledger import Transaction, TxResult
from cloudchain.storage import apphash
from tests.helpers.chain import key
from tests.helpers.market import (
    AUTHORITY,
    EVERYONE,
    ORACLES,
    PROVIDERS,
    REQUESTERS,
    MarketChain,
    market_genesis,
    offer,
    task_args,
)

P0, P1, P2 = PROVIDERS
R0, R1, R2 = REQUESTERS
O0, O1, O2 = ORACLES
O3 = key("oracle3")  # admitted by the authority in the scenario, removed again
T4 = "t4-16gb"
CID = "Qm" + "b" * 44
TASKS_QUERIED = 16  # one more than the scenario submits: an unknown task too
REQUESTER_STATS = b"market/stats/requester/"
# The code before had no fees: with a zero schedule nothing is charged and no fee event
# is written, so only the transactions' bytes (their `fee: 0`) differ from then.
FREE = {"base": 0, "per_byte": 0, "surcharges": {}}
GENESIS_PARAMS = dict(max_open_tasks_scanned=4, reference_prices={T4: 3, "h100": 50})
OLD_GENESIS_HASH = codec.encode(market_genesis(**GENESIS_PARAMS).hash)


def _digest(value: Any) -> str:
    return hashlib.sha256(codec.encode(value)).hexdigest()[:16]


class RecordedChain(MarketChain):
    """A market chain that fingerprints every block it produces."""

    def __init__(self) -> None:
        super().__init__(market_genesis(fees=FREE, **GENESIS_PARAMS))
        self.prints: list[tuple[str, str, str]] = []
        self.undone_prints: list[tuple[str, str]] = []
        self.seen: Counter[tuple[str, ...]] = Counter()
        # the stake slashed at expiry so far, by requester (see _as_booked_before)
        self.slashed_at_expiry: dict[str, int] = defaultdict(int)
        self.first_slash_at_expiry = 0

    def block(self, *txs: Transaction) -> tuple[TxResult, ...]:
        before = len(self.block_events)
        results = super().block(*txs)
        block_events = self.block_events[before:]
        for result in results:
            self.seen["code", str(result.code)] += 1
            for e in result.events:
                self._saw(e.type, dict(e.attributes))
        for e in block_events:
            self._saw(e.type, dict(e.attributes))
        outcome = _digest([[r.to_obj() for r in results], [e.to_obj() for e in block_events]])
        answers = self._answers()
        state = list(self.app.state().iterate())
        self.prints.append((_app_hash(state), outcome, _digest(answers)))
        self.undone_prints.append(
            (self._app_hash_as_booked_before(), _digest(self._answers_as_booked_before(answers)))
        )
        return results

    def _saw(self, type_: str, attrs: dict[str, str]) -> None:
        self.seen["event", type_] += 1
        if type_ == "market_refund":
            self.seen["refund", attrs["reason"]] += 1
            slashed = int(attrs.get("slashed", 0))
            if attrs["reason"] == "expired" and slashed:
                self.slashed_at_expiry[attrs["requester"]] += slashed
                self.first_slash_at_expiry = self.first_slash_at_expiry or self.height
        if type_ == "market_resolved":
            self.seen["resolved", attrs["upheld"]] += 1
        if type_ == "market_settle":
            self.seen["settle slashed", str(int(attrs["slashed"]) > 0)] += 1

    def _queries(self) -> list[tuple[str, str]]:
        everyone = [k.address for k in (*EVERYONE, O3)]
        return [
            ("/market/params", ""),
            *[("/market/provider", k.address) for k in (*PROVIDERS, R0)],
            ("/market/providers", ""),
            ("/market/providers", f"after={P0.address}"),
            ("/market/oracles", ""),
            *[("/market/task", str(i)) for i in range(1, TASKS_QUERIED + 1)],
            ("/market/task", "one"),
            ("/market/tasks", ""),
            ("/market/tasks", f"requester={R0.address}"),
            ("/market/tasks", f"provider={P0.address}&state=settled"),
            ("/market/tasks", "state=open"),
            ("/market/tasks", "after=5"),
            ("/market/tasks", "state=lost"),
            ("/market/prices", ""),
            *[("/market/account", address) for address in everyone],
            ("/market/stats", ""),
        ]

    def _answers(self) -> list[list[Any]]:
        answers = []
        for path, data in self._queries():
            answer = self.app.query(path, data.encode())
            value = answer.value
            if path in ("/market/provider", "/market/providers") and answer.code == 0:
                value = codec.encode(_without_endpoints(codec.thaw(codec.decode(value))))
            answers.append([path, data, int(answer.code), answer.log, value])
        return answers

    def _app_hash_as_booked_before(self) -> str:
        """The app hash of the state with the requester's `paid` booked as before."""
        items = []
        for state_key, value in self.app.state().iterate():
            if state_key.startswith(REQUESTER_STATS):
                address = state_key[len(REQUESTER_STATS) :].decode()
                value = codec.encode(_as_booked_before(codec.decode(value), self, address))
            items.append((state_key, value))
        return _app_hash(items)

    def _answers_as_booked_before(self, answers: list[list[Any]]) -> list[list[Any]]:
        undone = []
        for path, data, code, log, value in answers:
            if path == "/market/account" and code == 0:
                account = codec.thaw(codec.decode(value))
                requester = _as_booked_before(account["requester"], self, data)
                moved = requester.get("paid", 0) - account["requester"].get("paid", 0)
                account.update(requester=requester, utility=account["utility"] - moved)
                value = codec.encode(account)
            undone.append([path, data, code, log, value])
        return undone


def _app_hash(items: list[tuple[bytes, bytes]]) -> str:
    """The app hash of `items` as the code before the fees would have stored them: without
    the fee schedule (FEE_SCHEDULE_KEY), the one key the fees added to state (at
    genesis), and with the hash of the genesis without its `fees` parameters (FREE)."""
    kept = [(k, v) for k, v in items if k != FEE_SCHEDULE_KEY]
    assert len(kept) == len(items) - 1, "the schedule is in state"
    kept = [(k, OLD_GENESIS_HASH if k == GENESIS_HASH_KEY else v) for k, v in kept]
    return apphash.digest(apphash.from_items(kept)).hex()[:16]


def _without_endpoints(answer: dict[str, Any]) -> dict[str, Any]:
    """A provider answer as the code before market.advertise gave it: no `endpoint`."""
    if "providers" in answer:
        return {"providers": [_without_endpoints(p) for p in answer["providers"]]}
    assert answer.pop("endpoint") == ""
    return answer


def _as_booked_before(stats: Any, chain: RecordedChain, address: str) -> dict[str, Any]:
    """A requester's statistics as the code before lifecycle.slash booked them: the stake
    slashed at expiry was not counted in `paid` (a requester that has one had settled a
    task before in this scenario, so its `paid` was there already)."""
    stats = dict(stats)
    slashed = chain.slashed_at_expiry.get(address, 0)
    if slashed:
        assert "paid" in stats, address
        stats["paid"] += slashed
    return stats


def run_scenario() -> RecordedChain:
    m = RecordedChain()
    gpu_and_t4 = {
        **offer(units=20, price=12),
        T4: {"gpu": "T4", "gpus": 1, "memory_gb": 16, "units": 10, "price": 2},
    }
    m.block(
        m.tx(P0, "register", name="p0", tier="enterprise", offers=offer(100, 10), stake=5_000),
        m.tx(P1, "register", name="p1", tier="community", offers=gpu_and_t4, stake=3_000),
        m.tx(P1, "register", name="again", tier="community", offers=offer(), stake=3_000),
        m.tx(P2, "register", name="p2", tier="community", offers=offer(50, 15), stake=2_000),
        m.tx(R0, "register", name="poor", tier="community", offers=offer(), stake=10),
    )
    nobody = task_args(resource_class="nobody", units=1, max_price=1, penalty=0, deadline_s=600)
    m.block(
        m.tx(R0, "submit", **task_args()),  # 1: P0, settled without a violation
        m.tx(R1, "submit", **task_args(penalty=100)),  # 2: P0, settled, stake slashed
        m.tx(R2, "submit", **task_args(penalty=20, provider=P1.address)),  # 3: disputed
        m.tx(R0, "submit", **task_args(max_price=5, deadline_s=3)),  # 4: expires open
        m.tx(R1, "submit", **task_args(max_price=5, deadline_s=600)),  # 5: cancelled
        m.tx(R2, "submit", **task_args(resource_class=T4, max_price=5, penalty=0)),  # 6
        *[m.tx(R0, "submit", **nobody) for _ in range(3)],  # 7-9: nobody offers the class
        m.tx(R0, "submit", **task_args(max_price=10**6)),  # refused: insufficient funds
    )
    assert [m.task(i)["state"] for i in range(1, 10)] == [
        *["assigned"] * 3,
        "open",
        "open",
        "assigned",
        *["open"] * 3,
    ]
    m.block(
        m.tx(P0, "start", task=1),
        m.tx(R1, "cancel", task=5),
        m.tx(R0, "cancel", task=1),  # refused: assigned
        m.tx(O0, "attest", task=1, completed=True, units=1, uptime_bps=1, latency_ms=1),
    )
    m.block(
        m.tx(P0, "complete", task=1, units_used=8, output=[CID]),
        m.tx(P0, "complete", task=2, units_used=10, output=[]),
        m.tx(P1, "complete", task=3, units_used=10, output=[CID, CID]),
        m.tx(P2, "complete", task=3, units_used=10, output=[]),  # refused: not its task
    )
    good = dict(completed=True, uptime_bps=9_900, latency_ms=100)
    m.block(  # height 5: an epoch ends
        *[m.tx(o, "attest", task=1, units=8, **good) for o in (O0, O1)],
        *[
            m.tx(o, "attest", task=2, completed=True, units=10, uptime_bps=5_000, latency_ms=900)
            for o in (O0, O1)
        ],
        *[
            m.tx(o, "attest", task=3, completed=True, units=9, uptime_bps=5_000, latency_ms=10)
            for o in (O0, O1)
        ],
    )
    m.block(
        m.tx(O2, "attest", task=1, units=7, **good),  # late: scored, moves nothing
        m.tx(P1, "dispute", task=3, reason="the uptime probe was wrong"),
        m.tx(R0, "dispute", task=3, reason="not mine"),  # refused: not a party
    )
    m.block(  # height 7: tasks 1 and 2 settle
        m.tx(O0, "vote", task=3, uphold=False),
        m.tx(O1, "vote", task=3, uphold=False),
        m.tx(O1, "vote", task=3, uphold=True),  # refused: voted
        m.tx(O0, "attest_provider", provider=P2.address, uptime_bps=9_000, latency_ms=40),
    )
    m.block(
        m.tx(AUTHORITY, "add_oracle", oracle=O3.address),
        m.tx(P1, "update", offers={**gpu_and_t4, **offer(units=30, price=12)}),
        m.tx(P1, "update", offers=offer(units=30)),  # refused: t4 units in flight
        m.tx(P0, "add_stake", amount=500),
        m.tx(R0, "submit", **task_args()),  # 10: overturned for the requester
        m.tx(R1, "submit", **task_args()),  # 11: disputed, upheld when the vote closes
        m.tx(R2, "submit", **task_args()),  # 12: refunded unverified
    )
    m.block(*[m.tx(P0, "complete", task=t, units_used=10, output=[]) for t in (10, 11, 12)])
    m.block(  # height 10: an epoch ends, rewards are minted
        *[m.tx(o, "attest", task=10, units=10, **good) for o in (O1, O3, O2)],
        *[m.tx(o, "attest", task=11, units=10, **good) for o in (O0, O1, O3)],
        m.tx(O0, "attest", task=12, units=10, **good),
    )
    m.block(
        m.tx(R0, "dispute", task=10, reason="nothing came back"),
        m.tx(R1, "dispute", task=11, reason="too slow"),
    )
    m.block(*[m.tx(o, "vote", task=10, uphold=False) for o in (O0, O1, O2)])
    m.block(
        m.tx(AUTHORITY, "remove_oracle", oracle=O3.address),
        m.tx(P2, "leave"),
        m.tx(P2, "leave"),  # refused: leaving already
        m.tx(O3, "attest", task=11, units=10, **good),  # refused: disputed
    )
    m.block(m.tx(P1, "complete", task=6, units_used=10, output=[CID]))
    m.block(*[m.tx(o, "attest", task=6, units=10, **good) for o in (O0, O1)])
    m.tick(6)  # height 21: task 12 refunded at 19, P2 left at 16, task 11 upheld at 21
    assert [m.task(i)["state"] for i in range(1, 13)] == [
        "settled",
        "settled",
        "resolved",
        "refunded",
        "refunded",
        "settled",
        *["open"] * 3,
        "resolved",
        "resolved",
        "refunded",
    ]
    # Last, the one path whose booking changed: tasks expire assigned and running.
    m.block(
        m.tx(R0, "submit", **task_args(deadline_s=3)),  # 13: expires running
        m.tx(R1, "submit", **task_args(deadline_s=3, penalty=7)),  # 14: expires assigned
        m.tx(R1, "submit", **task_args(deadline_s=30)),  # 15: still assigned at the end
    )
    m.block(m.tx(P0, "start", task=13))
    m.tick(4)
    assert [m.task(i)["state"] for i in (13, 14, 15)] == ["refunded", "refunded", "assigned"]
    return m


EVERY_PATH = {
    ("event", name)
    for name in (
        "market_register",
        "market_update",
        "market_stake",
        "market_leave",
        "market_left",
        "market_oracle",
        "market_submit",
        "market_assign",
        "market_start",
        "market_complete",
        "market_attest",
        "market_verified",
        "market_sla",
        "market_dispute",
        "market_vote",
        "market_resolved",
        "market_settle",
        "market_refund",
        "market_epoch",
        "market_reward",
    )
} | {
    ("refund", "cancelled"),
    ("refund", "expired"),
    ("refund", "unverified"),
    ("resolved", "true"),
    ("resolved", "false"),
    ("settle slashed", "True"),
    ("settle slashed", "False"),
}


# Computed by run_scenario on the code before the typed records, at commit 214a7c3:
# per block, the app hash, the digest of its results and events, the digest of every
# query's answer (16 hex digits of each). A change here is a change to stored bytes.
EXPECTED = (
    "25bed936c640d112 2533453d520b7ff8 111695f9fb509327",  # 1
    "5818179ba6b24c13 fa481bea8f5cd5aa a5bbc0cbcbba9b29",  # 2
    "433d72f0d6e3e640 747be758de91ba7c 4ca44b94e8b9ddc0",  # 3
    "32d8d68916856625 01a775278cfbaf87 cec3ca9bdcb2e89f",  # 4
    "9facfcb09f7fa51e 6f66b29c11b89136 ac8bf700b088a7b6",  # 5
    "679e21df6f18b7a6 3d9b6b36279f8ff8 b2ac90bca35bbf8d",  # 6
    "2fdc03b1dadd595e 63ae7669b6e7c867 52a25a8809a87932",  # 7
    "c4f6bab218d27829 1ab7769afc85ca3b ee3d67b06fc1dc8a",  # 8
    "20900665c829d2ac 4d8b2d1d10495be8 c58b5f39f26c6a84",  # 9
    "2021795ab14e48e8 2d760387f694e5a2 33267b40c1e5e1eb",  # 10
    "e6c46fae6c2e7bd5 550e7be7bf7ff6fe 5ba9c7bf87405263",  # 11
    "864f7e2662a11dd7 74f52461786e3147 b40e9c216f76b1c7",  # 12
    "cb2d11a45a22d7cd 6e752207f33ca0c8 a8c1506da3059243",  # 13
    "605f494d09fe9e4c 9b307229e52a7067 269037c856e4e63f",  # 14
    "9c43d52dfe4d4883 a8256ea544f244c4 c8f94dcfc82ed488",  # 15
    "6ed081808f2a5b41 0ccaeb0e76bad9d0 74ac8cbb2ebdf63c",  # 16
    "a23d0ffc3ee90d72 d1e573c6716ea4f8 f7fe60518c7d48d0",  # 17
    "808ce4c229ebe376 40b1511928b407ed f7fe60518c7d48d0",  # 18
    "e0b5401dcbcd732c d7b52391b06607ee f312fbac5636b56c",  # 19
    "632cc9568926611f 708f9a10a351c284 7d649a8b5e36b8df",  # 20
    "606da39a89ee103d dbe597eaaead0d8e 6e80c5215f639460",  # 21
    "8d26524bd7d87f1c f0d8c08591d4a5f7 81dc9febc762add2",  # 22
    "d52b14e95d024bf2 834e5cef04aee1a9 b9358a2e1dc690c8",  # 23
    "a7f8d1b49930e96b 40b1511928b407ed b9358a2e1dc690c8",  # 24
    "ba0fe02aa19205a4 0ec302b49d0e6982 85a021f4bbc8c1b4",  # 25
    "6d98d8abe3b66401 40b1511928b407ed 85a021f4bbc8c1b4",  # 26
    "cee27699d2ca9809 40b1511928b407ed 85a021f4bbc8c1b4",  # 27
)
FIRST_SLASH_AT_EXPIRY = 25  # the block in which tasks 13 and 14 expired, slashing P0


def test_every_block_stores_and_answers_what_the_code_before_stored_and_answered():
    m = run_scenario()
    assert set(m.seen) >= EVERY_PATH, EVERY_PATH - set(m.seen)
    assert m.first_slash_at_expiry == FIRST_SLASH_AT_EXPIRY
    assert len(m.prints) == len(EXPECTED) > FIRST_SLASH_AT_EXPIRY
    for height, (now, undone, expected) in enumerate(
        zip(m.prints, m.undone_prints, EXPECTED, strict=True), 1
    ):
        app_hash, outcome, answers = expected.split()
        # Every code, log and event, in order, is what it was.
        assert now[1] == outcome, f"block {height}: results or events differ"
        # Every stored byte and every query answer too, but for the requester's `paid`.
        assert undone == (app_hash, answers), f"block {height}: state or answers differ"
        if height < FIRST_SLASH_AT_EXPIRY:
            assert now == (app_hash, outcome, answers), height
        else:  # the deliberate change: the stake slashed at expiry lowers `paid`
            assert now[0] != app_hash and now[2] != answers, height


def test_a_stake_slashed_at_expiry_is_booked_as_the_requester_paid_less():
    m = run_scenario()
    r0 = m.query("/market/account", R0.address)["requester"]
    assert m.slashed_at_expiry[R0.address] == 2 * 50  # task 13: R = 2, λ = 50
    before = _as_booked_before(r0, m, R0.address)
    assert r0["paid"] == before["paid"] - 100 and r0["refunded"] == before["refunded"]
