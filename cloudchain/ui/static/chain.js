// The chain: its live head, validators, latest blocks and transactions; a block, a
// transaction and an account; search by height, hash, address or CID.

import { h, link, table, fields, section, replace, stat, CID_PATTERN } from "./dom.js";
import { ago, amount, pretty, rfc3339ToMs, short } from "./format.js";
import { call, query, RPCError } from "./rpc.js";
import { readTx } from "./tx.js";

const LATEST = 12; // blocks and transactions listed
const SIGNED_LOOKBACK = 10; // commits read for each validator's last signed height

export async function chainPage(view, live) {
  // Events that arrive while the page reads its first state are kept, then shown if
  // they are newer than what it read: no block is missed between the two.
  const early = [];
  let onBlock = null;
  let onTx = null;
  const offBlock = live.on("block", (value) => (onBlock ? onBlock(value) : early.push(["block", value])));
  const offTx = live.on("tx", (value) => (onTx ? onTx(value) : early.push(["tx", value])));
  const leave = () => {
    offBlock();
    offTx();
  };
  try {
    const ticker = await drawChain(view, early, (block, tx) => {
      onBlock = block;
      onTx = tx;
    });
    return () => {
      leave();
      clearInterval(ticker);
    };
  } catch (error) {
    leave();
    throw error;
  }
}

async function drawChain(view, early, follow) {
  const status = await call("status");
  const height = Number(status.sync_info.latest_block_height);
  const head = h("div", { class: "stats" });
  const validatorsBox = h("div");
  const blocksBody = h("tbody", { id: "blocks" });
  const txsBody = h("tbody", { id: "txs" });
  replace(
    view,
    head,
    section("Validators", validatorsBox),
    section("Latest blocks", blockTable(blocksBody)),
    section("Latest transactions", txTable(txsBody)),
  );

  const metas = height
    ? (await call("blockchain", { minHeight: String(Math.max(1, height - 19)), maxHeight: String(height) }))
        .block_metas
    : [];
  const times = metas.map((m) => rfc3339ToMs(m.header.time)).sort((a, b) => a - b);
  const state = {
    height,
    time: times.length ? times[times.length - 1] : 0,
    intervals: times.slice(1).map((t, i) => t - times[i]),
    chainId: status.node_info.network,
  };
  const drawHead = () =>
    replace(
      head,
      stat("Height", state.height, "height"),
      stat("Block interval", interval(state.intervals), "interval"),
      stat("Last block", state.time ? ago(state.time) : "-", "last-block"),
      stat("Chain", state.chainId),
      stat("Node", status.node_info.moniker),
    );
  drawHead();
  for (const meta of metas.slice(0, LATEST)) blocksBody.append(blockRow(meta.header, meta.num_txs));

  const signed = await lastSigned(height);
  const validators = (await call("validators", { per_page: "100" })).validators;
  const names = await validatorNames();
  const drawValidators = () =>
    replace(
      validatorsBox,
      table(
        ["Validator", "Address", "Voting power", "Last signed"],
        validators.map((v) => [
          names[v.address] || "-",
          h("code", null, short(v.address, 6)),
          v.voting_power,
          h("span", { "data-validator": v.address }, signed[v.address] ? String(signed[v.address]) : "-"),
        ]),
      ),
    );
  drawValidators();

  const found = height
    ? await call("tx_search", {
        query: `tx.height >= ${Math.max(1, height - 500)} AND tx.height <= ${height}`,
        order_by: "desc",
        per_page: String(LATEST),
      })
    : { txs: [] };
  for (const item of found.txs) txsBody.append(await txRow(item.hash, item.height, item.tx, item.tx_result));

  const showBlock = (value) => {
    const header = value.block.header;
    if (Number(header.height) <= state.height) return; // read already
    state.height = Number(header.height);
    const now = rfc3339ToMs(header.time);
    if (state.time) state.intervals = [...state.intervals.slice(-18), now - state.time];
    state.time = now;
    drawHead();
    blocksBody.prepend(blockRow(header, value.block.data.txs.length));
    while (blocksBody.children.length > LATEST) blocksBody.lastChild.remove();
    for (const sig of value.block.last_commit.signatures) {
      if (sig.validator_address) signed[sig.validator_address] = Number(value.block.last_commit.height);
    }
    drawValidators();
  };
  // Tx rows are made in order: each waits for the one before (their hashes are async).
  let txRows = Promise.resolve();
  const showTx = (value) => {
    if (Number(value.height) <= height) return; // tx_search read it
    txRows = txRows.then(async () => {
      txsBody.prepend(await txRow(null, value.height, value.tx, value.result));
      while (txsBody.children.length > LATEST) txsBody.lastChild.remove();
    }).catch(() => {}); // a transaction that cannot be read is left out, not thrown
  };
  for (const [kind, value] of early.splice(0)) (kind === "block" ? showBlock : showTx)(value);
  follow(showBlock, showTx);
  return setInterval(drawHead, 1000);
}


function interval(intervals) {
  if (!intervals.length) return "-";
  const sorted = [...intervals].sort((a, b) => a - b);
  return `${(sorted[Math.floor(sorted.length / 2)] / 1000).toFixed(2)} s`;
}

async function lastSigned(height) {
  const signed = {};
  for (let at = height; at > Math.max(0, height - SIGNED_LOOKBACK); at--) {
    const commit = (await call("commit", { height: String(at) })).signed_header.commit;
    for (const sig of commit.signatures) {
      if (sig.validator_address && !signed[sig.validator_address]) signed[sig.validator_address] = at;
    }
  }
  return signed;
}

async function validatorNames() {
  const genesis = (await call("genesis")).genesis;
  const names = {};
  for (const v of genesis.validators || []) names[v.address] = v.name;
  return names;
}

function blockTable(body) {
  return h("div", { class: "scroll" }, h("table", null, h("thead", null, h("tr", null, ["Height", "Time", "Txs", "Proposer"].map((n) => h("th", null, n)))), body));
}

function blockRow(header, txs) {
  return h(
    "tr",
    { "data-height": header.height },
    h("td", null, link(header.height, "block", header.height)),
    h("td", null, new Date(rfc3339ToMs(header.time)).toLocaleTimeString()),
    h("td", null, String(txs)),
    h("td", null, h("code", null, short(header.proposer_address, 6))),
  );
}

function txTable(body) {
  return h("div", { class: "scroll" }, h("table", null, h("thead", null, h("tr", null, ["Hash", "Height", "Call", "From", "Result"].map((n) => h("th", null, n)))), body));
}

async function txRow(hash, height, base64, result) {
  const tx = await readTx(base64);
  return h(
    "tr",
    { "data-tx": tx.hash },
    h("td", null, link(h("code", null, short(hash || tx.hash, 6)), "tx", hash || tx.hash)),
    h("td", null, link(String(height), "block", height)),
    h("td", null, `${tx.module}.${tx.method}`),
    h("td", null, link(h("code", null, short(tx.from, 6)), "account", tx.from)),
    h("td", null, resultBadge(result)),
  );
}

function resultBadge(result) {
  return result.code === 0
    ? h("span", { class: "ok" }, "ok")
    : h("span", { class: "bad", title: result.log }, `code ${result.code}`);
}

function eventsTable(events) {
  return table(
    ["Event", "Attributes"],
    events.map((e) => [e.type, h("div", null, e.attributes.map((a) => h("div", null, h("code", null, a.key), " = ", a.value)))]),
  );
}

export async function blockPage(view, live, heightText) {
  const block = await call("block", { height: heightText });
  const results = await call("block_results", { height: heightText });
  const header = block.block.header;
  const rows = [];
  for (const [i, base64] of block.block.data.txs.entries()) {
    const tx = await readTx(base64);
    const result = results.txs_results[i];
    rows.push([
      link(h("code", null, short(tx.hash, 6)), "tx", tx.hash),
      `${tx.module}.${tx.method}`,
      link(h("code", null, short(tx.from, 6)), "account", tx.from),
      h("pre", { class: "args" }, pretty(tx.args)),
      resultBadge(result),
      result.log,
    ]);
  }
  const height = Number(header.height);
  const latest = Number((await call("status")).sync_info.latest_block_height);
  replace(
    view,
    h("nav", { class: "pager" }, height > 1 ? link("< previous", "block", height - 1) : "", " ", height < latest ? link("next >", "block", height + 1) : ""),
    section(
      `Block ${header.height}`,
      fields([
        ["Hash", h("code", null, block.block_id.hash)],
        ["Time", header.time],
        ["Chain", header.chain_id],
        ["Proposer", h("code", null, header.proposer_address)],
        ["App hash", h("code", null, header.app_hash)],
        ["Last block", height > 1 ? link(h("code", null, short(header.last_block_id.hash, 8)), "block", height - 1) : "-"],
        ["Data hash", h("code", null, header.data_hash)],
        ["Validators hash", h("code", null, header.validators_hash)],
        ["Signatures", String(block.block.last_commit.signatures.filter((s) => s.block_id_flag === 2).length)],
        ["Evidence", String(block.block.evidence.evidence.length)],
      ]),
    ),
    section(`Transactions (${rows.length})`, table(["Hash", "Call", "From", "Args", "Result", "Log"], rows)),
    section("Block events", eventsTable(results.finalize_block_events || [])),
  );
}

export async function txPage(view, live, hash) {
  const found = await call("tx", { hash: "0x" + hash });
  const tx = await readTx(found.tx);
  const result = found.tx_result;
  replace(
    view,
    section(
      `Transaction ${short(found.hash, 10)}`,
      fields([
        ["Hash", h("code", null, found.hash)],
        ["Height", link(found.height, "block", found.height)],
        ["Index", String(found.index)],
        ["Module", tx.module],
        ["Method", tx.method],
        ["Sender", link(h("code", null, tx.from), "account", tx.from)],
        ["Nonce", String(tx.nonce)],
        ["Fee", amount(tx.fee)],
        ["Chain", tx.chain_id],
        ["Result", resultBadge(result)],
        ["Log", result.log || "-"],
        ["Codespace", result.codespace || "-"],
      ]),
    ),
    section("Arguments", h("pre", { class: "args", id: "tx-args" }, pretty(tx.args))),
    section("Events", eventsTable(result.events)),
  );
}

export async function accountPage(view, live, address) {
  if (!/^[0-9a-f]{40}$/.test(address)) throw new Error("an address is 40 lower-case hex characters");
  const balance = await query("/token/balance", address);
  const nonce = await query("/auth/nonce", address);
  const market = await query("/market/account", address);
  let provider = null;
  try {
    provider = await query("/market/provider", address);
  } catch {
    provider = null; // not a provider
  }
  const tasks = (await query("/market/tasks", `requester=${address}`)).tasks;
  // fee.payer: every transaction in a block pays its fee, also one whose call failed.
  const sent = await call("tx_search", { query: `fee.payer = '${address}'`, order_by: "desc", per_page: "20" });
  const txRows = [];
  for (const item of sent.txs) txRows.push(await txRow(item.hash, item.height, item.tx, item.tx_result));
  replace(
    view,
    section(
      "Account",
      fields([
        ["Address", h("code", null, address)],
        ["Balance", `${amount(balance.balance)} ${balance.denom}`],
        ["Transactions sent", String(nonce.nonce)],
        provider ? ["Provider", link(provider.name, "market")] : null,
        ["Provider profit", amount(market.profit)],
        ["Requester utility", amount(market.utility)],
      ]),
    ),
    section(
      "Tasks requested",
      table(
        ["Task", "Kind", "State", "Provider"],
        tasks.map((t) => [link(String(t.id), "task", t.id), t.kind, t.state, t.provider ? short(t.provider, 6) : "-"]),
      ),
    ),
    section("Market statistics", h("pre", { class: "args" }, pretty({ provider: market.provider, requester: market.requester, oracle: market.oracle }))),
    section(`Latest transactions sent (${sent.total_count})`, txTable(h("tbody", null, txRows))),
  );
}

// Where a search goes: a height, a tx or block hash, an address, a CID or "task N".
export async function resolveSearch(text) {
  const q = text.trim();
  if (/^\d+$/.test(q)) return `#/block/${q}`;
  const task = /^task\s*#?\s*(\d+)$/i.exec(q);
  if (task) return `#/task/${task[1]}`;
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(q)) {
    const hash = q.replace(/^0x/, "").toUpperCase();
    try {
      await call("tx", { hash: "0x" + hash });
      return `#/tx/${hash}`;
    } catch (error) {
      if (!(error instanceof RPCError)) throw error;
    }
    const block = await call("block_by_hash", { hash: "0x" + hash });
    if (block.block) return `#/block/${block.block.header.height}`;
    throw new Error(`no transaction or block has the hash ${short(hash, 8)}`);
  }
  if (/^[0-9a-fA-F]{40}$/.test(q)) return `#/account/${q.toLowerCase()}`;
  if (CID_PATTERN.test(q)) return `#/blob/${q}`;
  throw new Error("search for a height, a block or transaction hash, an address, a CID, or task N");
}
