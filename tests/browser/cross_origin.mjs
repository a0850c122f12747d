// A web map on another origin, in the system's headless Chromium: a page served by a second
// loopback server reads this server's style, items and tiles with fetch and MapLibre (key in the
// X-API-Key header, so every request is preflighted), then draws with only a URL holding ?api_key=:
// MapLibre given a style URL, OpenLayers' OGCVectorTile and OGCMapTile given a tileset URL, no
// request hook anywhere. Prints one JSON report for tests/test_cors_browser.py.
//
//   node tests/browser/cross_origin.mjs <page url> <server url> <key> <screenshot dir>
import { chromium } from "playwright-core";

const [pageUrl, server, key, outDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-default-apps", "--mute-audio",
  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
];
const TIMEOUT_MS = 30000;
const report = { consoleErrors: [], requests: [], failed: [], maps: {} };

async function fetches(page) {
  return page.evaluate(async ([server, key]) => {
    const keyed = { headers: { "X-API-Key": key } };
    const style = await fetch(`${server}/styles/basemap`, keyed);
    const items = await fetch(`${server}/collections/parcels/items?limit=3&crs=http://www.opengis.net/def/crs/EPSG/0/4549`, keyed);
    const body = await items.json();
    const tile = await fetch(`${server}/collections/land_survey/tiles/WebMercatorQuad/12/1691/3430`, keyed);
    return {
      style: { status: style.status, layers: (await style.json()).layers.length },
      items: {
        status: items.status, features: body.features.length, etag: items.headers.get("ETag"),
        contentCrs: items.headers.get("Content-Crs"), link: items.headers.get("Link"),
      },
      tile: { status: tile.status, type: tile.headers.get("Content-Type"), bytes: (await tile.arrayBuffer()).byteLength },
    };
  }, [server, key]);
}

async function maplibre(page, id, style, withHeader) {
  return page.evaluate(([id, style, server, key, withHeader]) => new Promise((resolve) => {
    const options = { container: id, style, center: [121.55, 29.85], zoom: 13, attributionControl: false };
    if (withHeader) {
      options.transformRequest = (url) => (url.startsWith(server) ? { url, headers: { "X-API-Key": key } } : { url });
    }
    const map = new maplibregl.Map(options);
    const errors = [];
    map.on("error", (e) => errors.push(String(e.error && e.error.message)));
    map.once("idle", () => resolve({
      features: map.queryRenderedFeatures().filter((f) => f.sourceLayer).length, errors,
    }));
  }), [id, style, server, key, withHeader]);
}

async function openlayers(page, id, kind, url, center, zoom) {
  return page.evaluate(([id, kind, url, center, zoom]) => new Promise((resolve) => {
    const loaded = { started: 0, ok: 0, failed: 0, errors: [] };
    const source = kind === "vector"
      ? new ol.source.OGCVectorTile({ url, format: new ol.format.MVT() })
      : new ol.source.OGCMapTile({ url });
    source.on("tileloadstart", () => { loaded.started += 1; });
    source.on("tileloadend", () => { loaded.ok += 1; });
    source.on("tileloaderror", (e) => { loaded.failed += 1; loaded.errors.push(String(e.tile.getTileCoord())); });
    const layer = kind === "vector"
      ? new ol.layer.VectorTile({ source, style: new ol.style.Style({
        fill: new ol.style.Fill({ color: "#2a7f3b" }), stroke: new ol.style.Stroke({ color: "#102030", width: 1 }),
      }) })
      : new ol.layer.Tile({ source });
    const map = new ol.Map({
      target: id, layers: [layer], controls: [],
      view: new ol.View({ center: ol.proj.fromLonLat(center), zoom }),
    });
    const done = () => resolve({ ...loaded, state: source.getState() });
    // the source reads the tileset and its tile matrix set first; then the map draws the tiles
    const whenReady = () => {
      const pending = loaded.started - loaded.ok - loaded.failed;
      if (source.getState() === "loading" || loaded.started === 0 || pending > 0) {
        setTimeout(whenReady, 100);
        return;
      }
      map.once("rendercomplete", done);
      map.render();
    };
    whenReady();
    setTimeout(done, 25000);
  }), [id, kind, url, center, zoom]);
}

async function run(page) {
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("requestfailed", (req) => report.failed.push({ url: req.url(), error: req.failure()?.errorText }));
  page.on("response", (res) => report.requests.push({ url: res.url(), status: res.status(), method: res.request().method() }));
  await page.goto(pageUrl, { waitUntil: "load", timeout: TIMEOUT_MS });
  await page.waitForFunction(() => window.__libs === true && window.ol !== undefined, null, { timeout: TIMEOUT_MS });
  report.origin = await page.evaluate(() => window.location.origin);
  report.fetched = await fetches(page);
  const q = `api_key=${encodeURIComponent(key)}`;
  report.maps.maplibreHeader = await maplibre(page, "m1", `${server}/styles/basemap`, true);
  report.maps.maplibreStyleUrl = await maplibre(page, "m2", `${server}/styles/basemap?${q}`, false);
  const tiles = `${server}/collections/land_survey/tiles/WebMercatorQuad?${q}`;
  report.maps.olVector = await openlayers(page, "m3", "vector", tiles, [121.55, 29.85], 13);
  // the sample imagery covers part of the county: look inside it (a tile outside it is a 204, no image)
  const imagery = `${server}/collections/imagery/tiles/WebMercatorQuad?${q}`;
  report.maps.olImagery = await openlayers(page, "m4", "map", imagery, [121.531, 29.86], 15);
  for (const id of ["m1", "m2", "m3", "m4"]) {
    await page.locator(`#${id}`).screenshot({ path: `${outDir}/${id}.png` });
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  await run(page);
} catch (err) {
  report.error = String(err && err.stack || err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
