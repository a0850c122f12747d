// Drives the /scene page (CesiumJS) in the system's headless Chromium (software WebGL) and prints
// one JSON report on stdout for tests/test_scene.py:
//
//   node tests/browser/scene_check.mjs <scene url> <lon> <lat> <roof height m> <screenshot dir>
//
// Report: ready, console errors, failed requests, every response (url, status), what a click at the
// centre of the scene picked with the camera straight above the given point, and the requests made
// after the imagery time switch.
import { chromium } from "playwright-core";

const [url, lon, lat, roof, outDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--no-first-run", "--disable-default-apps", "--mute-audio",
  "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
];
const report = { ready: false, consoleErrors: [], failed: [], responses: [], picked: null, afterSwitch: [] };

async function settled(page, timeout) {
  await page.waitForFunction(() => {
    const s = window.__scene;
    return s && s.ready && s.viewer.scene.globe.tilesLoaded && s.tilesets.every((t) => t.tilesLoaded);
  }, null, { timeout, polling: 250 });
}

async function run(page) {
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => report.consoleErrors.push(String(err)));
  page.on("requestfailed", (req) => report.failed.push({ url: req.url(), error: req.failure()?.errorText }));
  page.on("response", (res) => report.responses.push({ url: res.url(), status: res.status() }));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.__scene && (window.__scene.ready || window.__scene.error), null,
    { timeout: 60000 });
  const error = await page.evaluate(() => window.__scene.error);
  if (error) throw new Error(error);
  report.ready = true;
  await settled(page, 90000);
  await page.evaluate(([x, y, h]) => {
    const { viewer } = window.__scene;
    viewer.camera.setView({
      destination: Cesium.Cartesian3.fromDegrees(x, y, h + 120),
      orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 },
    });
  }, [Number(lon), Number(lat), Number(roof)]);
  await settled(page, 90000);
  await page.waitForTimeout(1500);  // the draped layer loads after the camera's move ends
  await settled(page, 60000);
  await page.screenshot({ path: `${outDir}/close.png` });
  const box = await page.locator("#scene canvas").boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => window.__scene.picked, null, { timeout: 10000 }).catch(() => {});
  report.picked = await page.evaluate(() => window.__scene.picked);
  report.profileLink = await page.evaluate(() => document.querySelector("#feature a.profile")?.href || null);
  report.entities = await page.evaluate(() => {
    const { viewer } = window.__scene;
    let n = 0;
    for (let i = 0; i < viewer.dataSources.length; i++) n += viewer.dataSources.get(i).entities.values.length;
    return n;
  });
  const before = report.responses.length;
  const options = await page.evaluate(() => [...document.querySelectorAll("#imagery-time option")].map((o) => o.value));
  if (options.length > 1) {
    const item = encodeURIComponent(options[1].split("|")[1]);
    const switched = page.waitForResponse((r) => r.url().includes(`item=${item}`), { timeout: 60000 })
      .catch(() => null);  // the assertion in the test says what is missing
    await page.selectOption("#imagery-time", options[1]);
    await switched;
    await settled(page, 60000);
  }
  report.afterSwitch = report.responses.slice(before).map((r) => r.url);
  report.options = options;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await run(page);
} catch (err) {
  report.error = String(err);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
