// Pages on another origin calling evalgate over HTTPS, in headless Chromium, for
// tests/browser_gateway.rs.
//
//   node tests/browser/gateway_pages.js <cert.pem> <key.pem>
//
// 1. Serves tests/browser/pages (and the SDK's browser bundle under /sdk/) over HTTPS
//    with the given certificate on 127.0.0.1:0, and prints one JSON line
//    {"page_port": N}: the test allows the origin https://localhost:N in evalgate's CORS
//    settings; https://127.0.0.1:N is the same server on an origin it does not allow.
// 2. Reads one JSON line on stdin: {"gateway": "https://127.0.0.1:M", "key", "user",
//    "visits": [{"page": "fetch.html" | "sdk.html", "origin": "allowed" | "other"}, …]}.
// 3. Launches Chromium trusting only that certificate's public key
//    (--ignore-certificate-errors-spki-list), opens each visit's page, waits for the page
//    to write its #result, and prints one JSON line: {"visits": [{page, origin, result,
//    requests, elsewhere, protocols, page_errors}, …]}, where `requests` are what the
//    browser sent to evalgate (method, URL, headers), `elsewhere` the URLs it asked of
//    any third origin, and `protocols` what Chromium says each answer came
//    over (DevTools' Network.responseReceived: "h2", "http/1.1").
//
// Exits non-zero with a message on stderr when something does not happen in time.
"use strict";

const { chromium } = require("playwright-core");
const crypto = require("crypto");
const fs = require("fs");
const https = require("https");
const os = require("os");
const path = require("path");
const readline = require("readline");

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) {
  console.error("usage: gateway_pages.js <cert.pem> <key.pem>");
  process.exit(2);
}

// How long a page may take to write its result: a bound against hanging, not a speed
// requirement.
const WAIT_MS = 20000;

const PAGES = path.join(__dirname, "pages");
const SDK_DIST = path.join(__dirname, "node_modules/@amplitude/experiment-js-client/dist");

// The files the page server serves, by path; nothing else.
const FILES = {
  "/fetch.html": [path.join(PAGES, "fetch.html"), "text/html; charset=utf-8"],
  "/sdk.html": [path.join(PAGES, "sdk.html"), "text/html; charset=utf-8"],
  "/sdk/experiment-browser.min.js": [
    path.join(SDK_DIST, "experiment-browser.min.js"),
    "text/javascript; charset=utf-8",
  ],
};

/** base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo: Chromium's pin. */
function spkiPin(pem) {
  const spki = new crypto.X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return crypto.createHash("sha256").update(spki).digest("base64");
}

function startPageServer(cert, key) {
  const server = https.createServer({ cert, key }, (req, res) => {
    const file = FILES[new URL(req.url, "https://pages").pathname];
    if (req.method !== "GET" || !file) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
    res.end(fs.readFileSync(file[0]));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function readLine() {
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new Error("stdin closed before the test sent its settings");
}

async function visit(context, pagePort, settings, { page: file, origin }) {
  const host = origin === "allowed" ? "localhost" : "127.0.0.1";
  const url = new URL(`https://${host}:${pagePort}/${file}`);
  url.searchParams.set("gateway", settings.gateway);
  url.searchParams.set("key", settings.key);
  url.searchParams.set("user", settings.user);

  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // What the browser sends to evalgate (CORS preflights are not reported as requests).
  // Anything else the page asks for, but its own origin: expected to stay empty.
  const requests = [];
  const elsewhere = [];
  page.on("request", (r) => {
    if (r.url().startsWith(settings.gateway + "/")) {
      requests.push({ method: r.method(), url: r.url(), headers: r.headers() });
    } else if (!r.url().startsWith(url.origin + "/")) {
      elsewhere.push(r.url());
    }
  });
  // The protocol each answer came over, as Chromium's network stack reports it.
  const protocols = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.responseReceived", ({ response }) => {
    if (response.url.startsWith(settings.gateway + "/")) {
      protocols.push({ url: response.url, protocol: response.protocol, status: response.status });
    }
  });

  await page.goto(url.toString(), { waitUntil: "load" });
  await page.waitForFunction(
    () => document.getElementById("result").textContent !== "",
    null,
    { timeout: WAIT_MS },
  );
  const result = JSON.parse(await page.evaluate(() => document.getElementById("result").textContent));
  await page.close();
  return { page: file, origin: url.origin, result, requests, elsewhere, protocols, page_errors: pageErrors };
}

async function main() {
  const cert = fs.readFileSync(certFile);
  const key = fs.readFileSync(keyFile);
  const server = await startPageServer(cert, key);
  const pagePort = server.address().port;
  console.log(JSON.stringify({ page_port: pagePort }));

  const settings = JSON.parse(await readLine());
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "evalgate-chromium-"));
  // A persistent context: Chromium honours --ignore-certificate-errors-spki-list only
  // with its own --user-data-dir, which Playwright takes as this argument.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--ignore-certificate-errors-spki-list=${spkiPin(cert)}`,
    ],
  });
  try {
    const visits = [];
    for (const v of settings.visits) {
      visits.push(await visit(context, pagePort, settings, v));
    }
    console.log(JSON.stringify({ visits }));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    server.closeAllConnections();
    server.close();
  }
}

main().catch((e) => {
  console.error(String((e && e.stack) || e));
  process.exit(1);
});
