// The chat page in a real headless Chromium (Debian's, through
// playwright-core): an answer streams in order; a connection dropped
// mid-answer reconnects and the answer completes without a gap or a
// duplicate. Run by server/tests/browser.rs with the page's URL.
//
// usage: node chat_page.mjs URL   (CHROMIUM, PLAYWRIGHT_CORE from the env)

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const url = process.argv[2];
const CHUNKS = Number(process.env.CHUNKS);

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#status.up", { timeout: 10000 });
  const session = await page.evaluate(() => window.wsbench.session());
  const node1 = await page.evaluate(() => window.wsbench.node());

  // 1. A whole answer, every chunk in order.
  await page.fill("#text", "hello from the browser");
  await page.press("#text", "Enter");
  await page.waitForSelector(".answer[data-state=done]", { timeout: 20000 });
  const first = await page.$eval(".answer[data-state=done]", (el) => ({
    chunks: Number(el.dataset.chunks),
    indices: el.dataset.indices,
    text: el.querySelector(".body").textContent,
  }));
  const all = Array.from({ length: CHUNKS }, (_, i) => i).join(",");
  if (first.chunks !== CHUNKS || first.indices !== all) fail("first answer: " + JSON.stringify(first));
  if (!first.text.length) fail("first answer has no text");

  // 2. The connection drops mid-answer: the page reconnects with its token,
  // recovers, and the answer completes with no gap and no duplicate.
  await page.fill("#text", "and now a cut");
  await page.press("#text", "Enter");
  await page.waitForFunction(
    () => [...document.querySelectorAll(".answer")].some((el) => el.dataset.state === "streaming" && Number(el.dataset.chunks) >= 3),
    null,
    { timeout: 20000 },
  );
  await page.evaluate(() => window.wsbench.drop());
  await page.waitForSelector("#status.down", { timeout: 5000 });
  await page.waitForSelector("#status.up", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll(".answer[data-state=done]").length === 2, null, {
    timeout: 20000,
  });
  const second = await page.$$eval(".answer[data-state=done]", (els) => ({
    chunks: Number(els[1].dataset.chunks),
    indices: els[1].dataset.indices,
  }));
  if (second.chunks !== CHUNKS || second.indices !== all) fail("recovered answer: " + JSON.stringify(second));
  const again = await page.evaluate(() => window.wsbench.session());
  if (again !== session) fail("the session changed across the reconnect");
  if (errors.length) fail("page errors: " + errors.join("; "));
  console.log(JSON.stringify({ ok: true, session, node: node1, chunks: CHUNKS }));
} finally {
  await browser.close();
}
