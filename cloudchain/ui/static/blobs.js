// Blobs by CID (what this node holds, where it is anchored, its DAG) and datasets with
// their grants, budget and audit trail.

import { h, link, table, fields, section, replace } from "./dom.js";
import { amount, pretty, short } from "./format.js";
import { call, query } from "./rpc.js";

const DATASETS_LISTED = 50;

export async function blobPage(view, live, cid) {
  let stat = null;
  let statError = "";
  try {
    stat = await call("blob_stat", { cid });
  } catch (error) {
    statError = error.message;
  }
  let anchors = [];
  try {
    anchors = (await query("/storage/blob", cid)).anchors;
  } catch {
    anchors = []; // not anchored
  }
  const dag = stat ? await call("blob_dag", { cid, max_nodes: "200" }) : null;
  replace(
    view,
    section(
      `Blob ${short(cid, 10)}`,
      fields([
        ["CID", h("code", null, cid)],
        stat ? ["Size", `${amount(stat.size)} bytes`] : ["On this node", statError],
        stat ? ["Blocks", `${stat.blocks_local} here, ${stat.blocks_missing} missing`] : null,
        stat ? ["Kept", stat.pinned ? "pinned" : stat.leased ? "leased" : "neither (the next GC may drop it)"] : null,
        ["Download", h("a", { href: `/blobs/${cid}`, download: cid }, "through this node's gateway")],
      ]),
    ),
    section(
      "Anchors",
      table(
        ["Owner", "Record"],
        anchors.map((a) => [a.owner ? link(h("code", null, short(a.owner, 6)), "account", a.owner) : "-", h("pre", { class: "args" }, pretty(a))]),
      ),
    ),
    section(
      dag ? `DAG (${dag.nodes.length} blocks${dag.truncated ? ", more not shown" : ""})` : "DAG",
      dag ? dagTree(dag) : "not on this node",
    ),
  );
}

function dagTree(dag) {
  const byCid = new Map(dag.nodes.map((node) => [node.cid, node]));
  const shown = new Set();
  const item = (cid, bytes) => {
    const node = byCid.get(cid);
    const label = [
      link(h("code", null, short(cid, 8)), "blob", cid),
      node ? ` ${node.codec}, ${amount(node.file_bytes || bytes)} bytes${node.present ? "" : " (not here)"}` : ` ${amount(bytes)} bytes`,
    ];
    if (!node || shown.has(cid) || !node.links.length) return h("li", null, label);
    shown.add(cid);
    return h("li", null, label, h("ul", null, node.links.map((l) => item(l.cid, l.bytes))));
  };
  const root = dag.nodes[0];
  return h("ul", { class: "dag", id: "dag" }, item(root.cid, root.file_bytes));
}

export async function datasetsPage(view) {
  const rows = [];
  for (let id = 1; id <= DATASETS_LISTED; id++) {
    let dataset;
    try {
      dataset = await query("/access/dataset", String(id));
    } catch {
      break; // ids are consecutive: the first missing one is the end
    }
    rows.push([link(String(id), "dataset", id), dataset.status, link(h("code", null, short(dataset.owner, 6)), "account", dataset.owner), amount(dataset.remaining_micro_eps)]);
  }
  replace(view, section("Datasets", table(["Dataset", "Status", "Owner", "Budget left (micro-epsilon)"], rows)));
}

export async function datasetPage(view, live, id) {
  const dataset = await query("/access/dataset", id);
  const grants = (await query("/access/grants", `dataset=${id}`)).grants;
  const audit = (await query("/access/audit", id)).openings;
  replace(
    view,
    section(`Dataset ${id}`, h("pre", { class: "args" }, pretty(dataset))),
    section("Grants", table(["Grant"], grants.map((g) => [h("pre", { class: "args" }, pretty(g))]))),
    section("Openings (audit)", table(["Opening"], audit.map((o) => [h("pre", { class: "args" }, pretty(o))]))),
  );
}
