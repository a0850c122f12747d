// Site compliance in the /map viewer: draw a polygon (click the vertices, then "Run" or a double
// click), run the site-compliance process on this server and show its verdict and areas.
const EXECUTE = "/processes/site-compliance/execution";
const SOURCE = "compliance-site";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function ringOf(points) {
  return points.length ? [...points, points[0]] : [];
}

function siteGeoJSON(points) {
  if (points.length < 3) {
    return { type: "FeatureCollection", features: points.length ? [{ type: "Feature", properties: {},
      geometry: { type: "LineString", coordinates: points.length > 1 ? points : [points[0], points[0]] } }] : [] };
  }
  return { type: "FeatureCollection", features: [{ type: "Feature", properties: {},
    geometry: { type: "Polygon", coordinates: [ringOf(points)] } }] };
}

function areaTable(rows) {
  const table = el("table");
  for (const r of rows) {
    table.append(el("tr", {}, el("th", { text: `${r.code} ${r.name || ""}` }),
      el("td", { text: `${r.area_m2.toFixed(2)} m² (${r.percent}%)` })));
  }
  return table;
}

function showReport(out, report) {
  out.replaceChildren();
  out.append(el("p", { class: `verdict verdict-${report.verdict}`, "data-verdict": report.verdict,
    text: `Verdict 结论: ${report.verdict}` }));
  out.append(el("p", { text: `Site 用地: ${report.site.area_m2.toFixed(2)} m²` }));
  const reasons = el("ul", { class: "reasons" });
  for (const r of report.reasons) reasons.append(el("li", { text: r.reason }));
  out.append(reasons);
  for (const [id, layer] of Object.entries(report.layers)) {
    const key = Object.keys(layer).find((k) => k.startsWith("by_"));
    out.append(el("h3", { "data-layer": id, text: `${id}: ${layer.overlap_m2.toFixed(2)} m²` }));
    if (key) out.append(areaTable(layer[key]));
  }
  if (report.unavailable_layers.length) {
    out.append(el("p", { class: "muted", text: `Not available 无权限: ${report.unavailable_layers.join(", ")}` }));
  }
}

// Wire the "Site compliance" panel section to the map. ``keyHeaders(url)`` gives the key header.
export function setupCompliance(map, base, keyHeaders) {
  const start = document.getElementById("draw-site");
  const runButton = document.getElementById("run-site");
  const use = document.getElementById("planned-use");
  const out = document.getElementById("compliance");
  let points = [];
  let drawing = false;
  map.addSource(SOURCE, { type: "geojson", data: siteGeoJSON([]) });
  map.addLayer({ id: "compliance-fill", type: "fill", source: SOURCE, filter: ["==", "$type", "Polygon"],
    paint: { "fill-color": "#d62728", "fill-opacity": 0.25 } });
  map.addLayer({ id: "compliance-line", type: "line", source: SOURCE,
    paint: { "line-color": "#d62728", "line-width": 2 } });
  const redraw = () => map.getSource(SOURCE).setData(siteGeoJSON(points));

  async function run() {
    if (points.length < 3) return;
    drawing = false;
    map.doubleClickZoom.enable();
    start.textContent = "Draw site 绘制用地";
    runButton.disabled = true;
    out.textContent = "Running… 分析中…";
    const inputs = { geometry: { type: "Polygon", coordinates: [ringOf(points)] } };
    if (use.value) inputs.planned_use = use.value;
    const url = base + EXECUTE;
    try {
      const response = await fetch(url, { method: "POST", body: JSON.stringify({ inputs }),
        headers: { "Content-Type": "application/json", Accept: "application/json", ...keyHeaders(url) } });
      const body = await response.json();
      if (!response.ok) out.replaceChildren(el("p", { class: "error", text: body.description }));
      else showReport(out, body);
    } catch (error) {
      out.replaceChildren(el("p", { class: "error", text: String(error) }));
    }
  }

  start.addEventListener("click", () => {
    drawing = true;
    points = [];
    redraw();
    map.doubleClickZoom.disable();
    start.textContent = "Click the corners… 点击拐点…";
    runButton.disabled = false;
    out.textContent = "";
  });
  runButton.addEventListener("click", run);
  map.on("click", (event) => {
    if (!drawing) return;
    points.push([event.lngLat.lng, event.lngLat.lat]);
    redraw();
  });
  map.on("dblclick", (event) => {
    if (drawing) { event.preventDefault(); run(); }
  });
  return { isDrawing: () => drawing };
}
