// evalgate status page: polls /admin/stats every second, draws sparklines on canvas, and
// sends the "try it" form to /admin/try. No dependencies, nothing loaded from elsewhere.
"use strict";

const POINTS = 60;
const series = { hitRatio: [], rps: [], upstream: [], cache: [] };
let previous = null;

const $ = (id) => document.getElementById(id);
const text = (id, value) => { $(id).textContent = value; };

function percent(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; }
function ms(x) { return x == null ? "–" : x < 1 ? (x * 1000).toFixed(0) + " µs" : x.toFixed(1) + " ms"; }
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function duration(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function push(list, value) {
  list.push(value);
  if (list.length > POINTS) list.shift();
}

function sparkline(id, values, max) {
  const canvas = $(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const known = values.filter((v) => v != null);
  if (!known.length) return;
  const top = max ?? Math.max(...known, 1e-9);
  const step = w / (POINTS - 1);
  const x0 = w - (values.length - 1) * step;
  ctx.beginPath();
  values.forEach((v, i) => {
    const y = h - 2 - ((v ?? 0) / top) * (h - 4);
    i ? ctx.lineTo(x0 + i * step, y) : ctx.moveTo(x0, y);
  });
  ctx.strokeStyle = "#3b6ff5";
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.lineTo(w, h);
  ctx.lineTo(x0, h);
  ctx.closePath();
  ctx.fillStyle = "rgba(59, 111, 245, 0.12)";
  ctx.fill();
}

function rows(tableId, items, cells) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const cell of cells(item)) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function render(stats) {
  const now = performance.now();
  const r = stats.requests;
  let rps = null;
  if (previous) {
    const seconds = (now - previous.at) / 1000;
    rps = seconds > 0 ? Math.max(0, (r.requests - previous.requests) / seconds) : null;
  }
  previous = { at: now, requests: r.requests };

  text("hit-ratio", percent(stats.hit_ratio));
  const shared = stats.shared_cache;
  $("tiers").hidden = !shared;
  if (shared) {
    text("l1-ratio", percent(shared.l1.hit_ratio));
    text("l2-ratio", percent(shared.l2.hit_ratio));
    text("l2-state", shared.status.state);
  }
  text("hits", r.hits);
  text("stale", r.stale);
  text("misses", r.misses);
  text("bypasses", r.bypasses);
  text("rps", rps == null ? "–" : rps.toFixed(1));
  text("requests-total", r.requests);
  const lat = stats.upstream.latency_ms;
  text("upstream-p50", ms(lat.p50_ms));
  text("upstream-p90", ms(lat.p90_ms));
  text("upstream-p99", ms(lat.p99_ms));
  text("upstream-count", lat.count);
  text("upstream-inflight", stats.upstream.inflight);
  const c = stats.cache;
  text("cache-fill", percent(c.fill_ratio));
  text("cache-entries", c.entries);
  text("cache-bytes", bytes(c.weighted_bytes));
  text("cache-capacity", bytes(c.capacity_bytes));
  text("uptime", duration(stats.uptime_s));

  push(series.hitRatio, stats.hit_ratio);
  push(series.rps, rps);
  push(series.upstream, lat.p90_ms);
  push(series.cache, c.fill_ratio);
  sparkline("chart-hit-ratio", series.hitRatio, 1);
  sparkline("chart-rps", series.rps);
  sparkline("chart-upstream", series.upstream);
  sparkline("chart-cache", series.cache);

  rows("deployments", stats.deployments, (d) =>
    [d.deployment, percent(d.hit_ratio), d.hits, d.stale, d.misses]);
  rows("top-keys", stats.top_keys, (k) => [k.route, k.deployment, k.key, k.hits]);
}

async function poll() {
  const status = $("status");
  try {
    const response = await fetch("/admin/stats", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    status.textContent = "live";
    status.className = "pill ok";
  } catch (e) {
    status.textContent = "offline: " + e.message;
    status.className = "pill bad";
  } finally {
    setTimeout(poll, 1000);
  }
}

function showVariants(body) {
  const flags = body && typeof body === "object" && !Array.isArray(body) ? Object.entries(body) : [];
  rows("try-variants", flags, ([flag, v]) => [
    flag,
    v && typeof v === "object" ? (v.key ?? v.value ?? "") : String(v),
    v && v.payload !== undefined ? JSON.stringify(v.payload) : "",
  ]);
  $("try-variants").querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.flag = flags[i][0];
    tr.dataset.variant = tr.children[1].textContent;
  });
}

async function tryIt(event) {
  event.preventDefault();
  const error = $("try-error");
  error.hidden = true;
  const form = {
    deployment_key: $("try-key").value,
    user_id: $("try-user").value,
    device_id: $("try-device").value,
    flag_keys: $("try-flags").value,
    context: $("try-context").value,
  };
  try {
    const response = await fetch("/admin/try", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(form),
    });
    const result = await response.json();
    if (!response.ok) throw new Error(result.error || "HTTP " + response.status);
    const status = $("try-status");
    status.textContent = result.status;
    status.className = "pill " + (result.status < 400 ? "ok" : "bad");
    text("try-xcache", result.x_cache ?? "–");
    text("try-age", result.age ?? "–");
    text("try-body", JSON.stringify(result.body, null, 2));
    showVariants(result.status === 200 ? result.body : null);
    $("try-result").hidden = false;
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("try-form").addEventListener("submit", tryIt);
  poll();
});
