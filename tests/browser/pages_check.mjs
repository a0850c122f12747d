// Opens the HTML pages in the system's headless Chromium at 1280 px wide and prints one JSON report
// on stdout for tests/test_html_browser.py: the items pages (small map, page-size control, width),
// a style page (its preview map), a STAC items page and /api.html (Swagger UI from this server).
//
//   node tests/browser/pages_check.mjs <server url> <api key>
//
// The first page carries the key; the session cookie it sets opens the others. Every request
// the browser makes is reported, so the test can check that none leaves the loopback server.
import { chromium } from "playwright-core";

const [base, key] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-default-apps", "--mute-audio",
  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
];
const TIMEOUT_MS = 20000;
const report = { requests: [], refused: [], consoleErrors: [], pages: {} };

async function mapPage(page, url) {
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
  await page.waitForSelector("#page-map[data-ready]", { timeout: TIMEOUT_MS });
  return page.evaluate(() => ({
    url: window.location.href,
    scrollWidth: document.documentElement.scrollWidth,
    rows: document.querySelectorAll("table.items tr").length - 1,
    rendered: window.pageMap.queryRenderedFeatures().length,
  }));
}

async function run(page) {
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("request", (req) => report.requests.push(req.url()));
  page.on("response", (res) => { if (res.status() >= 400) report.refused.push(`${res.status()} ${res.url()}`); });
  report.pages.items = await mapPage(page, `${base}/collections/parcels/items?f=html&limit=100&api_key=${key}`);
  await Promise.all([
    page.waitForNavigation({ timeout: TIMEOUT_MS }),
    page.selectOption("form.page-size select", "10"),
  ]);
  await page.waitForSelector("#page-map[data-ready]", { timeout: TIMEOUT_MS });
  report.pages.resized = await page.evaluate(() => ({
    url: window.location.href, rows: document.querySelectorAll("table.items tr").length - 1,
  }));
  const first = await page.$eval("table.items td a", (a) => a.href);
  report.pages.item = await mapPage(page, first);
  report.pages.style = await mapPage(page, `${base}/styles/parcels?f=html`);
  report.pages.stacItems = await mapPage(page, `${base}/stac/collections/imagery/items?f=html`);
  await page.goto(`${base}/api.html`, { waitUntil: "domcontentloaded", timeout: TIMEOUT_MS });
  await page.waitForSelector(".opblock", { timeout: TIMEOUT_MS });
  report.pages.api = await page.evaluate(() => ({
    operations: document.querySelectorAll(".opblock").length,
    paths: [...document.querySelectorAll(".opblock-summary-path")].map((e) => e.textContent.replace(/\u200b/g, "")),
  }));
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await run(page);
} catch (err) {
  report.error = String(err && err.stack ? err.stack : err);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report));
