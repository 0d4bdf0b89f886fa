// Drives the admin status page in headless Chromium for tests/browser.rs.
//
//   node tests/browser/admin_page.js <admin url> <screenshot path> <deployment key>
//
// Opens the page, waits until its numbers reflect the traffic the test sent (and, after
// one more request sent here through the page's own form, until they move again), submits
// the "try it" form twice, and prints one JSON line with what the page showed. Exits
// non-zero with a message on stderr when something does not appear in time.
"use strict";

const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const [adminUrl, screenshot, deploymentKey] = process.argv.slice(2);
if (!adminUrl || !screenshot || !deploymentKey) {
  console.error("usage: admin_page.js <admin url> <screenshot path> <deployment key>");
  process.exit(2);
}

// Bounded polling: the page refreshes every second.
const WAIT_MS = 15000;

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "evalgate-chromium-"));
  // A fresh profile (--user-data-dir), which Playwright takes as this argument.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 1100 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(adminUrl, { waitUntil: "load" });
    await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: WAIT_MS });
    // The traffic the test sent before starting us.
    await page.waitForFunction(() => Number(document.getElementById("requests-total").textContent) > 0, null, { timeout: WAIT_MS });
    const before = await read(page);

    // Try it: the first answer is a MISS, the same question again a HIT.
    const tries = [];
    for (let i = 0; i < 2; i++) {
      await page.fill("#try-key", deploymentKey);
      await page.fill("#try-user", "browser-user");
      await page.fill("#try-device", "browser-device");
      await page.fill("#try-flags", "");
      await page.fill("#try-context", '{"user_properties": {"plan": "pro"}}');
      await page.evaluate(() => { document.getElementById("try-xcache").textContent = "–"; });
      await page.click("#try-send");
      await page.waitForFunction(() => document.getElementById("try-xcache").textContent !== "–", null, { timeout: WAIT_MS });
      tries.push(await page.evaluate(() => ({
        status: document.getElementById("try-status").textContent,
        x_cache: document.getElementById("try-xcache").textContent,
        age: document.getElementById("try-age").textContent,
        variants: Object.fromEntries(
          [...document.querySelectorAll("#try-variants tbody tr")].map((tr) => [tr.dataset.flag, tr.dataset.variant]),
        ),
      })));
    }

    // The numbers update by themselves: the two tries show up in the totals.
    await page.waitForFunction(
      (n) => Number(document.getElementById("requests-total").textContent) >= n,
      before.requests_total + 2,
      { timeout: WAIT_MS },
    );
    const after = await read(page);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ before, after, tries, errors }));
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function read(page) {
  return page.evaluate(() => {
    const t = (id) => document.getElementById(id).textContent;
    return {
      requests_total: Number(t("requests-total")),
      hit_ratio: t("hit-ratio"),
      rps: t("rps"),
      upstream_p50: t("upstream-p50"),
      cache_fill: t("cache-fill"),
      cache_entries: Number(t("cache-entries")),
      deployments: document.querySelectorAll("#deployments tbody tr").length,
    };
  });
}

main().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
