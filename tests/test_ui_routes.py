"""The web UI's routes (node/rpc/ui_http.py) and the blob_dag method it reads a blob's
DAG with (node/rpc/blob_dag.py), on a real node over HTTP."""

import io
import json

import aiohttp

from cloudchain.blobs import import_bytes
from cloudchain.blobs.importer import CHUNK_SIZE_BYTES
from cloudchain.client import Client, RPCClientError
from cloudchain.node.rpc.blob_dag import MAX_DAG_NODES
from cloudchain.node.rpc.ui_http import CSP, UIFiles
from cloudchain.ui import STATIC_DIR
from cloudchain.workload.manifest import canonical_bytes, load_manifest, parse_manifest

UNKNOWN_CID = import_bytes(b"not on the node")[1].root


def url_of(node) -> str:
    return f"http://{node.config.rpc.listen_address}"


async def test_every_file_of_the_ui_is_served_with_its_type_and_the_policy(node):
    files = UIFiles().names()
    shipped = sorted(p.name for p in STATIC_DIR.iterdir())
    assert files == shipped  # nothing in the folder is left out by the name rule
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url_of(node)}/ui", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/ui/"
        async with session.get(f"{url_of(node)}/ui/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/html")
            assert response.headers["Content-Security-Policy"] == CSP
            assert '<script type="module" src="app.js">' in await response.text()
        for name in files:
            async with session.get(f"{url_of(node)}/ui/{name}") as response:
                assert response.status == 200, name
                assert await response.read() == (STATIC_DIR / name).read_bytes()
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        types = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg"}
        for name, expected in types.items():
            async with session.get(f"{url_of(node)}/ui/{name}") as response:
                assert response.headers["Content-Type"].startswith(expected)


async def test_a_name_that_is_not_a_file_of_the_ui_is_a_404(node):
    async with aiohttp.ClientSession() as session:
        for path in (
            "/ui/nope.js",
            "/ui/..%2Fconfig%2Fconfig.toml",
            "/ui/%2e%2e/genesis.json",
            "/ui/app.js.map",
            "/ui/APP.JS",
        ):
            async with session.get(f"{url_of(node)}{path}") as response:
                assert response.status == 404, path
        # The RPC's URI form is untouched by the UI's routes.
        async with session.get(f"{url_of(node)}/health") as response:
            assert response.status == 200


def test_the_policy_lets_the_page_run_only_its_own_scripts():
    rules = dict(rule.split(" ", 1) for rule in CSP.split("; "))
    assert rules["script-src"] == "'self'"
    assert rules["default-src"] == "'none'"
    assert rules["connect-src"] == "'self'"  # no WebSocket to another host
    assert rules["trusted-types"] == "'none'"
    assert "unsafe" not in CSP


async def test_a_blob_is_never_run_as_a_script_or_a_page_of_the_node(node):
    client = Client(url_of(node))
    put = await client.blob_put(io.BytesIO(b"<script>alert(1)</script>"))
    url = f"{url_of(node)}/blobs/{put.cid}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "sandbox"
        assert response.headers["Content-Type"] == "application/octet-stream"


MANIFEST = {
    "version": 1,
    "kind": "train",
    "seed": 3,
    "data": {"train": {"cid": "", "format": "csv", "bytes": 0, "target": "label"}},
    "model": {"library": "sklearn", "estimator": "logistic_regression", "params": {"C": 0.5}},
    "evaluate": {"metric": "accuracy", "split": "holdout", "holdout_fraction": 0.25},
    "limits": {"cpu_seconds": 30, "memory_mb": 512, "deadline_s": 90, "output_bytes": 4096},
}


async def test_manifest_canonical_fills_the_datasets_and_gives_the_one_encoding(node):
    client = Client(url_of(node))
    data_cid = str(import_bytes(b"f0,label\n1,a\n")[1].root)
    datasets = {"train": {"cid": data_cid, "bytes": 12}}
    answer = await client.call(
        "manifest_canonical", manifest=json.dumps(MANIFEST, indent=2), datasets=datasets
    )
    filled = {**MANIFEST, "data": {"train": {**MANIFEST["data"]["train"], **datasets["train"]}}}
    expected = canonical_bytes(parse_manifest(filled))
    assert answer["manifest"].encode() == expected
    assert load_manifest(answer["manifest"].encode(), canonical=True).seed == 3  # a provider's
    assert '"C":0.5' in answer["manifest"] and '"max_iter":' in answer["manifest"]  # defaults
    assert answer["kind"] == "training"
    assert answer["dataset_cids"] == [data_cid]
    assert (answer["units"], answer["deadline_s"]) == (30, 90)


async def test_manifest_canonical_names_the_first_bad_field(node):
    client = Client(url_of(node))
    cases = [
        ({"manifest": json.dumps(MANIFEST)}, "manifest.data.train.cid"),
        ({"manifest": "{not json"}, "not JSON"),
        (  # nested past the parser's recursion: refused, never a stack trace
            {"manifest": '{"data": {"train": {}}, "x": ' + "[" * 20_000 + "]" * 20_000 + "}"},
            "not JSON",
        ),
        (
            {
                "manifest": '{"data": {"train": {}}, "x": ' + "[" * 20_000 + "]" * 20_000 + "}",
                "datasets": {"train": {"cid": "x", "bytes": 1}},
            },
            "not JSON",
        ),
        ({"manifest": {"version": 1}}, "manifest must be the manifest's JSON as a string"),
        (
            {"manifest": json.dumps(MANIFEST), "datasets": {"test": {"cid": "x", "bytes": 1}}},
            "manifest.data.test",
        ),
        (
            {"manifest": json.dumps({**MANIFEST, "kind": "mine"}), "datasets": {}},
            "manifest.kind",
        ),
    ]
    for params, message in cases:
        try:
            await client.call("manifest_canonical", **params)
        except RPCClientError as exc:
            assert exc.code == -32602 and message in str(exc), (params, exc)
        else:
            raise AssertionError(f"manifest_canonical accepted {params}")


async def test_blob_dag_walks_the_dag_breadth_first_and_bounds_it(node):
    client = Client(url_of(node))
    data = bytes(i % 251 for i in range(3 * CHUNK_SIZE_BYTES + 10))
    _, result = import_bytes(data)
    put = await client.blob_put(io.BytesIO(data))
    assert put.cid == str(result.root)
    dag = await client.call("blob_dag", cid=put.cid)
    assert dag["truncated"] is False
    root, *leaves = dag["nodes"]
    assert root["cid"] == put.cid and root["file_bytes"] == len(data)
    assert [link["cid"] for link in root["links"]] == [leaf["cid"] for leaf in leaves]
    assert sum(leaf["file_bytes"] for leaf in leaves) == len(data)
    assert all(node["present"] for node in dag["nodes"])
    first = await client.call("blob_dag", cid=put.cid, max_nodes=2)
    assert len(first["nodes"]) == 2 and first["truncated"] is True
    missing = await client.call("blob_dag", cid=str(UNKNOWN_CID))
    assert missing["nodes"] == [
        {
            "cid": str(UNKNOWN_CID),
            "codec": "dag-pb",
            "present": False,
            "block_bytes": 0,
            "file_bytes": 0,
            "links": [],
        }
    ]


async def test_blob_dag_refuses_bad_params(node):
    client = Client(url_of(node))
    for params, message in (
        ({"cid": "QmNotACid"}, "cid:"),
        ({"cid": str(UNKNOWN_CID), "max_nodes": 0}, "max_nodes must be in"),
        ({"cid": str(UNKNOWN_CID), "max_nodes": MAX_DAG_NODES + 1}, "max_nodes must be in"),
        ({"cid": str(UNKNOWN_CID), "max_nodes": "many"}, "max_nodes must be"),
    ):
        try:
            await client.call("blob_dag", **params)
        except RPCClientError as exc:
            assert exc.code == -32602 and message in str(exc), (params, exc)
        else:
            raise AssertionError(f"blob_dag accepted {params}")
