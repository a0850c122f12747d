// The small map of the HTML pages (MapLibre GL JS from this server, no other host):
// - items and item pages: the page's features (GeoJSON in #page-features) framed on a plain background;
// - a style page: the style itself (data-style), as a preview.
import * as maplibregl from "../lib/maplibre-gl.mjs";

const el = document.getElementById("page-map");
const FILL = "#d9822b";
const LINE = "#8a4b08";

function featureStyle(data) {
  return {
    version: 8,
    sources: { features: { type: "geojson", data } },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#f4f6f8" } },
      { id: "fill", type: "fill", source: "features", filter: ["==", ["geometry-type"], "Polygon"],
        paint: { "fill-color": FILL, "fill-opacity": 0.35 } },
      { id: "line", type: "line", source: "features", filter: ["!=", ["geometry-type"], "Point"],
        paint: { "line-color": LINE, "line-width": 1.5 } },
      { id: "point", type: "circle", source: "features", filter: ["==", ["geometry-type"], "Point"],
        paint: { "circle-color": FILL, "circle-radius": 5, "circle-stroke-color": LINE, "circle-stroke-width": 1 } },
    ],
  };
}

// The bounds of every coordinate in a GeoJSON geometry (nested arrays of positions).
function extend(bounds, coords) {
  if (typeof coords[0] === "number") {
    bounds[0] = Math.min(bounds[0], coords[0]);
    bounds[1] = Math.min(bounds[1], coords[1]);
    bounds[2] = Math.max(bounds[2], coords[0]);
    bounds[3] = Math.max(bounds[3], coords[1]);
  } else {
    coords.forEach((c) => extend(bounds, c));
  }
  return bounds;
}

function featuresMap() {
  const data = JSON.parse(document.getElementById("page-features").textContent);
  const bounds = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of data.features) {
    const geoms = f.geometry ? (f.geometry.geometries || [f.geometry]) : [];
    geoms.forEach((g) => extend(bounds, g.coordinates));
  }
  const map = new maplibregl.Map({ container: el, style: featureStyle(data), attributionControl: false });
  if (bounds[0] <= bounds[2]) map.fitBounds(bounds, { padding: 20, animate: false, maxZoom: 18 });
  return map;
}

function styleMap() {
  const options = { container: el, style: el.dataset.style };
  if (el.dataset.center) options.center = JSON.parse(el.dataset.center);
  if (el.dataset.zoom) options.zoom = Number(el.dataset.zoom);
  return new maplibregl.Map(options);
}

const map = el.dataset.style ? styleMap() : featuresMap();
map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
map.on("idle", () => el.setAttribute("data-ready", "true"));
window.pageMap = map;
