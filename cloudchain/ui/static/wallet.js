// The requester's console: import a key file (it stays in this page), see the account,
// send a transfer, submit a task. Transactions are built and signed here (tx.js) and
// only the signed bytes go to the node.

import { h, link, section, replace, errorBox, fields } from "./dom.js";
import { amount, toBase64 } from "./format.js";
import { call, query } from "./rpc.js";
import { Signer, failure } from "./tx.js";

let signer = null; // for this page's life only: never stored
const REPLICAS = 2; // nodes that must hold each upload, as the CLI's default
const DEADLINE_MARGIN_S = 600; // beyond the job's wall limit, as the CLI's (client/tasks.py)

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
      h("button", { type: "button", onclick: () => { signer = null; drawKey().catch((error) => replace(keyBox, errorBox(error))); } }, "Forget the key"),
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
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, result, "signing and sending...", async () => {
      const committed = await signer.submit("token", "transfer", { to: to.value.trim(), amount: BigInt(amountInput.value) });
      replace(result, outcome(committed));
      await refresh();
    });
  });
  return section("Send tokens", form);
}

// One submission at a time: the button is off while it runs (a second click would sign
// the same nonce again); its error, if any, is shown in `result`.
async function busy(form, result, message, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  replace(result, message);
  try {
    await work();
  } catch (error) {
    replace(result, errorBox(error));
  } finally {
    button.disabled = false;
  }
}

function optionalInteger(text) {
  return text.trim() === "" ? undefined : BigInt(text);
}

function outcome(committed) {
  const failed = failure(committed);
  if (failed) return errorBox(`refused with code ${failed.code}: ${failed.log}`);
  return h("p", { class: "ok" }, "committed in block ", link(committed.height, "block", committed.height), ": ", link(committed.hash, "tx", committed.hash));
}

async function taskForm(refresh) {
  const prices = (await query("/market/prices")).classes;
  const manifest = h("textarea", { id: "task-manifest", rows: "14", spellcheck: "false" });
  manifest.value = JSON.stringify(EXAMPLE_MANIFEST, null, 2);
  const files = h("input", { id: "task-files", type: "file", multiple: true });
  const cls = h("select", { id: "task-class" }, prices.map((c) => h("option", { value: c.resource_class }, c.resource_class)));
  const units = h("input", { id: "task-units", type: "number", min: "1", step: "1", placeholder: "the manifest's CPU seconds" });
  const reference = prices.length && prices[0].price ? Number(prices[0].price) : 10;
  const maxPrice = h("input", { id: "task-price", type: "number", min: "1", step: "1", value: String(2 * reference) });
  const deadline = h("input", { id: "task-deadline", type: "number", min: "1", step: "1", placeholder: "the manifest's, plus 600" });
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
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, result, "uploading...", async () => {
      const id = await submitTask(manifest.value, Array.from(files.files), {
        resource_class: cls.value,
        units: optionalInteger(units.value),
        max_price: BigInt(maxPrice.value),
        deadline_s: optionalInteger(deadline.value),
        penalty: BigInt(penalty.value),
      });
      replace(result, h("p", { class: "ok" }, "submitted: ", link(`task ${id}`, "task", id)));
      await refresh();
    });
  });
  return section("Submit a task", form);
}

async function upload(bytes) {
  const response = await fetch(`/blobs?replicas=${REPLICAS}`, { method: "POST", body: bytes });
  const body = await response.json();
  if (!response.ok) throw new Error(`the upload failed (${response.status}): ${body.error}`);
  return body;
}

// A task no provider could take would wait, open, until its deadline refunds it: say so
// before anything is uploaded. Only the plain cases: units past every active provider's
// offer in the class, or a price below every one of them.
async function checkOffers(terms, manifest) {
  const offers = (await query("/market/providers")).providers
    .filter((p) => p.status === "active" && p.offers[terms.resource_class])
    .map((p) => p.offers[terms.resource_class]);
  const cls = terms.resource_class;
  if (!offers.length) throw new Error(`no active provider offers ${cls || "any class"}`);
  const limits = manifest && manifest.limits ? manifest.limits : {};
  const units = terms.units ?? BigInt(Number.isSafeInteger(limits.cpu_seconds) ? limits.cpu_seconds : 0);
  const most = offers.reduce((m, o) => (BigInt(o.units) > m ? BigInt(o.units) : m), 0n);
  if (units > most) throw new Error(`no provider offers ${units} units of ${cls} at once (at most ${most}): ask for fewer units`);
  const cheapest = offers.reduce((m, o) => (BigInt(o.price) < m ? BigInt(o.price) : m), BigInt(offers[0].price));
  if (terms.max_price < cheapest) throw new Error(`no provider sells ${cls} at ${terms.max_price} a unit or less (the cheapest asks ${cheapest})`);
}

// As `cloudchain task submit` does: the data files uploaded, the manifest put in its one
// encoding by the node (manifest_canonical: a provider runs no other) and uploaded, each
// blob anchored, then market.submit, with consecutive nonces. Returns the task's id.
async function submitTask(manifestText, files, terms) {
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (error) {
    throw new Error(`the manifest is not JSON: ${error.message}`);
  }
  await checkOffers(terms, manifest);
  const data = manifest && typeof manifest.data === "object" && manifest.data ? manifest.data : {};
  const needed = Object.keys(data).sort().filter((name) => !data[name].cid);
  if (needed.length !== files.length) {
    throw new Error(`the manifest names ${needed.length} dataset(s) without a CID (${needed.join(", ") || "none"}): choose as many files, got ${files.length}`);
  }
  const blobs = [];
  const datasets = {};
  for (const [i, name] of needed.entries()) {
    const put = await upload(new Uint8Array(await files[i].arrayBuffer()));
    datasets[name] = { cid: put.cid, bytes: put.size };
    blobs.push(put);
  }
  const checked = await call("manifest_canonical", { manifest: manifestText, datasets });
  const manifestPut = await upload(new TextEncoder().encode(checked.manifest));
  blobs.push(manifestPut);
  const unique = [...new Map(blobs.map((put) => [put.cid, put])).values()];
  let nonce = (await query("/auth/nonce", signer.address)).nonce;
  for (const put of unique) {
    const tx = await signer.sign("storage", "anchor", { cid: put.cid, size: put.size, replicas: put.replicas }, nonce++);
    const accepted = await call("broadcast_tx_sync", { tx: toBase64(tx) });
    if (accepted.code !== 0) throw new Error(`the anchor of ${put.cid} was refused: ${accepted.log}`);
  }
  const args = {
    kind: checked.kind,
    inputs: [manifestPut.cid, ...checked.dataset_cids],
    resource_class: terms.resource_class,
    units: terms.units ?? BigInt(checked.units),
    max_price: terms.max_price,
    deadline_s: terms.deadline_s ?? BigInt(checked.deadline_s + DEADLINE_MARGIN_S),
    min_uptime_bps: 9000,
    max_latency_ms: 2000,
    penalty: terms.penalty,
    provider: "",
  };
  const committed = await signer.submit("market", "submit", args, nonce);
  const failed = failure(committed);
  if (failed) throw new Error(`the task was refused with code ${failed.code}: ${failed.log}`);
  for (const event of committed.tx_result.events) {
    if (event.type === "market_submit") {
      for (const attribute of event.attributes) if (attribute.key === "task") return attribute.value;
    }
  }
  throw new Error(`the task was committed (${committed.hash}) but its id is not in its events`);
}
