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

async function route() {
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = ROUTES[name];
  if (leave) leave();
  leave = null;
  const navigation = ++shown;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name || "chain"}`);
  }
  if (!page) return replace(view, errorBox(`no page ${name}`));
  replace(view, h("p", { class: "muted" }, "loading..."));
  try {
    const unsubscribe = await page(view, live, ...args);
    if (navigation === shown) leave = unsubscribe || null;
    else if (unsubscribe) unsubscribe();
  } catch (error) {
    if (navigation === shown) replace(view, errorBox(error));
  }
  if (navigation === shown) view.dataset.page = name || "chain";
}

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("search-input");
  try {
    location.hash = await resolveSearch(input.value);
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
