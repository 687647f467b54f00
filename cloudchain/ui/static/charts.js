// Bar charts drawn as SVG from [label, value] rows; labels and values go in as text.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

export function barChart(title, rows) {
  const barHeight = 22;
  const height = Math.max(1, rows.length) * (barHeight + 6) + 8;
  const max = Math.max(1, ...rows.map(([, value]) => Number(value)));
  const chart = svg("svg", {
    viewBox: `0 0 320 ${height}`,
    role: "img",
    "aria-label": title,
    class: "chart",
  });
  chart.append(svg("title", {}, title));
  rows.forEach(([label, value], i) => {
    const y = 4 + i * (barHeight + 6);
    const width = Math.max(1, (Number(value) / max) * 150);
    chart.append(svg("text", { x: 0, y: y + 15, class: "chart-label" }, String(label).slice(0, 14)));
    chart.append(svg("rect", { x: 100, y, width, height: barHeight, rx: 3, class: "chart-bar" }));
    chart.append(
      svg("text", { x: 104 + width, y: y + 15, class: "chart-value" }, Number(value).toLocaleString("en-US")),
    );
  });
  if (!rows.length) chart.append(svg("text", { x: 0, y: 20, class: "chart-label" }, "nothing yet"));
  return chart;
}
