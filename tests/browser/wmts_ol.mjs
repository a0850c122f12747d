// OpenLayers (npm `ol`) reads the WMTS capabilities of a keyed OneMap server with its own parser
// (ol/format/WMTSCapabilities + optionsFromCapabilities) and draws a layer of the CGCS2000 grid `c`
// in the system's headless Chromium, the way a Tianditu client does (EPSG:4490 registered as a
// geographic projection, the key in the capabilities URL as `tk`). Prints one JSON report on stdout
// for tests/test_wmts_browser.py and saves a screenshot of the map.
//
//   node tests/browser/wmts_ol.mjs <server root> <key> <layer> <screenshot.png>
//
// The test page and OpenLayers' modules are served by request interception under the server's own
// origin (no second server, no CDN), from this repository's node_modules.
import { chromium } from "playwright-core";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [root, key, layer, shot] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const MODULES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../node_modules");
const PREFIX = `${root}/__ol_test/`;
const IMPORTS = {
  "ol/": `${PREFIX}ol/`, rbush: `${PREFIX}rbush/index.js`, quickselect: `${PREFIX}quickselect/index.js`,
  earcut: `${PREFIX}earcut/src/earcut.js`, pbf: `${PREFIX}pbf/index.js`,
};
const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">${JSON.stringify({ imports: IMPORTS })}</script>
<style>html,body{margin:0}#map{width:512px;height:512px}</style></head>
<body><div id="map"></div><script type="module">
import Map from "ol/Map.js";
import View from "ol/View.js";
import TileLayer from "ol/layer/Tile.js";
import WMTS, { optionsFromCapabilities } from "ol/source/WMTS.js";
import WMTSCapabilities from "ol/format/WMTSCapabilities.js";
import Projection from "ol/proj/Projection.js";
import { addProjection, addEquivalentProjections, get as getProjection } from "ol/proj.js";
const cgcs2000 = new Projection({
  code: "EPSG:4490", units: "degrees", axisOrientation: "neu", global: true,
  extent: [-180, -90, 180, 90], metersPerUnit: (Math.PI * 6378137) / 180,
});
addProjection(cgcs2000);
addEquivalentProjections([cgcs2000, getProjection("EPSG:4326")]);
const report = { loaded: 0, errors: 0 };
try {
  const response = await fetch(${JSON.stringify(`${root}/wmts?SERVICE=WMTS&REQUEST=GetCapabilities&tk=${key}`)});
  const caps = new WMTSCapabilities().read(await response.text());
  report.layers = caps.Contents.Layer.map((l) => l.Identifier);
  const options = optionsFromCapabilities(caps, { layer: ${JSON.stringify(layer)}, matrixSet: "c" });
  report.requestEncoding = options.requestEncoding;
  report.projection = options.projection.getCode();
  const source = new WMTS(options);
  source.on("tileloadend", () => report.loaded++);
  source.on("tileloaderror", () => report.errors++);
  const map = new Map({
    target: "map", layers: [new TileLayer({ source })],
    view: new View({ projection: "EPSG:4490", center: [121.55, 29.85], resolution: 0.703125 / 2 ** 12 }),
  });
  map.once("rendercomplete", () => { report.done = true; window.__report = report; });
} catch (e) {
  report.error = String(e);
  window.__report = report;
}
</script></body></html>`;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
const out = { requests: [], consoleErrors: [] };
try {
  const page = await browser.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") out.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => out.consoleErrors.push(String(err)));
  page.on("response", (res) => {
    if (!res.url().startsWith(PREFIX)) out.requests.push({ url: res.url(), status: res.status() });
  });
  await page.route(`${PREFIX}**`, (route) => {
    const rel = decodeURIComponent(new URL(route.request().url()).pathname.slice("/__ol_test/".length));
    if (rel === "index.html") return route.fulfill({ body: PAGE, contentType: "text/html" });
    const file = path.join(MODULES, rel);
    if (!file.startsWith(MODULES) || !existsSync(file)) return route.fulfill({ status: 404, body: "" });
    return route.fulfill({ path: file, contentType: "text/javascript" });
  });
  await page.goto(`${PREFIX}index.html`);
  await page.waitForFunction(() => window.__report, null, { timeout: 60000 }).catch((e) => { out.timeout = String(e); });
  out.report = await page.evaluate(() => window.__report ?? null);
  await page.locator("#map").screenshot({ path: shot });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
