"""The bank workload: transfers among a fixed set of funded accounts through every node,
and reads of their balances, each operation recorded in a `History`.

    history = await run_bank_workload(rpc_urls, accounts, seed, stop)

One transfer worker per account (the account is its sender), one reader per node, all
concurrent, so that a dead or paused node stalls only the call that went to it (every
call has `call_timeout_s`). The choices (node, recipient, amount) come from a
`random.Random` seeded by `seed` and the worker's index: the same seed makes the same
requests, though faults make the answers differ.

Nonces are the hard part. A worker keeps its sender's next nonce itself, read from the
chain at the start (the highest any node answers). A transfer answered OK moves it on;
one FAILED (check_tx refused it: no mempool holds it) leaves it to be read again. An
UNKNOWN transfer is in doubt: it may still commit. The worker then signs nothing new
with that nonce; it asks the nodes for the sender's nonce until one is past it (the
transfer committed: only this worker signs for the sender) and meanwhile re-sends the
same bytes (`resend=True`: the same hash, so at most one copy can commit). A re-sent
transfer refused by check_tx is UNKNOWN too (the first copy may be in a mempool, or
just committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudchain.chaos.history import History, Op, Outcome, Read, Transfer, merge
from cloudchain.chaos.observe import read_balances
from cloudchain.client import Client, RPCClientError
from cloudchain.client.results import BroadcastCommitResult
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.fees import FeeSchedule, priced_transaction
from cloudchain.ledger import Transaction

Clock = Callable[[], int]  # monotonic nanoseconds

CALL_TIMEOUT_S = 8.0  # a broadcast_tx_commit: a few blocks, even under added latency
NONCE_TIMEOUT_S = 2.0  # asking every node a sender's nonce
MAX_AMOUNT = 1_000  # token units a transfer moves at most (accounts hold 10^9)
READ_INTERVAL_S = 0.2  # pacing of each node's reader
RETRY_PAUSE_S = 0.2  # pacing after a call that got no answer, so a dead node is not spun on


@dataclass(frozen=True)
class WorkloadSettings:
    call_timeout_s: float = CALL_TIMEOUT_S
    nonce_timeout_s: float = NONCE_TIMEOUT_S
    max_amount: int = MAX_AMOUNT
    read_interval_s: float = READ_INTERVAL_S
    retry_pause_s: float = RETRY_PAUSE_S


def load_accounts(paths: Sequence[Path | str | PrivateKey]) -> list[PrivateKey]:
    """Keys from testnet key files (DIR/accounts/account<k>.json), or keys as given."""
    return [p if isinstance(p, PrivateKey) else read_key_file(p) for p in paths]


async def run_bank_workload(
    rpc_urls: Sequence[str],
    accounts: Sequence[Path | str | PrivateKey],
    seed: int,
    stop: asyncio.Event,
    settings: WorkloadSettings = WorkloadSettings(),
    clock: Clock = time.monotonic_ns,
    on_op: Callable[[Op], None] | None = None,
) -> History:
    """Run until `stop` is set (then each worker finishes its call in flight); the
    history of every operation. Needs at least two accounts. `on_op` is told of each
    operation as it completes (a runner's progress, a test's condition)."""
    keys = load_accounts(accounts)
    assert len(keys) >= 2, "a transfer needs a recipient other than its sender"
    run = _Run([Client(u) for u in rpc_urls], settings, clock, stop, on_op)
    chain = await run.chain_params()
    if chain is None:
        return History()
    chain_id, schedule = chain
    addresses = [k.address for k in keys]
    workers = [
        _TransferWorker(run, key, addresses, chain_id, schedule, random.Random(f"{seed}/t{i}"))
        for i, key in enumerate(keys)
    ]
    readers = [_read_loop(run, node, sorted(addresses)) for node in range(len(rpc_urls))]
    await asyncio.gather(*(w.loop() for w in workers), *readers)
    return merge(run.ops)


class _Run:
    """What the workers share: the clients, the clock, the op ids and the ops."""

    def __init__(
        self,
        clients: list[Client],
        settings: WorkloadSettings,
        clock: Clock,
        stop: asyncio.Event,
        on_op: Callable[[Op], None] | None,
    ) -> None:
        self.clients, self.settings, self.clock, self.stop = clients, settings, clock, stop
        self.ops: list[Op] = []
        self._ids = itertools.count(1)
        self._on_op = on_op

    def record(self, op: Op) -> None:
        self.ops.append(op)
        if self._on_op is not None:
            self._on_op(op)

    def next_id(self) -> int:
        return next(self._ids)

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the run stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def chain_params(self) -> tuple[str, FeeSchedule] | None:
        """The chain id and fee schedule from the first node that answers."""
        while not self.stop.is_set():
            for client in self.clients:
                try:
                    status = await asyncio.wait_for(client.status(), self.settings.call_timeout_s)
                    schedule = await asyncio.wait_for(
                        client.fee_schedule(), self.settings.call_timeout_s
                    )
                    return status.network, schedule
                except (RPCClientError, TimeoutError):
                    continue
            await self.pause(self.settings.retry_pause_s)
        return None

    async def chain_nonce(self, address: str) -> int | None:
        """The highest nonce any node answers for `address` within the timeout."""

        async def ask(client: Client) -> int | None:
            try:
                return await asyncio.wait_for(client.nonce(address), self.settings.nonce_timeout_s)
            except (RPCClientError, TimeoutError):
                return None

        answers = await asyncio.gather(*(ask(c) for c in self.clients))
        return max((a for a in answers if a is not None), default=None)


class _TransferWorker:
    def __init__(
        self,
        run: _Run,
        key: PrivateKey,
        addresses: list[str],
        chain_id: str,
        schedule: FeeSchedule,
        rng: random.Random,
    ) -> None:
        self.run, self.key, self.chain_id, self.schedule, self.rng = (
            run,
            key,
            chain_id,
            schedule,
            rng,
        )
        self.recipients = [a for a in addresses if a != key.address]
        self.nonce: int | None = None  # the next one to sign with; None: ask the chain
        self.in_doubt: Transaction | None = None  # sent, answer UNKNOWN, not seen committed

    async def loop(self) -> None:
        run = self.run
        while not run.stop.is_set():
            node = self.rng.randrange(len(run.clients))
            if self.in_doubt is not None:
                chain_nonce = await run.chain_nonce(self.key.address)
                if chain_nonce is not None and chain_nonce > self.in_doubt.nonce:
                    self.in_doubt, self.nonce = None, chain_nonce  # it committed
                    continue
                await self.send(self.in_doubt, node, resend=True)
                continue
            if self.nonce is None:
                self.nonce = await run.chain_nonce(self.key.address)
                if self.nonce is None:
                    await run.pause(run.settings.retry_pause_s)
                    continue
            recipient = self.rng.choice(self.recipients)
            amount = self.rng.randint(1, run.settings.max_amount)
            tx = priced_transaction(
                self.key,
                self.chain_id,
                self.nonce,
                "token",
                "transfer",
                {"to": recipient, "amount": amount},
                self.schedule,
            )
            await self.send(tx, node, resend=False)

    async def send(self, tx: Transaction, node: int, *, resend: bool) -> None:
        run = self.run
        invoke_ns = run.clock()
        answer: BroadcastCommitResult | None = None
        detail = ""
        try:
            answer = await asyncio.wait_for(
                run.clients[node].broadcast_tx_commit(tx.to_bytes()), run.settings.call_timeout_s
            )
        except TimeoutError:
            detail = f"no answer within {run.settings.call_timeout_s} s"
        except RPCClientError as exc:
            detail = str(exc)[:200]
        complete_ns = run.clock()
        outcome, height, code = Outcome.UNKNOWN, 0, 0
        if answer is not None and answer.check_tx.ok:
            outcome, height, code = Outcome.OK, answer.height, answer.tx_result.code
            self.in_doubt, self.nonce = None, tx.nonce + 1
        elif answer is not None:
            code, detail = answer.check_tx.code, answer.check_tx.log[:200]
            if resend:
                pass  # the first copy may still be waiting, or just committed
            else:
                outcome = Outcome.FAILED
                self.nonce = None  # read it again: the refusal may be about the nonce
        else:
            self.in_doubt = tx
        run.record(
            Transfer(
                op_id=run.next_id(),
                node=node,
                sender=self.key.address,
                recipient=str(tx.args["to"]),
                amount=int(tx.args["amount"]),
                nonce=tx.nonce,
                fee=tx.fee,
                tx_hash=tx.hash.hex(),
                invoke_ns=invoke_ns,
                complete_ns=complete_ns,
                outcome=outcome,
                height=height,
                code=code,
                resend=resend,
                detail=detail,
            )
        )
        if outcome is not Outcome.OK:
            await run.pause(run.settings.retry_pause_s)


async def _read_loop(run: _Run, node: int, addresses: list[str]) -> None:
    client = run.clients[node]
    while not run.stop.is_set():
        invoke_ns = run.clock()
        try:
            height, balances = await read_balances(client, addresses, run.settings.call_timeout_s)
        except RPCClientError as exc:
            complete_ns = run.clock()
            run.record(
                Read(run.next_id(), node, invoke_ns, complete_ns, Outcome.UNKNOWN, detail=str(exc))
            )
        else:
            complete_ns = run.clock()
            run.record(
                Read(run.next_id(), node, invoke_ns, complete_ns, Outcome.OK, height, balances)
            )
        await run.pause(run.settings.read_interval_s)
