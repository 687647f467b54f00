"""One market task, end to end, on four validator processes, driven only through the RPC.

A provider registers with a stake, a requester submits and funds a task, the
end-of-block work assigns it, the provider starts and completes it, the oracles
attest, it settles, and the next epochs mint the rewards. Then, at one height and
on two nodes, the balances must add up: what each party paid and earned, the
supply (genesis plus minted), and balances + escrow + stakes = supply.
Waiting is on committed blocks (a NewBlock subscription) with a deadline.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cloudchain.chaincode.codes import Code
from cloudchain.client import Client, RPCClientError
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.node.config import NodeConfig
from tests.helpers.processes import NodeProcess, fast_testnet, wait_on_logs

DEADLINE_S = 30  # for each wait; the whole test takes about 15 s
BPS = 10_000
GPU = "a100-80gb"
PRICE, UNITS, UNITS_USED, MAX_PRICE, STAKE = 10, 10, 8, 20, 5_000
FINAL = ("settled", "refunded", "resolved")


class Party:
    """An account that signs market transactions and sends them to one node."""

    def __init__(self, key: PrivateKey, client: Client, chain_id: str) -> None:
        self.key, self.client, self.chain_id = key, client, chain_id
        self.fees = 0  # paid by its transactions in blocks (failed ones too), burnt

    @property
    def address(self) -> str:
        return self.key.address

    async def send(self, method: str, **args: Any):
        nonce = await self.client.nonce(self.address)
        tx = await self.client.sign_tx(
            self.key, "market", method, args, nonce=nonce, chain_id=self.chain_id
        )
        result = await self.client.broadcast_tx_commit(tx.to_bytes())
        if result.height:  # in a block: paid
            self.fees += tx.fee
        return result

    async def must(self, method: str, **args: Any):
        result = await self.send(method, **args)
        assert result.ok, f"market.{method} by {self.address}: {result.failure.log}"
        return result


async def on_blocks(client: Client, check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`check()` now and after each committed block until it returns something true."""
    try:
        async with asyncio.timeout(DEADLINE_S), client.subscribe("tm.event='NewBlock'") as blocks:
            if value := await check():
                return value
            async for _ in blocks:
                if value := await check():
                    return value
    except TimeoutError:
        raise AssertionError(f"no {what} within {DEADLINE_S} s") from None
    raise AssertionError(f"the block subscription ended before {what}")


def test_a_task_runs_settles_and_the_balances_add_up_on_two_nodes(tmp_path):
    homes = fast_testnet(tmp_path / "net", 4)
    nodes = [NodeProcess(home) for home in homes]
    urls = [
        f"http://{NodeConfig.load(h / 'config' / 'config.toml').rpc.listen_address}" for h in homes
    ]
    try:
        wait_on_logs(lambda: all(n.height >= 2 for n in nodes), nodes)
        asyncio.run(_one_task(tmp_path / "net" / "accounts", urls))
    finally:
        for node in nodes:
            node.stop()


async def _one_task(accounts: Path, urls: list[str]) -> None:
    clients = [Client(url) for url in urls]
    chain_id = (await clients[0].status()).network
    genesis = (await clients[0].genesis()).document["app_state"]
    provider = Party(read_key_file(accounts / "account1.json"), clients[1], chain_id)
    requester = Party(read_key_file(accounts / "account2.json"), clients[2], chain_id)
    oracles = [
        Party(read_key_file(accounts / f"oracle{k}.json"), clients[k % 4], chain_id)
        for k in range(3)
    ]
    assert genesis["params"]["market"]["oracles"] == [o.address for o in oracles]
    initial = {a["address"]: a["balance"] for a in genesis["accounts"]}
    params = await clients[0].query("/market/params")

    offers = {GPU: {"gpu": "A100", "gpus": 8, "memory_gb": 640, "units": 100, "price": PRICE}}
    await provider.must("register", name="atlas", tier="enterprise", offers=offers, stake=STAKE)
    submitted = await requester.must(
        "submit",
        kind="training",
        inputs=["Qm" + "a" * 44],
        resource_class=GPU,
        units=UNITS,
        max_price=MAX_PRICE,
        deadline_s=600,
        min_uptime_bps=9_000,
        max_latency_ms=500,
        penalty=50,
        provider="",
    )
    (event,) = [e for e in submitted.tx_result.events if e.type == "market_submit"]
    task_id = int(dict(event.attributes)["task"])

    async def task(state: str | None = None) -> dict[str, Any] | None:
        try:
            record = await clients[0].query("/market/task", str(task_id).encode())
        except RPCClientError as exc:
            if exc.code != Code.NOT_FOUND:
                raise
            return None  # node0 has not committed the block the submit went into yet
        return record if state is None or record["state"] == state else None

    assigned = await on_blocks(clients[0], lambda: task("assigned"), "assignment")
    assert (assigned["provider"], assigned["price"]) == (provider.address, PRICE)
    await provider.must("start", task=task_id)
    await provider.must("complete", task=task_id, units_used=UNITS_USED, output=[])
    quorum = (await clients[0].query("/market/oracles"))["quorum"]
    assert quorum == 2  # of the three oracles
    for oracle in oracles:  # one at a time: two decide, the third is scored (the task is
        # verified until its dispute window closes, three blocks after the second)
        result = await oracle.send(
            "attest",
            task=task_id,
            completed=True,
            units=UNITS_USED,
            uptime_bps=9_990,
            latency_ms=120,
        )
        assert result.ok, result.failure.log if result.failure else ""
    settled = await on_blocks(clients[0], lambda: task("settled"), "settlement")
    assert [state for state, _ in settled["history"]] == [
        "open",
        "assigned",
        "running",
        "completed",
        "verified",
        "settled",
    ]
    payment = PRICE * UNITS_USED
    assert settled["payout"] == {
        "provider": payment,
        "requester": MAX_PRICE * UNITS - payment,
        "slashed": 0,
        "at": settled["payout"]["at"],
    }

    # The epochs after the work mint the rewards: 90% to the provider (the only one that
    # worked), 10% to the three oracles, which all attested honestly, a third each.
    async def rewarded() -> int | None:
        for party, role in [(provider, "provider"), *((o, "oracle") for o in oracles)]:
            account = await clients[0].query("/market/account", party.address.encode())
            if not account[role].get("rewarded"):
                return None
        return (await clients[0].status()).latest_block_height

    height = await on_blocks(clients[0], rewarded, "epoch rewards")
    await on_blocks(clients[3], lambda: _reached(clients[3], height), f"height {height} on node3")
    books = [await _books(client, height, initial) for client in (clients[0], clients[3])]
    assert books[0] == books[1]  # two nodes, one story
    balances, earned, supply, escrow, stakes = books[0]

    provider_pool = params["epoch_reward"] * (BPS - params["oracle_reward_bps"]) // BPS
    oracle_share = (params["epoch_reward"] - provider_pool) // 3
    assert earned[provider.address]["provider"]["rewarded"] == provider_pool
    assert [earned[o.address]["oracle"].get("rewarded", 0) for o in oracles] == [oracle_share] * 3
    minted = provider_pool + 3 * oracle_share
    fees = {party.address: party.fees for party in (provider, requester, *oracles)}
    assert all(fees.values())
    assert (
        balances[requester.address]
        == initial[requester.address] - payment - fees[requester.address]
    )
    assert balances[provider.address] == (
        initial[provider.address] - STAKE + payment + provider_pool - fees[provider.address]
    )
    for oracle in oracles:
        assert (
            balances[oracle.address]
            == initial[oracle.address] + oracle_share - fees[oracle.address]
        )
    assert earned[provider.address]["profit"] == payment
    assert earned[requester.address]["utility"] == MAX_PRICE * UNITS_USED - payment
    assert (escrow, stakes) == (0, STAKE)
    assert supply == sum(initial.values()) + minted - sum(fees.values())  # fees are burnt
    assert sum(balances.values()) + escrow + stakes == supply


async def _reached(client: Client, height: int) -> bool:
    return (await client.status()).latest_block_height >= height


async def _books(client: Client, height: int, initial: dict[str, int]) -> tuple[Any, ...]:
    """At `height`: every genesis account's balance and market record, the supply, the
    deposits of unsettled tasks (escrow) and the providers' stakes."""
    balances, earned = {}, {}
    for address in initial:
        data = address.encode()
        balances[address] = (await client.query("/token/balance", data, height))["balance"]
        earned[address] = await client.query("/market/account", data, height)
    supply = (await client.query("/token/supply", b"", height))["supply"]
    tasks = (await client.query("/market/tasks", b"", height))["tasks"]
    escrow = sum(t["deposit"] for t in tasks if t["state"] not in FINAL)
    providers = (await client.query("/market/providers", b"", height))["providers"]
    stakes = sum(p["stake"] for p in providers)
    return balances, earned, supply, escrow, stakes
