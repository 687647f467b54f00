// Building the page from values: every value goes in as a text node, never as markup.
// Nothing in the UI sets innerHTML; a link's target is one of the UI's own routes or
// the node's blob gateway, whatever the value it was made from.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "href") el.setAttribute("href", safeHref(value));
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A CID as the blob store names one (CIDv0 base58, or CIDv1 base32).
export const CID_PATTERN = /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,200})$/;

// Only the UI's own routes, and the gateway's /blobs/CID for a well-formed CID: a value
// that says "/blobs/../blob_gc" links nowhere.
export function safeHref(target) {
  const text = String(target);
  if (text.startsWith("#/")) return text;
  const blob = /^\/blobs\/([^/?#]*)$/.exec(text);
  return blob && CID_PATTERN.test(blob[1]) ? text : "#/";
}

// A link to one of the UI's routes: `route("task", 5)` is #/task/5.
export function link(text, ...parts) {
  return h("a", { href: "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/") }, text);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      attrs,
      h("thead", null, h("tr", null, headers.map((name) => h("th", null, name)))),
      h(
        "tbody",
        null,
        rows.length
          ? rows.map((row) =>
              row instanceof Node ? row : h("tr", null, row.map((cell) => h("td", null, cell))),
            )
          : h("tr", null, h("td", { colspan: headers.length, class: "muted" }, "none")),
      ),
    ),
  );
}

// A definition list of [name, value] pairs.
export function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.filter(Boolean).map(([name, value]) => [h("dt", null, name), h("dd", null, value)]),
  );
}

// A figure of a page's head: its name above, its value below.
export function stat(name, value, id) {
  return h("div", { class: "stat" }, h("div", { class: "stat-name" }, name), h("div", { class: "stat-value", id }, String(value)));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error && error.message ? error.message : error));
}
