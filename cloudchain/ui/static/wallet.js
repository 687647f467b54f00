// The requester's console: import a key file (it stays in this page), see the account,
// send a transfer, submit a task. Transactions are built and signed here (tx.js) and
// only the signed bytes go to the node.

import { h, link, section, replace, errorBox, fields } from "./dom.js";
import { amount } from "./format.js";
import { call, query } from "./rpc.js";
import { Signer } from "./tx.js";
import { toBase64 } from "./format.js";

let signer = null; // for this page's life only: never stored

const EXAMPLE_MANIFEST = {
  version: 1,
  kind: "train",
  seed: 7,
  data: { train: { cid: "", format: "csv", bytes: 0, target: "label" } },
  model: { library: "sklearn", estimator: "logistic_regression", params: {} },
  steps: [{ step: "standardise" }],
  evaluate: { metric: "accuracy", split: "holdout", holdout_fraction: 0.25 },
  limits: { cpu_seconds: 60, memory_mb: 1536, deadline_s: 120, output_bytes: 50000000 },
};

export async function walletPage(view) {
  const keyBox = h("div", { id: "key-box" });
  const forms = h("div", { id: "forms" });
  replace(view, section("Your key", keyBox), forms);
  const balanceText = h("span", { id: "wallet-balance" });
  const showBalance = async () => {
    const balance = await query("/token/balance", signer.address);
    replace(balanceText, `${amount(balance.balance)} ${balance.denom}`);
  };
  const drawKey = async () => {
    if (!signer) {
      const input = h("input", { type: "file", id: "key-file", accept: ".json,application/json" });
      const message = h("div");
      input.addEventListener("change", async () => {
        try {
          signer = await Signer.fromKeyFile(await input.files[0].text());
          await drawKey();
        } catch (error) {
          replace(message, errorBox(error));
        }
      });
      replace(
        keyBox,
        h("p", null, "Choose a key file made by the cloudchain CLI (keys/*.json). It is read in this page and never sent: only the transactions it signs leave it."),
        h("label", null, "Key file ", input),
        message,
      );
      replace(forms);
      return;
    }
    await showBalance();
    replace(
      keyBox,
      fields([
        ["Address", link(h("code", { id: "wallet-address" }, signer.address), "account", signer.address)],
        ["Balance", balanceText],
      ]),
      h("button", { type: "button", onclick: () => { signer = null; drawKey(); } }, "Forget the key"),
    );
    replace(forms, transferForm(showBalance), await taskForm(showBalance));
  };
  await drawKey();
}

function transferForm(refresh) {
  const to = h("input", { id: "transfer-to", required: true, pattern: "[0-9a-f]{40}", placeholder: "40 hex characters" });
  const amountInput = h("input", { id: "transfer-amount", type: "number", min: "1", step: "1", required: true });
  const result = h("div", { id: "transfer-result", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "transfer-form" },
    h("label", null, "To ", to),
    h("label", null, "Amount ", amountInput),
    h("button", { type: "submit" }, "Sign and send"),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(result, "signing and sending...");
    try {
      const committed = await signer.submit("token", "transfer", { to: to.value.trim(), amount: Number(amountInput.value) });
      replace(result, outcome(committed));
      await refresh();
    } catch (error) {
      replace(result, errorBox(error));
    }
  });
  return section("Send tokens", form);
}

function outcome(committed) {
  const failed = committed.check_tx.code !== 0 ? committed.check_tx : committed.tx_result.code !== 0 ? committed.tx_result : null;
  if (failed) return errorBox(`refused with code ${failed.code}: ${failed.log}`);
  return h("p", { class: "ok" }, "committed in block ", link(committed.height, "block", committed.height), ": ", link(committed.hash, "tx", committed.hash));
}

async function taskForm(refresh) {
  const prices = (await query("/market/prices")).classes;
  const manifest = h("textarea", { id: "task-manifest", rows: "14", spellcheck: "false" });
  manifest.value = JSON.stringify(EXAMPLE_MANIFEST, null, 2);
  const files = h("input", { id: "task-files", type: "file", multiple: true });
  const cls = h("select", { id: "task-class" }, prices.map((c) => h("option", { value: c.resource_class }, c.resource_class)));
  const units = h("input", { id: "task-units", type: "number", min: "1", step: "1", value: "10" });
  const reference = prices.length && prices[0].price ? Number(prices[0].price) : 10;
  const maxPrice = h("input", { id: "task-price", type: "number", min: "1", step: "1", value: String(2 * reference) });
  const deadline = h("input", { id: "task-deadline", type: "number", min: "1", step: "1", value: "300" });
  const penalty = h("input", { id: "task-penalty", type: "number", min: "0", step: "1", value: "0" });
  const result = h("div", { id: "task-result", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "task-form" },
    h("label", { class: "wide" }, "Manifest (JSON) ", manifest),
    h("label", null, "Data files, one per dataset the manifest names, in the order of their names ", files),
    h("label", null, "Resource class ", cls),
    h("label", null, "Units ", units),
    h("label", null, "Price a unit, at most ", maxPrice),
    h("label", null, "Deadline (s) ", deadline),
    h("label", null, "Penalty a violation ", penalty),
    h("button", { type: "submit" }, "Upload, sign and submit"),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(result, "uploading...");
    try {
      const id = await submitTask(JSON.parse(manifest.value), Array.from(files.files), {
        resource_class: cls.value,
        units: Number(units.value),
        max_price: Number(maxPrice.value),
        deadline_s: Number(deadline.value),
        penalty: Number(penalty.value),
      });
      replace(result, h("p", { class: "ok" }, "submitted: ", link(`task ${id}`, "task", id)));
      await refresh();
    } catch (error) {
      replace(result, errorBox(error));
    }
  });
  return section("Submit a task", form);
}

async function upload(bytes) {
  const response = await fetch("/blobs?replicas=1", { method: "POST", body: bytes });
  const body = await response.json();
  if (!response.ok) throw new Error(`the upload failed (${response.status}): ${body.error}`);
  return body;
}

// JSON with sorted keys, no spaces, only ASCII: the manifest's one encoding
// (workload/manifest.py's canonical_json), so its CID is the one the CLI would give.
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${asciiJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return typeof value === "string" ? asciiJson(value) : JSON.stringify(value);
}

function asciiJson(text) {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

async function submitTask(manifest, files, terms) {
  const names = Object.keys(manifest.data || {}).sort();
  const needed = names.filter((name) => !manifest.data[name].cid);
  if (needed.length !== files.length) {
    throw new Error(`the manifest names ${needed.length} dataset(s) without a CID (${needed.join(", ")}): choose as many files, got ${files.length}`);
  }
  const blobs = [];
  for (const [i, name] of needed.entries()) {
    const put = await upload(new Uint8Array(await files[i].arrayBuffer()));
    manifest.data[name] = { ...manifest.data[name], cid: put.cid, bytes: put.size };
    blobs.push(put);
  }
  const manifestPut = await upload(new TextEncoder().encode(canonicalJson(manifest)));
  blobs.push(manifestPut);
  const kinds = { train: "training", infer: "inference", preprocess: "preprocessing" };
  if (!kinds[manifest.kind]) throw new Error(`manifest.kind must be one of ${Object.keys(kinds).join(", ")}`);
  // Anchor each blob, then submit, with consecutive nonces (as the CLI does).
  let nonce = (await query("/auth/nonce", signer.address)).nonce;
  for (const put of blobs) {
    const tx = await signer.sign("storage", "anchor", { cid: put.cid, size: put.size, replicas: put.replicas }, nonce++);
    const checked = await call("broadcast_tx_sync", { tx: toBase64(tx) });
    if (checked.code !== 0) throw new Error(`the anchor of ${put.cid} was refused: ${checked.log}`);
  }
  const args = {
    kind: kinds[manifest.kind],
    inputs: [manifestPut.cid, ...needed.map((name) => manifest.data[name].cid)],
    ...terms,
    min_uptime_bps: 9000,
    max_latency_ms: 2000,
    provider: "",
  };
  const tx = await signer.sign("market", "submit", args, nonce);
  const committed = await call("broadcast_tx_commit", { tx: toBase64(tx) });
  const failed = committed.check_tx.code !== 0 ? committed.check_tx : committed.tx_result.code !== 0 ? committed.tx_result : null;
  if (failed) throw new Error(`the task was refused with code ${failed.code}: ${failed.log}`);
  for (const event of committed.tx_result.events) {
    if (event.type === "market_submit") {
      for (const attribute of event.attributes) if (attribute.key === "task") return attribute.value;
    }
  }
  throw new Error(`the task was committed (${committed.hash}) but its id is not in its events`);
}
