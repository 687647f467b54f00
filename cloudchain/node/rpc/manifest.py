"""`manifest_canonical`: a task manifest checked and put in its one encoding, for a
client that is not Python (the web UI's wallet).

A provider runs only a manifest blob that is exactly its canonical encoding (sorted
keys, defaults filled in, Python's number forms: workload/manifest.py), which a
browser cannot make without the parser's defaults. So the page sends its JSON text,
datasets' CIDs filled in, and uploads the bytes this returns. Pure: it reads nothing of
the node and stores nothing.

    manifest_canonical {manifest: JSON text, datasets: {name: {cid, bytes}}}
        -> {"manifest": canonical text, "kind": the chain's task kind,
            "dataset_cids": [the blobs it reads besides itself, in name order],
            "units": its CPU limit in seconds (the CLI's default units),
            "deadline_s": its wall limit}
    a manifest that cannot run: -32602 naming the first bad field.
"""

from __future__ import annotations

import json
from typing import Any

from cloudchain.node.rpc.params import bad_params
from cloudchain.workload.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    canonical_bytes,
    load_manifest,
)


async def manifest_canonical(params: dict[str, Any]) -> dict[str, Any]:
    text = params.get("manifest")
    if not isinstance(text, str):
        raise bad_params("manifest must be the manifest's JSON as a string")
    datasets = params.get("datasets") or {}
    if not isinstance(datasets, dict):
        raise bad_params("datasets must be an object: name -> {cid, bytes}")
    try:
        manifest = load_manifest(_filled(text, datasets))
    except (ManifestError, UnicodeError) as exc:
        raise bad_params(str(exc)) from None
    return {
        "manifest": canonical_bytes(manifest).decode("ascii"),
        "kind": manifest.chain_kind,
        "dataset_cids": list(manifest.dataset_cids),
        "units": manifest.limits.cpu_seconds,
        "deadline_s": manifest.limits.deadline_s,
    }


def _filled(text: str, datasets: dict[str, Any]) -> bytes:
    """The manifest's JSON with each named dataset's cid and bytes set, as the Python
    client fills them in after its uploads (client/task_terms.py's fill_datasets)."""
    data_bytes = text.encode("utf-8")
    if not datasets:
        return data_bytes
    if len(data_bytes) > MAX_MANIFEST_BYTES:  # as load_manifest, before parsing it
        raise ManifestError("manifest", f"{len(data_bytes)} bytes, more than {MAX_MANIFEST_BYTES}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ManifestError("manifest", f"not JSON: {exc}") from None
    data = obj.get("data") if isinstance(obj, dict) else None
    for name, blob in datasets.items():
        if not isinstance(data, dict) or not isinstance(data.get(name), dict):
            raise ManifestError(f"manifest.data.{name}", "datasets names a dataset it lacks")
        if not isinstance(blob, dict) or set(blob) != {"cid", "bytes"}:
            raise ManifestError(f"datasets.{name}", "expected {cid, bytes}")
        data[name] = {**data[name], "cid": blob["cid"], "bytes": blob["bytes"]}
    try:
        return json.dumps(obj).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # nested as deep as loads allows
        raise ManifestError("manifest", f"cannot be written back: {exc}") from None
