// loadgen's --html page in a real headless Chromium (Debian's, through
// playwright-core): it must load with no console error and no request
// beyond the file itself, and every chart must have drawn data. Prints one
// JSON line with what it found; run by loadgen/tests/html.rs.
//
// usage: node report_page.mjs FILE.html SCREENSHOT.png [WIDTH [HEIGHT]]
//   With HEIGHT, the screenshot is the top of the page only (WIDTH x HEIGHT).
//   CHROMIUM (default /usr/bin/chromium) and PLAYWRIGHT_CORE (default
//   target/browser-test/node_modules/playwright-core) say where they are;
//   scripts/test.sh installs both.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const core = process.env.PLAYWRIGHT_CORE || root + "target/browser-test/node_modules/playwright-core";
for (const [what, path] of [["chromium", executablePath], ["playwright-core", core + "/package.json"]]) {
  if (!existsSync(path)) {
    console.error(`${what} is missing at ${path}: run scripts/test.sh (it installs it)`);
    process.exit(2);
  }
}
const require = createRequire(import.meta.url);
const { chromium } = require(core);
const [file, shot, width, height] = process.argv.slice(2);
const url = pathToFileURL(file).href;

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: Number(width || 1100), height: Number(height || 900) } });
  const errors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push("pageerror: " + String(e)));
  page.on("request", (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  await page.goto(url, { waitUntil: "load" });
  const found = await page.evaluate(() => ({
    title: document.title,
    charts: [...document.querySelectorAll("figure.chart")].map((f) => ({
      id: f.id,
      paths: f.querySelectorAll("svg path.data").length,
      points: [...f.querySelectorAll("svg path.data")].reduce((n, p) => n + Number(p.dataset.points), 0),
      dots: f.querySelectorAll("svg circle.point").length,
      bands: f.querySelectorAll("svg rect.band").length,
      width: f.querySelector("svg").getBoundingClientRect().width,
    })),
    grades: document.querySelectorAll("#grades tr").length - 1,
    template: (document.querySelector("pre") || {}).textContent || "",
    scripts: document.querySelectorAll("script").length,
  }));
  await page.screenshot({ path: shot, fullPage: !height });
  console.log(JSON.stringify({ ok: true, errors, requests, ...found }));
} finally {
  await browser.close();
}
