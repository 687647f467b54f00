// The UI's entry: the router (#/page/arg), the search box and the live indicator.

import { h, replace, errorBox } from "./dom.js";
import { Live, call } from "./rpc.js";
import { chainPage, blockPage, txPage, accountPage, resolveSearch } from "./chain.js";
import { marketPage, taskPage } from "./market.js";
import { blobPage, datasetsPage, datasetPage } from "./blobs.js";
import { walletPage } from "./wallet.js";

const ROUTES = {
  "": chainPage,
  chain: chainPage,
  block: blockPage,
  tx: txPage,
  account: accountPage,
  market: marketPage,
  task: taskPage,
  blob: blobPage,
  datasets: datasetsPage,
  dataset: datasetPage,
  wallet: walletPage,
};

const view = document.getElementById("view");
const live = new Live();
let leave = null; // the shown page's unsubscribe
let shown = 0; // which navigation the page being drawn belongs to

function parseHash() {
  try {
    return location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  } catch {
    return [null]; // a malformed escape: no page
  }
}

// Each navigation draws into a container of its own: a page still loading when the user
// moves on goes on drawing into a container that is no longer shown.
async function route() {
  const [name, ...args] = parseHash();
  if (leave) leave();
  leave = null;
  const navigation = ++shown;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name || "chain"}`);
  }
  const container = h("div", { class: "page" }, h("p", { class: "muted" }, "loading..."));
  replace(view, container);
  delete view.dataset.page;
  const page = name !== null && Object.hasOwn(ROUTES, name) ? ROUTES[name] : null;
  if (!page) return replace(container, errorBox(`no page ${String(name)}`));
  try {
    const unsubscribe = await page(container, live, ...args);
    const stop = typeof unsubscribe === "function" ? unsubscribe : null;
    if (navigation === shown) leave = stop;
    else if (stop) stop();
  } catch (error) {
    replace(container, errorBox(error));
  }
  if (navigation === shown) view.dataset.page = name || "chain";
}

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("search-input");
  try {
    const target = await resolveSearch(input.value);
    if (target === location.hash) route(); // the page shown: drawn again
    else location.hash = target;
  } catch (error) {
    replace(view, errorBox(error));
  }
});

const indicator = document.getElementById("live");
live.on("state", (state) => {
  indicator.textContent = state;
  indicator.className = state === "live" ? "live" : "offline";
});
live.on("block", (value) => {
  document.getElementById("head-height").textContent = value.block.header.height;
});

call("status").then(
  (status) => {
    document.getElementById("node-name").textContent = `${status.node_info.moniker} on ${status.node_info.network}`;
    document.getElementById("head-height").textContent = status.sync_info.latest_block_height;
  },
  (error) => replace(view, errorBox(error)),
);

window.addEventListener("hashchange", route);
route();
