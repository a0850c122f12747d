// The viewer's legend, read from the style being drawn (so it always matches the map): the land-use
// classes of the land survey and planning fills (a `match` on a code, with array labels) named from the
// code lists, and the control lines with their colour, dash pattern and tint.

// A DOM element with attributes (`text` sets its text) and children.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// [[code, colour], ...] of a fill-color written as ["match", ["get", field], [codes], colour, ..., default].
function matchEntries(expression) {
  if (!Array.isArray(expression) || expression[0] !== "match") return [];
  const out = [];
  for (let i = 2; i < expression.length - 1; i += 2) {
    const labels = Array.isArray(expression[i]) ? expression[i] : [expression[i]];
    for (const code of labels) out.push([String(code), expression[i + 1]]);
  }
  return out;
}

function swatch(fill, line, dashed) {
  const box = el("span", { class: "swatch" });
  if (fill) box.style.background = fill;
  if (line) box.style.border = `2px ${dashed ? "dashed" : "solid"} ${line}`;
  return box;
}

function classSection(title, entries, names) {
  const list = el("ul", { class: "legend-list" });
  for (const [code, colour] of entries) {
    list.append(el("li", { "data-code": code }, swatch(colour), `${code} ${names[code] || ""}`));
  }
  return el("details", { open: "" }, el("summary", { text: title }), list);
}

// The type a layer's filter picks: ["==", ["get", "line_type"], "<type>"].
function filterValue(layer) {
  const f = layer.filter;
  return Array.isArray(f) && f[0] === "==" ? f[2] : null;
}

function controlLineSection(layers, names) {
  const list = el("ul", { class: "legend-list" });
  for (const line of layers.filter((l) => l["source-layer"] === "control_lines" && l.type === "line")) {
    const type = filterValue(line);
    const tint = layers.find((l) => l.type === "fill" && l["source-layer"] === "control_lines" && filterValue(l) === type);
    const fill = tint && tint.paint["fill-opacity"] >= 0.1 ? tint.paint["fill-color"] : null;
    const paint = line.paint || {};
    list.append(el("li", { "data-code": type }, swatch(fill, paint["line-color"], Boolean(paint["line-dasharray"])),
      names[type] || type));
  }
  return el("details", { open: "" }, el("summary", { text: "三区三线 Control lines" }), list);
}

export function buildLegend(layers, names, container) {
  const fillOf = (collection) => layers.find((l) => l["source-layer"] === collection && l.type === "fill");
  const survey = fillOf("land_survey");
  if (survey) {
    container.append(classSection("三调地类 Land survey classes",
      matchEntries(survey.paint["fill-color"]), names.landSurvey));
  }
  const planning = fillOf("planning_zones");
  if (planning) {
    container.append(classSection("规划用途 Planning uses", matchEntries(planning.paint["fill-color"]), names.planning));
  }
  if (layers.some((l) => l["source-layer"] === "control_lines")) {
    container.append(controlLineSection(layers, names.controlLines));
  }
}
