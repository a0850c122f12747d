// Drives the /map viewer in the system's headless Chromium (never a downloaded browser) and
// prints one JSON report on stdout for tests/test_viewer.py to assert on.
//
//   node tests/browser/map_check.mjs <map url> <screenshot dir> [--imagery]
//
// Report: ready, console errors, every request (url, status, type), rendered feature counts per
// collection at the start view and at a close-up, the feature panel after a click, and the
// layer switcher's effect, then (with --imagery) the imagery layer and its time switch, the
// site-compliance panel, and last the page opened again without the key in its URL (the
// session cookie set by the first page must be enough). Screenshots: start.png, closeup.png,
// imagery.png and reloaded.png in the given directory.
import { chromium } from "playwright-core";

const [url, outDir] = process.argv.slice(2);
const withImagery = process.argv.includes("--imagery");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-default-apps", "--mute-audio",
  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
];
const TIMEOUT_MS = 20000;

const report = { ready: false, consoleErrors: [], requests: [], failed: [], timings: {} };
const started = Date.now();
const mark = (name) => { report.timings[name] = Date.now() - started; };

function countsByCollection() {
  const counts = {};
  for (const f of window.__map.queryRenderedFeatures()) {
    if (f.sourceLayer) counts[f.sourceLayer] = (counts[f.sourceLayer] || 0) + 1;
  }
  return counts;
}

async function waitIdle(page) {
  await page.evaluate(() => new Promise((resolve) => {
    const map = window.__map;
    if (map.loaded() && map.areTilesLoaded()) resolve();
    else map.once("idle", resolve);
  }));
}

// Runs `action`, then waits for the map's next "idle" (all it requested loaded, placed and drawn). The
// listener is armed before the action: right after a camera or style change `loaded()` can still be
// true because the new tiles are not requested until the next frame.
async function settle(page, action) {
  await page.evaluate((ms) => {
    window.__idle = new Promise((resolve) => { window.__map.once("idle", resolve); setTimeout(resolve, ms); });
  }, TIMEOUT_MS);
  await action();
  await page.evaluate(() => { window.__map.triggerRepaint(); return window.__idle; });
}

const jumpTo = (page, view) => settle(page, () => page.evaluate((v) => window.__map.jumpTo(v), view));

async function clickPanel(page) {
  const box = await page.locator("#map canvas").boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => !document.getElementById("feature").classList.contains("muted"),
    null, { timeout: 5000 }).catch(() => {});
  return page.evaluate(() => ({
    collections: [...document.querySelectorAll("#feature h3")].map((h) => h.dataset.collection),
    keys: [...document.querySelectorAll("#feature th")].map((th) => th.textContent),
  }));
}

async function run(page) {
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("requestfailed", (req) => report.failed.push({ url: req.url(), error: req.failure()?.errorText }));
  page.on("response", (res) => report.requests.push({
    url: res.url(), status: res.status(), type: res.headers()["content-type"] || "",
  }));
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
  await page.waitForFunction(() => window.__mapReady === true, null, { timeout: TIMEOUT_MS });
  report.ready = true;
  mark("ready");
  report.layerSwitches = await page.$$eval("#layers input", (xs) => xs.map((x) => [x.dataset.collection, x.checked]));
  report.tmsOptions = await page.$$eval("#tms option", (xs) => xs.map((x) => x.value));
  report.start = { zoom: await page.evaluate(() => window.__map.getZoom()), counts: await page.evaluate(countsByCollection) };
  await page.screenshot({ path: `${outDir}/start.png` });
  report.click = await clickPanel(page);
  mark("clicked");

  await jumpTo(page, { zoom: 15.5 });
  report.closeup = { counts: await page.evaluate(countsByCollection) };
  mark("closeup");
  report.labels = await labelsStep(page);
  report.legend = await page.evaluate(() => ({
    codes: [...document.querySelectorAll("#legend li")].map((li) => li.dataset.code),
    text: document.getElementById("legend").textContent,
    extents: [...document.querySelectorAll("#imagery-extents button")].map((b) => b.dataset.imagery),
  }));
  await page.screenshot({ path: `${outDir}/closeup.png` });

  await settle(page, () => page.uncheck('#layers input[data-collection="land_survey"]'));
  report.afterSwitchOff = await page.evaluate(countsByCollection);
  mark("switched");
  report.vectorRequestCount = report.requests.length;
  report.vectorConsoleErrorCount = report.consoleErrors.length;
  report.imagery = withImagery ? await imageryStep(page) : null;
  mark("imagery");
  report.profile = await profileStep(page);
  report.compliance = await complianceStep(page);
  mark("compliance");
  report.reload = await reloadStep(page);
  mark("reload");
}

// Labels drawn (placed symbols: MapLibre places a label only once its glyphs are loaded) per symbol
// layer, at the close-up and at parcel level, with the label texts seen.
async function labelsStep(page) {
  const placed = () => {
    const map = window.__map;
    const ids = map.getStyle().layers.filter((l) => l.type === "symbol").map((l) => l.id);
    const out = {};
    for (const f of map.queryRenderedFeatures({ layers: ids })) {
      const entry = out[f.layer.id] || (out[f.layer.id] = { count: 0, texts: [] });
      entry.count += 1;
      const text = f.properties.name || f.properties.line_name || f.properties.unit_code;
      if (entry.texts.length < 5 && text) entry.texts.push(text);
    }
    return out;
  };
  const closeup = await page.evaluate(placed);
  await page.screenshot({ path: `${outDir}/labels.png` });
  const view = await page.evaluate(() => ({ center: window.__map.getCenter(), zoom: window.__map.getZoom() }));
  await jumpTo(page, { zoom: 17.5 });
  const parcels = await page.evaluate(placed);
  await jumpTo(page, view);
  return { closeup, parcels };
}

// Open the map again at its URL without the key: the session cookie alone must draw it.
async function reloadStep(page) {
  const addressAfterLoad = page.url();
  const bare = new URL(url);
  bare.searchParams.delete("api_key");
  const from = report.requests.length;
  await page.goto(bare.toString(), { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
  await page.waitForFunction(() => window.__mapReady === true, null, { timeout: TIMEOUT_MS });
  await waitIdle(page);
  await page.screenshot({ path: `${outDir}/reloaded.png` });
  return { addressAfterLoad, from, counts: await page.evaluate(countsByCollection) };
}

// Click inside a drawn parcel: the panel links to its unit-code profile, which opens.
async function profileStep(page) {
  await jumpTo(page, { zoom: 16 });
  const spot = await page.evaluate(() => {
    const map = window.__map;
    for (const f of map.queryRenderedFeatures()) {
      if (f.sourceLayer !== "parcels") continue;
      const ring = f.geometry.type === "Polygon" ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
      const pts = ring.map((c) => map.project(c));
      const x = pts.reduce((a, p) => a + p.x, 0) / pts.length;
      const y = pts.reduce((a, p) => a + p.y, 0) / pts.length;
      const hit = map.queryRenderedFeatures([x, y]).some((g) => g.sourceLayer === "parcels");
      const box = map.getCanvas().getBoundingClientRect();
      if (hit && x > 5 && y > 5 && x < box.width - 5 && y < box.height - 5) return { x, y };
    }
    return null;
  });
  if (!spot) return null;
  const box = await page.locator("#map canvas").boundingBox();
  await page.mouse.click(box.x + spot.x, box.y + spot.y);
  const link = await page.waitForSelector("#feature a.profile", { timeout: 5000 }).catch(() => null);
  if (!link) return { href: null };
  const href = await link.getAttribute("href");
  const opened = await page.evaluate(async (u) => {
    const r = await fetch(u);
    return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
  }, href);
  return { href, status: opened.status, type: opened.type, hasMap: opened.text.includes('id="parcel-map"') };
}

// Draw a site of four clicks around the centre, run it, and read the verdict and layers shown.
async function complianceStep(page) {
  await page.click("#draw-site");
  const box = await page.locator("#map canvas").boundingBox();
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  for (const [dx, dy] of [[-80, -60], [80, -60], [80, 60], [-80, 60]]) {
    await page.mouse.click(cx + dx, cy + dy);
  }
  const response = page.waitForResponse((r) => r.url().includes("/processes/site-compliance/execution"),
    { timeout: 10000 });
  await page.click("#run-site");
  const answered = await response.catch(() => null);
  await page.waitForSelector("#compliance [data-verdict]", { timeout: 10000 }).catch(() => {});
  return page.evaluate((status) => ({
    status,
    verdict: document.querySelector("#compliance [data-verdict]")?.dataset.verdict || null,
    layers: [...document.querySelectorAll("#compliance h3")].map((h) => h.dataset.layer),
    drawn: window.__map.queryRenderedFeatures({ layers: ["compliance-fill"] })[0]?.geometry?.type || null,
  }), answered ? answered.status() : null);
}

// Switch the first imagery layer on over its extent, then switch to its other acquisition time.
async function imageryStep(page) {
  const imagery = await page.evaluate(() => JSON.parse(document.getElementById("map").dataset.config).imagery[0]);
  if (!imagery) return null;
  const [w, s, e, n] = imagery.bounds;
  await jumpTo(page, { center: [(w + e) / 2, (s + n) / 2], zoom: 13.5 });
  await settle(page, () => page.check(`#layers input[data-collection="${imagery.id}"]`));
  await page.screenshot({ path: `${outDir}/imagery.png` });
  if (imagery.times.length > 1) {
    const other = encodeURIComponent(imagery.times[1]);
    const seen = page.waitForResponse((r) => r.url().includes(`datetime=${other}`), { timeout: 5000 }).catch(() => null);
    await settle(page, async () => {
      await page.locator("#layers select").first().selectOption(imagery.times[1]);
      await seen;
    });
  }
  const order = await page.evaluate(() => window.__map.getStyle().layers.map((l) => l.id));
  return { id: imagery.id, times: imagery.times, order };
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
mark("launched");
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  await run(page);
} catch (error) {
  report.error = String(error && error.message || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report));
