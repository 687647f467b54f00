// The market: providers, tasks moving live, SLA records, penalties, disputes, rewards
// per epoch, fairness; and one task's page.

import { h, link, table, fields, section, replace, stat, errorBox, CID_PATTERN } from "./dom.js";
import { amount, bps, pretty, short, timeNs } from "./format.js";
import { call, query } from "./rpc.js";
import { barChart } from "./charts.js";

const MAX_PAGES = 10; // of a listing query (each at most the market's max_tasks_listed)
const TASKS_SHOWN = 100;
const FINAL_STATES = ["refunded", "resolved", "settled"]; // market/lifecycle.py's FINAL
const EPOCHS_SHOWN = 5; // of those that minted anything
const EPOCHS_SCANNED = 50; // back from the latest, at most
const REFRESH_BLOCKS = 1; // the tasks are read again at every block

export async function marketPage(view, live) {
  const parts = {
    stats: h("div", { class: "stats", id: "market-stats" }),
    charts: h("div", { class: "charts" }),
    providers: h("div", { id: "providers" }),
    tasks: h("div", { id: "tasks" }),
    sla: h("div", { id: "sla" }),
    penalties: h("div", { id: "penalties" }),
    disputes: h("div", { id: "disputes" }),
    rewards: h("div", { id: "rewards" }),
    prices: h("div", { id: "prices" }),
    oracles: h("div", { id: "oracles" }),
  };
  const problem = h("div", { id: "market-problem" });
  replace(
    view,
    problem,
    parts.stats,
    section("Charts", parts.charts),
    section("Providers", parts.providers),
    section("Tasks", parts.tasks),
    section("SLA records", parts.sla),
    section("Penalties", parts.penalties),
    section("Disputes", parts.disputes),
    section("Rewards per epoch", parts.rewards),
    section("Prices", parts.prices),
    section("Oracles", parts.oracles),
  );
  await drawMarket(parts);
  let blocks = 0;
  let drawing = false;
  const off = live.on("block", async () => {
    blocks += 1;
    if (drawing || blocks % REFRESH_BLOCKS) return;
    drawing = true;
    try {
      await drawMarket(parts);
      replace(problem);
    } catch (error) {
      replace(problem, errorBox(`the market could not be read again: ${error.message}`));
    } finally {
      drawing = false;
    }
  });
  return off;
}

// Every page of a listing query (at most MAX_PAGES): `after` the last item's `key`.
async function allPages(path, field, key, height) {
  const items = [];
  let after = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const listed = (await query(path, after ? `after=${after}` : "", height))[field];
    items.push(...listed);
    if (!listed.length) return { items, complete: true };
    after = String(listed[listed.length - 1][key]);
  }
  return { items, complete: false };
}

// Every figure of one drawing is read at one height: none straddles a block.
async function drawMarket(parts) {
  const height = Number((await call("status")).sync_info.latest_block_height);
  const [stats, providerPages, taskPages, prices, oracles, params] = await Promise.all([
    query("/market/stats", "", height),
    allPages("/market/providers", "providers", "address", height),
    allPages("/market/tasks", "tasks", "id", height),
    query("/market/prices", "", height),
    query("/market/oracles", "", height),
    query("/market/params", "", height),
  ]);
  const providers = { providers: providerPages.items };
  const names = {};
  for (const p of providers.providers) names[p.address] = p.name;
  const accounts = await Promise.all(providers.providers.map((p) => query("/market/account", p.address, height)));
  const taskList = taskPages.items;
  const counted = taskPages.complete ? "" : ` (the first ${taskList.length})`;
  replace(
    parts.stats,
    stat("Tasks", `${taskList.length}${taskPages.complete ? "" : "+"}`),
    stat("Settled", stats.tasks_settled),
    stat("SLA compliance", bps(stats.sla_compliance_bps)),
    stat("Jain's index, providers", bps(stats.fairness_providers_bps), "jain-providers"),
    stat("Jain's index, requesters", bps(stats.fairness_requesters_bps)),
  );
  const perState = {};
  for (const t of taskList) perState[t.state] = (perState[t.state] || 0) + 1;
  replace(
    parts.charts,
    h("figure", null, h("figcaption", null, "Tokens per provider"), barChart("Tokens per provider", stats.providers.map((p) => [p.name, p.tokens]))),
    h("figure", null, h("figcaption", null, "Tasks per state"), barChart("Tasks per state", Object.entries(perState).sort())),
  );
  replace(
    parts.providers,
    table(
      ["Name", "Address", "Tier", "Capacity", "Price", "Stake", "Reputation", "Uptime (oracles)", "Status", "In flight"],
      providers.providers.map((p, i) => {
        const offers = Object.entries(p.offers);
        const stats = accounts[i].provider;
        const uptime = stats.attested ? bps(Math.floor(stats.uptime_sum / stats.attested)) : "-";
        return [
          p.name,
          link(h("code", null, short(p.address, 6)), "account", p.address),
          p.tier,
          offers.map(([cls, o]) => `${o.units} ${cls}`).join(", "),
          offers.map(([cls, o]) => `${o.price}/${cls}`).join(", "),
          amount(p.stake),
          bps(p.reputation),
          uptime,
          p.status,
          String(Object.values(p.in_flight).reduce((a, b) => a + b, 0)),
        ];
      }),
    ),
  );
  const newest = [...taskList].reverse().slice(0, TASKS_SHOWN);
  replace(
    parts.tasks,
    h("p", { class: "muted" }, `${taskList.length} tasks${counted}; the newest ${newest.length} below, newest first`),
    table(
      ["Task", "Kind", "State", "Requester", "Provider", "Units", "Price", "Paid", "Penalty"],
      newest.map((t) => taskRow(t, names)),
      { id: "task-table" },
    ),
  );
  const recent = [...taskList].reverse(); // newest first, as the tables read
  const judged = recent.filter((t) => t.outcome).slice(0, TASKS_SHOWN);
  replace(
    parts.sla,
    table(
      ["Task", "Provider", "Completed", "Uptime", "Latency", "Violations", "Attestations"],
      judged.map((t) => [
        link(String(t.id), "task", t.id),
        names[t.provider] || short(t.provider, 6),
        t.outcome.completed ? "yes" : "no",
        bps(t.outcome.uptime_bps),
        `${t.outcome.latency_ms} ms`,
        String(t.outcome.violations),
        String(Object.keys(t.attestations).length),
      ]),
    ),
  );
  replace(
    parts.penalties,
    table(
      ["Task", "Provider", "Penalty", "Stake slashed"],
      recent
        .filter((t) => (t.outcome && t.outcome.penalty > 0) || (t.payout && t.payout.slashed > 0))
        .slice(0, TASKS_SHOWN)
        .map((t) => [link(String(t.id), "task", t.id), names[t.provider] || short(t.provider, 6), amount(t.outcome ? t.outcome.penalty : 0), amount(t.payout ? t.payout.slashed : 0)]),
    ),
  );
  replace(
    parts.disputes,
    table(
      ["Task", "By", "Reason", "Votes", "Upheld"],
      recent
        .filter((t) => t.dispute)
        .slice(0, TASKS_SHOWN)
        .map((t) => [link(String(t.id), "task", t.id), t.dispute.by, t.dispute.reason, String(Object.keys(t.dispute.votes).length), t.dispute.upheld === undefined ? "open" : String(t.dispute.upheld)]),
    ),
  );
  replace(parts.rewards, await rewardsTable(params.epoch_blocks, names, height));
  replace(
    parts.prices,
    table(
      ["Class", "Reference price", "Utilisation", "Capacity", "In flight"],
      prices.classes.map((c) => [c.resource_class, c.price === undefined ? "-" : amount(c.price), bps(c.utilisation_bps), String(c.capacity), String(c.in_flight)]),
    ),
  );
  replace(
    parts.oracles,
    h("p", null, `Quorum ${oracles.quorum} of ${oracles.oracles.length}`),
    table(["Oracle"], oracles.oracles.map((o) => [link(h("code", null, typeof o === "string" ? o : o.address), "account", typeof o === "string" ? o : o.address)])),
  );
}


function taskRow(t, names) {
  return h(
    "tr",
    { "data-task": t.id, "data-state": t.state },
    [
      link(String(t.id), "task", t.id),
      t.kind,
      h("span", { class: `state state-${t.state}` }, t.state),
      link(h("code", null, short(t.requester, 6)), "account", t.requester),
      t.provider ? names[t.provider] || short(t.provider, 6) : "-",
      String(t.units),
      t.price ? amount(t.price) : amount(t.max_price),
      t.payout ? amount(t.payout.provider) : "-",
      t.outcome ? amount(t.outcome.penalty) : "-",
    ].map((cell) => h("td", null, cell)),
  );
}

const epochEvents = new Map(); // height -> its reward events: committed, they never change

async function rewardEvents(at) {
  if (!epochEvents.has(at)) {
    const results = await call("block_results", { height: String(at) });
    const events = (results.finalize_block_events || [])
      .filter((e) => e.type === "market_reward" || e.type === "market_epoch")
      .map((e) => ({ type: e.type, ...Object.fromEntries(e.attributes.map((x) => [x.key, x.value])) }));
    epochEvents.set(at, events);
  }
  return epochEvents.get(at);
}

// The last epochs that minted anything, from their blocks' market_reward events.
async function rewardsTable(epochBlocks, names, height) {
  const last = Math.floor(height / epochBlocks) * epochBlocks;
  const rows = [];
  let shown = 0;
  for (let at = last; at > 0 && at > last - EPOCHS_SCANNED * epochBlocks && shown < EPOCHS_SHOWN; at -= epochBlocks) {
    const events = await rewardEvents(at);
    const epoch = events.find((e) => e.type === "market_epoch");
    if (!epoch || epoch.minted === "0") continue;
    shown += 1;
    for (const e of events.filter((x) => x.type === "market_reward")) {
      rows.push([e.epoch, link(String(at), "block", at), names[e.recipient] || short(e.recipient, 6), e.role + (e.basis ? ` (${e.basis})` : ""), amount(e.amount)]);
    }
    rows.push([epoch.epoch, link(String(at), "block", at), "in all", "", amount(epoch.minted)]);
  }
  return table(["Epoch", "Block", "Recipient", "Role", "Minted"], rows);
}

export async function taskPage(view, live, idText) {
  const draw = async () => {
    const t = await query("/market/task", idText);
    const manifestBox = h("div", { id: "manifest" });
    const outputsBox = h("div", { id: "outputs" });
    replace(
      view,
      section(
        `Task ${t.id}`,
        fields([
          ["State", h("span", { class: `state state-${t.state}`, id: "task-state" }, t.state)],
          ["Kind", t.kind],
          ["Requester", link(h("code", null, t.requester), "account", t.requester)],
          ["Provider", t.provider ? link(h("code", null, t.provider), "account", t.provider) : "-"],
          ["Resource class", t.resource_class],
          ["Units", `${t.units} requested, ${t.units_used} used`],
          ["Price", `${amount(t.price || t.max_price)} a unit (at most ${amount(t.max_price)})`],
          ["Deposit", amount(t.deposit)],
          ["Deadline", timeNs(t.deadline_ns)],
          ["SLA", `uptime >= ${bps(t.min_uptime_bps)}, latency <= ${t.max_latency_ms} ms, penalty ${amount(t.penalty)} a violation`],
          t.dataset ? ["Dataset", link(String(t.dataset), "dataset", t.dataset)] : null,
        ]),
      ),
      section("History", h("div", { id: "history" }, table(["State", "Height"], t.history.map(historyEntry).map(([state, at]) => [state, link(String(at), "block", at)])))),
      section("Manifest", manifestBox),
      section("Inputs", table(["CID"], t.inputs.map((cid) => [blobLinks(cid)]))),
      section("Outputs and logs", outputsBox),
      section(
        "Attestations",
        table(
          ["Oracle", "Completed", "Units", "Uptime", "Latency", "Height"],
          Object.entries(t.attestations).map(([oracle, a]) => [short(oracle, 6), a.completed ? "yes" : "no", String(a.units), bps(a.uptime_bps), `${a.latency_ms} ms`, String(a.at)]),
        ),
      ),
      section(
        "Payments",
        fields([
          ["Outcome", t.outcome ? h("pre", { class: "args" }, pretty(t.outcome)) : "not yet"],
          ["Payout", t.payout ? h("pre", { class: "args" }, pretty(t.payout)) : "not yet"],
          ["Dispute", t.dispute ? h("pre", { class: "args" }, pretty(t.dispute)) : "none"],
        ]),
      ),
    );
    await showManifest(manifestBox, t.inputs[0]);
    await showOutputs(outputsBox, t.output);
    return t.state;
  };
  let shownState = await draw();
  let drawing = false;
  return live.on("block", async () => {
    if (drawing || FINAL_STATES.includes(shownState)) return; // a final task moves no more
    drawing = true;
    try {
      const t = await query("/market/task", idText);
      if (t.state !== shownState) shownState = await draw();
    } catch (error) {
      view.prepend(errorBox(`the task could not be read again: ${error.message}`));
    } finally {
      drawing = false;
    }
  });
}

// A history entry as the chain stores it: [state, height] (a record of two fields).
function historyEntry(entry) {
  return Array.isArray(entry) ? entry : [entry.state, entry.height];
}

function blobLinks(cid) {
  return h("span", null, link(h("code", null, cid), "blob", cid), " ", h("a", { href: `/blobs/${cid}`, download: cid }, "download"));
}

// A blob's text if this node holds it whole (blob_stat first: a GET of a blob that is
// nowhere would be a 404), else null.
async function blobText(cid, limit = 256 * 1024) {
  try {
    const stat = await call("blob_stat", { cid });
    if (!stat.complete || stat.size > limit) return null;
  } catch {
    return null;
  }
  return fetchText(cid);
}

async function fetchText(cid) {
  if (!CID_PATTERN.test(cid)) throw new Error(`not a CID: ${cid}`);
  const response = await fetch(`/blobs/${cid}`);
  if (!response.ok) throw new Error(`${cid}: ${(await response.json()).error}`);
  return response.text();
}

// A blob held by other nodes: fetched through this node's gateway (which asks its
// peers, as an IPFS gateway does) when the user asks.
function fetchButton(cid, into, render = async (text) => text) {
  const button = h("button", { type: "button" }, "fetch it through this node");
  button.addEventListener("click", async () => {
    try {
      replace(into, await render(await fetchText(cid)));
    } catch (error) {
      replace(into, String(error.message));
    }
  });
  return h("span", null, "not on this node: ", button);
}

async function showManifest(box, cid) {
  const text = cid ? await blobText(cid) : null;
  if (text === null) return replace(box, cid ? fetchButton(cid, box) : "none");
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    shown = text;
  }
  replace(box, h("pre", { class: "args" }, shown));
}

async function showOutputs(box, output) {
  if (!output || !output.length) return replace(box, "none yet");
  const children = [table(["CID"], output.map((cid) => [blobLinks(cid)]))];
  const index = h("div");
  const text = await blobText(output[0]);
  if (text === null) replace(index, "the result index: ", fetchButton(output[0], index, resultIndex));
  else replace(index, await resultIndex(text));
  replace(box, children, index);
}

// The result index a provider published (workload/result.py), with its files and log;
// or nothing if the first output is not one.
async function resultIndex(text) {
  let index;
  try {
    index = JSON.parse(text);
  } catch {
    return [];
  }
  if (!index || typeof index !== "object") return [];
  const shown = [
    fields([
      ["Status", String(index.status)],
      ["Message", String(index.message || "-")],
      ["CPU", `${index.cpu_ms} ms`],
      ["Executor", String(index.executor)],
    ]),
    table(["File", "CID"], Object.entries(index.files || {}).map(([name, cid]) => [name, blobLinks(String(cid))])),
  ];
  if (typeof index.log === "string" && index.log) {
    const log = await blobText(index.log, 64 * 1024);
    const pre = h("pre", { class: "log", id: "task-log" });
    replace(pre, log === null ? fetchButton(index.log, pre) : log);
    shown.push(h("h3", null, "Log"), pre);
  }
  return shown;
}
