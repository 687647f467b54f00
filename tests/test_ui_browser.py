"""The web UI at /ui, in a real headless Chromium, against four validators as processes.

The network is real (tests/helpers/processes.py) and so is the browser (the system's
Chromium, tests/helpers/browser.py). The tests make transactions with the Python client
and in the page, and check what each page shows: live updates without a reload, search
for every kind of key, a provider whose name is an XSS payload shown as text, a wallet
that signs in the page, a task's manifest, inputs, outputs and log, a blob's DAG, a
phone-sized window, and no console error anywhere. With CLOUDCHAIN_UI_SCREENSHOTS set
to a folder, the main pages' screenshots are written there (docs/ui holds ours).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from cloudchain.client import SyncClient
from cloudchain.crypto import PrivateKey, read_key_file
from cloudchain.node.config import NodeConfig
from cloudchain.workload.manifest import load_manifest, parse_manifest
from cloudchain.workload.result import ResultIndex
from tests.helpers.browser import PHONE, chromium, chromium_path, watched_page
from tests.helpers.processes import NodeProcess, fast_testnet, wait_on_logs
from tests.helpers.waiting import wait_until_blocking

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="no system Chromium (`make test` installs Debian's)"
)

# At most 64 printable characters, as market.register takes a name; an alert it ran would
# be a dialog, which the watched page reports as a problem.
XSS_NAME = "<img src=x onerror=alert(1)><script>alert(2)</script>"
XSS_FILE = "<img src=x onerror=alert(3)>.json"
WAIT_MS = 30_000
HEIGHTS = "rows => rows.map(row => row.dataset.height)"
MANIFEST = {
    "version": 1,
    "kind": "train",
    "seed": 1,
    "data": {"train": {"cid": "", "format": "csv", "bytes": 0, "target": "label"}},
    "model": {"library": "sklearn", "estimator": "logistic_regression", "params": {}},
    "evaluate": {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25},
    "limits": {"cpu_seconds": 60, "memory_mb": 512, "deadline_s": 120, "output_bytes": 1_000_000},
}


class ThreadedClient:
    """SyncClient's calls, each on a thread of its own: Playwright's sync API keeps an
    event loop running on the test's thread, where SyncClient could not start one."""

    def __init__(self, url: str) -> None:
        self._client = SyncClient(url)
        self._pool = ThreadPoolExecutor(max_workers=1)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._pool.submit(method, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown()


@dataclass
class Market:
    url: str  # node0's RPC, where the pages are read
    client: ThreadedClient
    elsewhere: ThreadedClient  # node3's: a blob put there is not on node0
    accounts: Path  # the testnet's key files
    requester: PrivateKey
    provider: PrivateKey
    register_tx: str  # the provider's registration, whose name is XSS_NAME
    data: Path  # a CSV a task trains on
    task: int = 0  # one task, submitted by the requester through the client
    blob: str = ""  # one blob's CID


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "net"
    data = root / "train.csv"
    rows = [f"{i}.0,{'ab'[i % 2]}" for i in range(1, 41)]
    data.write_text("f0,label\n" + "\n".join(rows) + "\n")
    homes = fast_testnet(home, 4)
    nodes = [NodeProcess(h) for h in homes]
    try:
        wait_on_logs(lambda: all(n.height >= 2 for n in nodes), nodes)
        url = f"http://{NodeConfig.load(homes[0] / 'config' / 'config.toml').rpc.listen_address}"
        client = ThreadedClient(url)
        accounts = home / "accounts"
        provider = read_key_file(accounts / "account2.json")
        offers = {"cpu": {"gpu": "none", "gpus": 1, "memory_gb": 8, "units": 100, "price": 10}}
        args = {"name": XSS_NAME, "tier": "community", "offers": offers, "stake": 5_000}
        tx = client.sign_tx(provider, "market", "register", args)
        committed = client.broadcast_tx_commit(tx.to_bytes())
        assert committed.failure is None, committed.failure
        rpc3 = NodeConfig.load(homes[3] / "config" / "config.toml").rpc.listen_address
        made = Market(
            url,
            client,
            ThreadedClient(f"http://{rpc3}"),
            accounts,
            read_key_file(accounts / "account0.json"),
            provider,
            tx.hash.hex().upper(),
            data,
        )
        made.task = submit_task(made)
        made.blob = client.blob_put(io.BytesIO(bytes(300_000))).cid
        yield made
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page; the test fails if it logged an error or reloaded."""
    with watched_page(browser) as watched:
        yield watched.page
        assert watched.problems == []
        assert watched.loads <= 1, "the page reloaded"


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("CLOUDCHAIN_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def transfer(market: Market, amount: int, to: str | None = None) -> tuple[str, int]:
    """A transfer from the requester, committed: (its hash, its height)."""
    recipient = to or read_key_file(market.accounts / "account1.json").address
    args = {"to": recipient, "amount": amount}
    tx = market.client.sign_tx(market.requester, "token", "transfer", args)
    committed = market.client.broadcast_tx_commit(tx.to_bytes())
    assert committed.failure is None, committed.failure
    return tx.hash.hex().upper(), committed.height


def test_the_chain_page_follows_the_chain_live(market: Market, page: Page) -> None:
    page.goto(f"{market.url}/ui/")
    height = page.locator("#height")
    expect(height).not_to_have_text("", timeout=WAIT_MS)
    first = int(height.inner_text())
    # New blocks arrive over the WebSocket: the height and the block list move on.
    wait_until_blocking(
        lambda: int(height.inner_text()) >= first + 3, what="3 new blocks", poll_s=0.1
    )
    expect(page.locator(f'#blocks tr[data-height="{first + 3}"]')).to_be_visible()
    # None was missed while the page read its first state: the list has no gap.
    listed = [int(h) for h in page.locator("#blocks tr").evaluate_all(HEIGHTS)]
    assert listed == list(range(listed[0], listed[0] - len(listed), -1))
    expect(page.locator("#interval")).to_have_text(re.compile(r"\d+\.\d\d s"))
    validators = page.locator("text=Voting power").locator("xpath=ancestor::table")
    expect(validators.locator("tbody tr")).to_have_count(4)
    # Every validator has signed a recent block, and the page says which.
    for row in validators.locator("tbody tr").all():
        assert int(row.locator("td").nth(3).inner_text()) >= first - 10
    expect(page.locator("#live")).to_have_text("live")
    screenshot(page, "chain")


def test_a_transfer_arrives_live_and_has_its_pages(market: Market, page: Page) -> None:
    page.goto(f"{market.url}/ui/#/chain")
    expect(page.locator("#height")).not_to_have_text("", timeout=WAIT_MS)
    tx_hash, height = transfer(market, 4_321)
    row = page.locator(f'#txs tr[data-tx="{tx_hash}"]')
    expect(row).to_contain_text("token.transfer", timeout=WAIT_MS)
    expect(row).to_contain_text("ok")
    row.locator("a").first.click()
    expect(page.locator("#tx-args")).to_contain_text('"amount": 4321')
    view = page.locator("#view")
    expect(view).to_contain_text(tx_hash)
    expect(view).to_contain_text(market.requester.address)
    expect(view).to_contain_text("transfer")  # the events: the transfer's and the fee's
    page.locator("dd a", has_text=str(height)).first.click()
    expect(view).to_contain_text(f"Block {height}")
    expect(page.locator("#view table").first).to_contain_text("token.transfer")
    screenshot(page, "transaction-block")


def test_search_finds_a_height_hashes_an_address_a_cid_and_a_task(
    market: Market, page: Page
) -> None:
    tx_hash, height = transfer(market, 7)
    block_hash = market.client.block(height).block_id.hash.hex().upper()
    put = market.client.blob_put(io.BytesIO(b"searched for by its CID\n"))
    task = submit_task(market)
    page.goto(f"{market.url}/ui/")
    view = page.locator("#view")
    searches = [
        (str(height), f"Block {height}"),
        (tx_hash.lower(), tx_hash),
        (block_hash, f"Block {height}"),
        (market.requester.address.upper(), market.requester.address),
        (put.cid, put.cid),
        (f"task {task}", f"Task {task}"),
    ]
    for query, shown in searches:
        page.fill("#search-input", query)
        page.click("#search button")
        expect(view).to_contain_text(shown, timeout=WAIT_MS)
    page.fill("#search-input", "not a key")
    page.click("#search button")
    expect(page.locator("#view .error")).to_contain_text("search for a height")


def test_an_xss_payload_in_a_transaction_stays_text(market: Market, page: Page) -> None:
    page.goto(f"{market.url}/ui/#/market")
    providers = page.locator("#providers")
    expect(providers).to_contain_text(XSS_NAME, timeout=WAIT_MS)
    expect(providers.locator("img, script")).to_have_count(0)
    page.goto(f"{market.url}/ui/#/tx/{market.register_tx}")
    expect(page.locator("#tx-args")).to_contain_text(XSS_NAME)
    expect(page.locator("#view img, #view script")).to_have_count(0)
    assert page.title() == "CloudChain"


def submit_task(market: Market, deadline_s: int = 600) -> int:
    """A task from the requester, through the client (it is assigned to the provider)."""
    submitted = market.client.submit_task(
        market.requester,
        MANIFEST,
        {"train": market.data},
        units=5,
        max_price=20,
        deadline_s=deadline_s,
        replicas=1,
    )
    return submitted.task_id


def test_the_wallet_signs_a_transfer_and_a_task_in_the_page(market: Market, page: Page) -> None:
    recipient = PrivateKey.generate().address
    page.goto(f"{market.url}/ui/#/wallet")
    page.set_input_files("#key-file", str(market.accounts / "account0.json"))
    expect(page.locator("#wallet-address")).to_have_text(market.requester.address)
    page.fill("#transfer-to", recipient)
    page.fill("#transfer-amount", "2468")
    page.click("#transfer-form button")
    expect(page.locator("#transfer-result")).to_contain_text("committed", timeout=WAIT_MS)
    assert market.client.query("/token/balance", recipient.encode())["balance"] == 2468
    # A task: the page uploads the data and the manifest, anchors both and submits.
    page.fill("#task-manifest", json.dumps(MANIFEST))
    page.set_input_files("#task-files", str(market.data))
    result = page.locator("#task-result")
    # A task no provider could take is refused before anything is uploaded: the
    # provider offers 100 units of cpu at 10.
    for units, price, refusal in (("101", "20", "no provider offers 101 units"), ("5", "9", "")):
        page.fill("#task-units", units)
        page.fill("#task-price", price)
        page.click("#task-form button")
        expect(result.locator(".error")).to_contain_text(
            refusal or "no provider sells cpu at 9 a unit or less (the cheapest asks 10)"
        )
    page.fill("#task-units", "5")
    page.fill("#task-price", "20")
    page.click("#task-form button")
    expect(result).to_contain_text("submitted", timeout=WAIT_MS)
    task_id = int(result.locator("a").inner_text().split()[-1])
    task = market.client.task(task_id)
    assert task.requester == market.requester.address
    manifest_cid, data_cid = task.inputs
    blob = page.request.get
    assert blob(f"{market.url}/blobs/{data_cid}").body() == market.data.read_bytes()
    # The manifest is in its one encoding, which a provider requires: the CLI's bytes.
    uploaded = load_manifest(blob(f"{market.url}/blobs/{manifest_cid}").body(), canonical=True)
    filled = {**MANIFEST, "data": {"train": {**MANIFEST["data"]["train"], "cid": data_cid}}}
    filled["data"]["train"]["bytes"] = market.data.stat().st_size
    assert uploaded == parse_manifest(filled)
    assert (task.units, task.kind) == (5, "training")
    anchored = market.client.query("/storage/anchored", f"owner={task.requester}".encode())
    assert {manifest_cid, data_cid} <= set(anchored["cids"])
    screenshot(page, "wallet")


def test_a_task_moves_live_and_its_page_shows_outputs_and_log(market: Market, page: Page) -> None:
    task_id = submit_task(market)
    page.goto(f"{market.url}/ui/#/market")
    row = page.locator(f'#task-table tr[data-task="{task_id}"]')
    expect(row).to_have_attribute("data-state", "assigned", timeout=WAIT_MS)
    # The provider starts and completes it (as its daemon would): the row follows live.
    send_as_provider(market, "start", {"task": task_id})
    expect(row).to_have_attribute("data-state", "running", timeout=WAIT_MS)
    # The log is on another node: the page offers to fetch it through node0's gateway.
    log = market.elsewhere.blob_put(io.BytesIO(b"epoch 1: loss 0.31\nfinished\n"))
    metrics = market.client.blob_put(io.BytesIO(b'{"metric": "accuracy", "value": 0.9}'))
    task = market.client.task(task_id)
    index = ResultIndex(
        task=task_id,
        manifest=task.inputs[0],
        status="done",
        message="",
        cpu_ms=120,
        wall_ms=300,
        units=3,
        executor="local",
        files={"metrics.json": metrics.cid, XSS_FILE: metrics.cid},
        log=log.cid,
    )
    index_put = market.client.blob_put(io.BytesIO(index.to_bytes()))
    output = [index_put.cid, *index.output]
    send_as_provider(market, "complete", {"task": task_id, "units_used": 3, "output": output})
    expect(row).to_have_attribute("data-state", re.compile("completed|verified"), timeout=WAIT_MS)
    expect(page.locator("#market-stats")).to_be_visible()
    expect(page.locator("#view svg.chart")).to_have_count(2)
    screenshot(page, "market")
    row.locator("a").first.click()
    view = page.locator("#view")
    expect(view).to_contain_text(f"Task {task_id}")
    history = page.locator("#history tbody tr")
    expect(history.first).to_contain_text(re.compile(r"open\s*\d+"))
    expect(history.nth(2)).to_contain_text(re.compile(r"running\s*\d+"))
    expect(page.locator("#manifest")).to_contain_text("logistic_regression", timeout=WAIT_MS)
    expect(page.locator("#outputs")).to_contain_text("metrics.json", timeout=WAIT_MS)
    log_box = page.locator("#task-log")
    expect(log_box).to_contain_text("not on this node")
    log_box.locator("button").click()
    expect(log_box).to_contain_text("epoch 1: loss 0.31", timeout=WAIT_MS)
    expect(page.locator("#outputs")).to_contain_text(XSS_FILE)  # a provider's words, as text
    expect(page.locator("#outputs img")).to_have_count(0)
    # The inputs and outputs download through the node's blob gateway.
    link = page.locator("#outputs a[download]", has_text="download").first
    href = link.get_attribute("href")
    assert href == f"/blobs/{index_put.cid}"
    assert page.request.get(market.url + href).body() == index.to_bytes()
    screenshot(page, "task")


def send_as_provider(market: Market, method: str, args: dict[str, object]) -> None:
    tx = market.client.sign_tx(market.provider, "market", method, args)
    committed = market.client.broadcast_tx_commit(tx.to_bytes())
    assert committed.failure is None, committed.failure


def test_a_blob_page_shows_its_dag(market: Market, page: Page) -> None:
    # 600 KiB: three 256 KiB chunks under a root; the first two are the same bytes, so
    # the same block, linked twice (CIDv0: UnixFS leaves are dag-pb too).
    data = bytes(range(256)) * 2_400
    put = market.client.blob_put(io.BytesIO(data))
    page.goto(f"{market.url}/ui/#/blob/{put.cid}")
    dag = page.locator("#dag")
    expect(dag.locator("li")).to_have_count(4, timeout=WAIT_MS)
    expect(dag.locator("li").first).to_contain_text("dag-pb, 614,400 bytes")
    expect(dag.locator("li li")).to_have_text(
        [re.compile("262,144 bytes"), re.compile("262,144 bytes"), re.compile("90,112 bytes")]
    )
    expect(page.locator("#view")).to_contain_text("614,400 bytes")
    screenshot(page, "blob")


@pytest.mark.parametrize(
    "route", ["chain", "market", "wallet", "datasets", "block", "tx", "task", "blob", "account"]
)
def test_each_page_fits_a_phone(market: Market, browser: Browser, route: str) -> None:
    target = {
        "block": "block/2",
        "tx": f"tx/{market.register_tx}",
        "task": f"task/{market.task}",
        "blob": f"blob/{market.blob}",
        "account": f"account/{market.requester.address}",
    }.get(route, route)
    with watched_page(browser, PHONE) as watched:
        page = watched.page
        page.goto(f"{market.url}/ui/#/{target}")
        expect(page.locator("#view")).to_have_attribute("data-page", route, timeout=WAIT_MS)
        expect(page.locator("#view .error")).to_have_count(0)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{route} is {overflow} px wider than a phone"
        assert watched.problems == []


def test_datasets_and_grants_have_their_pages(market: Market, page: Page) -> None:
    owner, grantee = market.requester, read_key_file(market.accounts / "account3.json")
    ciphertext = market.client.blob_put(io.BytesIO(b"sealed bytes stand-in " * 40))
    sent = [
        (grantee, "access", "publish_key", {"key": bytes(range(32))}),
        (
            owner,
            "access",
            "add_dataset",
            {
                "cid": ciphertext.cid,
                "size": ciphertext.size,
                "delta_e12": 1_000,
                "budget_micro_eps": 3_000_000,
            },
        ),
    ]
    for key, module, method, args in sent:
        tx = market.client.sign_tx(key, module, method, args)
        assert market.client.broadcast_tx_commit(tx.to_bytes()).failure is None
    datasets = [e for e in tx_events(market, tx) if e.type == "access_dataset"]
    dataset = int(dict(datasets[0].attributes)["dataset"])
    grant = {
        "dataset": dataset,
        "grantee": grantee.address,
        "task": 0,
        "until": 1_000_000,
        "wrapped_key": bytes(80),
    }
    tx = market.client.sign_tx(owner, "access", "grant", grant)
    assert market.client.broadcast_tx_commit(tx.to_bytes()).failure is None
    page.goto(f"{market.url}/ui/#/datasets")
    row = page.locator("#view tbody tr", has_text=owner.address[:6])
    expect(row.first).to_contain_text("3,000,000", timeout=WAIT_MS)
    page.goto(f"{market.url}/ui/#/dataset/{dataset}")
    view = page.locator("#view")
    expect(view).to_contain_text(ciphertext.cid, timeout=WAIT_MS)
    expect(view).to_contain_text(grantee.address)
    expect(view).to_contain_text('"until": 1000000')


def tx_events(market: Market, tx: Any) -> tuple[Any, ...]:
    return market.client.tx(tx.hash).tx_result.events


def test_the_pages_codec_is_the_chains(market: Market, page: Page) -> None:
    """The page's msgpack (msgpack.js) against cloudchain.codec, on the values whose
    encoding has edges: every integer width, strings and bytes at their length steps,
    keys that sort differently by UTF-8 bytes than by UTF-16 units."""
    from cloudchain import codec

    values = [
        0,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        2**32 - 1,
        2**32,
        2**53 - 1,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        -(2**31),
        -(2**31) - 1,
        "",
        "a" * 31,
        "a" * 32,
        "a" * 255,
        "a" * 256,
        "\u00e9\u4e2d\U0001f600",
        {"\uff61": 1, "\U0001f600": 2, "b": 3, "a": {"z": None, "y": True, "x": False}},
        list(range(15)),
        list(range(16)),
    ]
    page.goto(f"{market.url}/ui/")
    encoded = page.evaluate(
        """async (values) => {
            const { encode, decode } = await import("/ui/msgpack.js");
            return values.map((v) => {
                const bytes = encode(v);
                return [Array.from(bytes), JSON.stringify(decode(bytes))];
            });
        }""",
        values,
    )
    for value, (js_bytes, round_trip) in zip(values, encoded, strict=True):
        assert bytes(js_bytes) == codec.encode(value), value
        assert json.loads(round_trip) == value
    blobs = page.evaluate(
        """async () => {
            const { encode } = await import("/ui/msgpack.js");
            return [0, 255, 256, 65536].map((n) => Array.from(encode(new Uint8Array(n))));
        }"""
    )
    for n, js_bytes in zip([0, 255, 256, 65536], blobs, strict=True):
        assert bytes(js_bytes) == codec.encode(bytes(n))
    # Integers past 2^53 are BigInts in the page, both ways.
    big = [2**53, 2**63 - 1, 2**64 - 1, -(2**53) - 1, -(2**63)]
    answers = page.evaluate(
        """async ([texts, encoded]) => {
            const { encode, decode } = await import("/ui/msgpack.js");
            return [
                texts.map((t) => Array.from(encode(BigInt(t)))),
                encoded.map((bytes) => String(decode(Uint8Array.from(bytes)))),
            ];
        }""",
        [[str(n) for n in big], [list(codec.encode(n)) for n in big]],
    )
    assert [bytes(b) for b in answers[0]] == [codec.encode(n) for n in big]
    assert answers[1] == [str(n) for n in big]
    # And the page decodes what the chain encodes: a map of every kind of value.
    value = {"b": b"\x00\xff", "s": "\u00e9", "n": -5, "l": [1, [2, None]], "t": True}
    decoded = page.evaluate(
        """async (bytes) => {
            const { decode } = await import("/ui/msgpack.js");
            const v = decode(Uint8Array.from(bytes));
            return [Object.keys(v), Array.from(v.b), v.s, v.n, JSON.stringify(v.l), v.t];
        }""",
        list(codec.encode(value)),
    )
    assert decoded == [sorted(value), [0, 255], "\u00e9", -5, "[1,[2,null]]", True]


def test_a_hash_that_names_no_page_or_carries_markup_is_refused_as_text(
    market: Market, page: Page
) -> None:
    view = page.locator("#view")
    for route, message in (
        ("account/<img src=x onerror=alert(4)>", "an address is 40 lower-case hex"),
        ("constructor", "no page constructor"),
        ("tx/%E0%A4%A", "no page"),
        ("<script>alert(5)</script>", "no page <script>alert(5)<"),  # "/" splits the hash
    ):
        page.goto(f"{market.url}/ui/#/{route}")
        expect(view.locator(".error")).to_contain_text(message, timeout=WAIT_MS)
        expect(view.locator("img, script")).to_have_count(0)
    # The UI is not stuck after them: the next page draws.
    page.goto(f"{market.url}/ui/#/chain")
    expect(view).to_have_attribute("data-page", "chain", timeout=WAIT_MS)
    expect(page.locator("#height")).not_to_have_text("")


def test_moving_between_pages_leaves_only_the_last_one_drawn(market: Market, page: Page) -> None:
    page.goto(f"{market.url}/ui/#/chain")
    expect(page.locator("#height")).not_to_have_text("", timeout=WAIT_MS)
    for route in ("market", f"task/{market.task}", "chain", "market", "wallet"):
        page.evaluate("(route) => { location.hash = route; }", f"#/{route}")
    view = page.locator("#view")
    expect(view).to_have_attribute("data-page", "wallet", timeout=WAIT_MS)
    expect(page.locator("#key-file")).to_be_visible()
    # Give the earlier pages' draws their time: none of them lands in the view.
    transfer(market, 1)
    expect(page.locator("#view .page")).to_have_count(1)
    expect(page.locator("#providers, #blocks, #history")).to_have_count(0)
