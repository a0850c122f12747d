// The /map viewer: draws this server's base map style with MapLibre GL JS (served by this
// server, next to this file), with a layer switcher, an imagery time switch, a tile grid choice
// and the properties of the features under a click. Every request goes to this server only.
import * as maplibregl from "../lib/maplibre-gl.mjs";
import { setupCompliance } from "./compliance.js";
import { buildLegend, el } from "./legend.js";

const mapEl = document.getElementById("map");
const config = JSON.parse(mapEl.dataset.config);
const titles = new Map(
  [...config.collections, ...config.imagery].map((c) => [c.id, c.title]),
);
const idFields = new Map(config.collections.map((c) => [c.id, c.idField]));
const RASTER_TYPES = new Set(["raster", "hillshade", "color-relief"]);
// A key given to the page (/map?api_key=...) goes with every request to this server, as a header,
// unless the browser is signed in by the session cookie (set by that very page): then no request
// and no link carries it, and it leaves the address bar too.
const pageParams = new URLSearchParams(window.location.search);
const apiKey = config.session ? null : pageParams.get("api_key");
if (config.session && pageParams.has("api_key")) {
  pageParams.delete("api_key");
  const query = pageParams.toString();
  window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`);
}

function keyHeaders(url) {
  return apiKey && url.startsWith(config.base) ? { "X-API-Key": apiKey } : {};
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

// Which collection a style layer draws: its source-layer, or its source for a raster layer.
function layerCollection(layer) {
  if (layer["source-layer"]) return layer["source-layer"];
  if (RASTER_TYPES.has(layer.type)) return layer.source;
  return null;
}

function imageryTiles(imagery, time) {
  const url = `${config.base}/collections/${encodeURIComponent(imagery.id)}/tiles/WebMercatorQuad/{z}/{y}/{x}`;
  const query = time ? `?f=jpeg&datetime=${encodeURIComponent(time)}` : "?f=jpeg";
  return [url + query];
}

// Imagery goes right above the opaque fills (land survey, planning), so that it is seen when switched
// on, and under every line, tint and label; off until switched on. Its extent is outlined from the
// start (dashed blue), so the map tells where imagery exists.
function imageryBefore(layers) {
  let last = -1;
  layers.forEach((l, i) => {
    const opacity = (l.paint || {})["fill-opacity"];
    if (l.type === "fill" && l.source && (opacity === undefined || opacity >= 0.5)) last = i;
  });
  const next = layers[last + 1] || layers.find((l) => l.source);
  return next && next.id;
}

function extentFeature(imagery) {
  const [w, s, e, n] = imagery.bounds;
  return {
    type: "Feature",
    properties: { id: imagery.id },
    geometry: { type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] },
  };
}

function addImagery(map) {
  const before = imageryBefore(map.getStyle().layers);
  for (const imagery of config.imagery) {
    map.addSource(imagery.id, {
      type: "raster",
      tiles: imageryTiles(imagery, imagery.times[0]),
      tileSize: 256,
      minzoom: imagery.minzoom,
      maxzoom: imagery.maxzoom,
      bounds: imagery.bounds,
    });
    map.addLayer(
      { id: `${imagery.id}-raster`, type: "raster", source: imagery.id, layout: { visibility: "none" } },
      before,
    );
  }
  if (!config.imagery.length) return;
  map.addSource("imagery-extent", {
    type: "geojson", data: { type: "FeatureCollection", features: config.imagery.map(extentFeature) },
  });
  map.addLayer({
    id: "imagery-extent", type: "line", source: "imagery-extent",
    paint: { "line-color": "#1565c0", "line-width": 1.5, "line-dasharray": [3, 2] },
  });
}

// The imagery panel: where each imagery collection exists, with a button to go there.
function showImageryExtents(map) {
  const list = document.getElementById("imagery-extents");
  if (!config.imagery.length) {
    list.append(el("li", { class: "muted", text: "No imagery. 无影像。" }));
    return;
  }
  for (const imagery of config.imagery) {
    const [w, s, e, n] = imagery.bounds;
    const go = el("button", { type: "button", "data-imagery": imagery.id, text: "Go 前往" });
    go.addEventListener("click", () => map.fitBounds(imagery.bounds, { padding: 20 }));
    const span = `${w.toFixed(4)}, ${s.toFixed(4)} – ${e.toFixed(4)}, ${n.toFixed(4)}`;
    list.append(el("li", {}, `${imagery.title.zh} `, el("span", { class: "en", text: imagery.title.en }), el("br"),
      el("span", { class: "extent", text: span }), " ", go));
  }
}

// Colours named in a paint value, plain or inside a match/interpolate expression.
function colorsIn(value, out = []) {
  if (typeof value === "string" && /^(#|rgb|hsl)/.test(value)) out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => colorsIn(v, out));
  return out;
}

// A legend swatch: one colour, or stripes of the first colours of a classified fill.
function swatchBackground(layers) {
  for (const key of ["fill-color", "fill-extrusion-color", "line-color"]) {
    const colors = layers.flatMap((l) => colorsIn((l.paint || {})[key]));
    if (colors.length === 1) return colors[0];
    if (colors.length > 1) return `linear-gradient(90deg, ${colors.slice(0, 6).join(", ")})`;
  }
  return null;
}

function timeSelect(map, imagery) {
  const select = el("select", { "aria-label": `${imagery.id} time` });
  for (const time of imagery.times) select.append(el("option", { value: time, text: time.slice(0, 10) }));
  select.addEventListener("change", () => {
    map.getSource(imagery.id).setTiles(imageryTiles(imagery, select.value));
  });
  return select;
}

function buildLayerSwitcher(map) {
  const groups = new Map();
  for (const layer of map.getStyle().layers) {
    const collection = layerCollection(layer);
    if (!collection) continue;
    if (!groups.has(collection)) groups.set(collection, []);
    groups.get(collection).push(layer);
  }
  const list = document.getElementById("layers");
  for (const [collection, layers] of groups) {
    const title = titles.get(collection) || { zh: collection, en: "" };
    const visible = layers.some((l) => (l.layout || {}).visibility !== "none");
    const box = el("input", { type: "checkbox", "data-collection": collection });
    box.checked = visible;
    box.addEventListener("change", () => {
      for (const layer of layers) {
        map.setLayoutProperty(layer.id, "visibility", box.checked ? "visible" : "none");
      }
    });
    const background = swatchBackground(layers);
    const swatch = el("span", { class: "swatch" });
    if (background) swatch.style.background = background;
    else swatch.style.background = "repeating-linear-gradient(45deg, #999 0 2px, #fff 2px 4px)";
    const label = el("label", {}, box, " ", swatch, title.zh, " ", el("span", { class: "en", text: title.en }));
    const item = el("li", {}, label);
    const imagery = config.imagery.find((i) => i.id === collection);
    if (imagery && imagery.times.length > 1) item.append(el("br"), timeSelect(map, imagery));
    list.append(item);
  }
}

function propertyTable(properties) {
  const table = el("table");
  for (const [key, value] of Object.entries(properties)) {
    table.append(el("tr", {}, el("th", { text: key }), el("td", { text: String(value) })));
  }
  return table;
}

function showFeatures(features) {
  const panel = document.getElementById("feature");
  panel.replaceChildren();
  panel.classList.remove("muted");
  if (!features.length) {
    panel.classList.add("muted");
    panel.textContent = "No feature here. 此处无要素。";
    return;
  }
  for (const feature of features) {
    const collection = feature.sourceLayer;
    const title = titles.get(collection) || { zh: collection, en: "" };
    const idValue = feature.properties[idFields.get(collection)] ?? feature.id;
    const heading = el("h3", { "data-collection": collection }, `${title.zh} · ${title.en}`);
    if (idValue !== undefined) {
      const key = apiKey ? `&api_key=${encodeURIComponent(apiKey)}` : "";
      const href = `${config.base}/collections/${collection}/items/${encodeURIComponent(idValue)}?f=html${key}`;
      heading.append(" ", el("a", { href, target: "_blank", text: "↗" }));
    }
    panel.append(heading);
    const code = feature.properties.unit_code;
    if (code && (collection === "parcels" || collection === "buildings")) {
      const key = apiKey ? `&api_key=${encodeURIComponent(apiKey)}` : "";
      panel.append(el("p", {}, el("a", { class: "profile", href: `${config.base}/codes/${encodeURIComponent(code)}?f=html${key}`,
        target: "_blank", text: "一码全息 Unit-code profile" })));
    }
    panel.append(propertyTable(feature.properties));
  }
}

// Distinct features under the point, top-most first; one entry per feature, not per layer.
function featuresAt(map, point) {
  const seen = new Set();
  const out = [];
  for (const feature of map.queryRenderedFeatures(point)) {
    if (!feature.sourceLayer) continue;
    const key = `${feature.sourceLayer}|${feature.id ?? JSON.stringify(feature.properties)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(feature);
  }
  return out.slice(0, 8);
}

function showTileUrls(tms) {
  const note = document.getElementById("tms-note");
  const urls = document.getElementById("tms-urls");
  urls.replaceChildren();
  if (tms === "WebMercatorQuad") {
    note.textContent = "Drawn on this map (MapLibre uses Web Mercator tiles). 当前地图使用此网格。";
    return;
  }
  note.textContent = `MapLibre draws Web Mercator only; use these ${tms} tiles in a client that supports the grid (QGIS, OpenLayers, CesiumJS). 其他网格的瓦片地址：`;
  for (const c of config.collections) {
    const tileset = `${config.base}/collections/${c.id}/tiles/${tms}`;
    urls.append(el("li", {}, el("a", { href: tileset, text: c.id }), `: ${tileset}/{z}/{row}/{col}`));
  }
  for (const i of config.imagery) {
    const tileset = `${config.base}/collections/${i.id}/tiles/${tms}`;
    urls.append(el("li", {}, el("a", { href: tileset, text: i.id }), `: ${tileset}/{z}/{row}/{col}?f=jpeg`));
  }
}

async function buildTmsChoice() {
  const select = document.getElementById("tms");
  showTileUrls(select.value);
  select.addEventListener("change", () => showTileUrls(select.value));
  try {
    const headers = { Accept: "application/json", ...keyHeaders(config.tileMatrixSetsUrl) };
    const response = await fetch(config.tileMatrixSetsUrl, { headers });
    if (!response.ok) return;
    const doc = await response.json();
    for (const tms of doc.tileMatrixSets || []) {
      if (tms.id === "WebMercatorQuad") continue;
      select.append(el("option", { value: tms.id, text: tms.title ? `${tms.id} (${tms.title})` : tms.id }));
    }
  } catch (error) {
    console.warn("tile matrix sets unavailable", error);
  }
}

function showPosition(map) {
  const c = map.getCenter();
  setStatus(`z ${map.getZoom().toFixed(1)} · ${c.lng.toFixed(5)}, ${c.lat.toFixed(5)}`);
}

const map = new maplibregl.Map({
  container: mapEl,
  style: config.styleUrl,
  bounds: config.bounds || undefined,
  fitBoundsOptions: { padding: 20 },
  maxPitch: 70,
  hash: true,
  transformRequest: (url) => ({ url, headers: keyHeaders(url) }),
});
window.__map = map;
map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }));
map.addControl(new maplibregl.ScaleControl());
map.on("error", (event) => {
  console.error(event.error && event.error.message);
  setStatus(`Error: ${(event.error && event.error.message) || "map error"}`);
});
map.on("load", () => {
  addImagery(map);
  buildLayerSwitcher(map);
  buildLegend(map.getStyle().layers, config.legend, document.getElementById("legend"));
  showImageryExtents(map);
  buildTmsChoice();
  const compliance = setupCompliance(map, config.base, keyHeaders);
  map.on("click", (event) => {
    if (!compliance.isDrawing()) showFeatures(featuresAt(map, event.point));
  });
  map.on("moveend", () => showPosition(map));
  map.once("idle", () => {
    showPosition(map);
    window.__mapReady = true;
  });
});
