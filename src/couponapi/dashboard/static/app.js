// The dashboard: polls /dashboard/stats every second and draws the coupons; the race button
// starts POST /dashboard/race and polls GET /dashboard/race until the table is full.
"use strict";

const POLL_MS = 1000;
const cards = new Map();
const fmt = new Intl.NumberFormat("en");

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function card(coupon) {
  let c = cards.get(coupon.id);
  if (c) return c;
  const root = el("article", "card");
  root.dataset.couponId = coupon.id;
  const title = el("h3", null, coupon.name || "(no name)");
  const id = el("div", "id", coupon.id);
  const count = el("div", "count");
  const remaining = el("span", "remaining");
  const total = el("small", "total");
  count.append(remaining, total);
  const bar = el("div", "bar");
  const fill = el("div");
  bar.append(fill);
  const holds = el("div", "holds");
  const rates = el("div", "rates");
  const claims = el("span", "claims");
  const refusals = el("span", "refusals");
  rates.append(claims, refusals);
  const canvas = el("canvas");
  root.append(title, id, count, bar, holds, rates, canvas);
  c = { root, remaining, total, fill, holds, claims, refusals, canvas };
  cards.set(coupon.id, c);
  return c;
}

function sparkline(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth * ratio, h = canvas.clientHeight * ratio;
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...series.flatMap((s) => s.points));
  for (const { points, color } of series) {
    g.beginPath();
    points.forEach((v, i) => {
      const x = (i / Math.max(1, points.length - 1)) * w;
      const y = h - 2 - (v / top) * (h - 4);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.strokeStyle = color;
    g.lineWidth = 1.5 * ratio;
    g.stroke();
  }
}

function render(stats) {
  document.getElementById("window").textContent = Math.round(stats.window_s / 60);
  const list = document.getElementById("coupons");
  const seen = new Set();
  stats.coupons.forEach((coupon, index) => {
    const c = card(coupon);
    seen.add(coupon.id);
    if (list.children[index] !== c.root) list.insertBefore(c.root, list.children[index] || null);
    c.remaining.textContent = fmt.format(coupon.remaining);
    c.total.textContent = ` / ${fmt.format(coupon.quantity)} left`;
    const share = coupon.quantity ? (100 * coupon.remaining) / coupon.quantity : 0;
    c.fill.style.width = `${Math.max(0, Math.min(100, share))}%`;
    c.root.classList.toggle("soldout", coupon.remaining === 0);
    // Holds: how many claims still hold a unit, and how many gave theirs back by expiring.
    const hold = coupon.hold_seconds ? ` (hold ${fmt.format(coupon.hold_seconds)} s)` : "";
    c.holds.textContent =
      `${fmt.format(coupon.held)} held · ${fmt.format(coupon.expired)} expired${hold}`;
    c.holds.hidden = !coupon.hold_seconds && !coupon.held && !coupon.expired;
    c.claims.textContent = `${fmt.format(coupon.claims_per_s)} claims/s`;
    c.refusals.textContent = `${fmt.format(coupon.refusals_per_s)} refusals/s`;
    sparkline(c.canvas, [
      { points: coupon.refusals, color: "#c53030" },
      { points: coupon.claims, color: "#2f855a" },
    ]);
  });
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.root.remove(); cards.delete(id); }
  }
  document.getElementById("empty").hidden = stats.coupons.length > 0;
}

// The dashboard's data is the admin's unless the server opens it (COUPONAPI_DASHBOARD_PUBLIC):
// the token typed in the form is sent with every poll, and kept for this tab only.
function token() {
  const typed = document.querySelector("input[name=token]").value;
  if (typed) sessionStorage.setItem("couponapi-token", typed);
  return typed || sessionStorage.getItem("couponapi-token") || "";
}

function authHeaders() {
  const given = token();
  return given ? { "Authorization": `Bearer ${given}` } : {};
}

async function poll() {
  const live = document.getElementById("live");
  try {
    const response = await fetch("/dashboard/stats", { cache: "no-store", headers: authHeaders() });
    if (response.status === 401 || response.status === 403) {
      live.classList.add("stale");
      live.textContent = "locked: type the admin token below";
      return;
    }
    if (!response.ok) throw new Error(String(response.status));
    render(await response.json());
    live.classList.remove("stale");
    live.textContent = "live";
  } catch (error) {
    live.classList.add("stale");
    live.textContent = "offline";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function raceRows(status) {
  const body = document.querySelector("#race-table tbody");
  body.replaceChildren(...status.rows.map((row) => {
    const tr = el("tr", row.oversold ? "oversold" : (row.broken ? "broken" : "safe"));
    tr.dataset.strategy = row.strategy;
    const agrees = row.ledger_agrees === null ? "?" : (row.ledger_agrees ? "yes" : "NO");
    for (const text of [row.strategy, `${fmt.format(row.granted)} / ${fmt.format(row.quantity)}`,
      fmt.format(row.oversold), row.ledger_rows === null ? "?" : fmt.format(row.ledger_rows),
      agrees, fmt.format(Math.round(row.claims_per_s)), row.p99_ms.toFixed(1), row.verdict]) {
      tr.append(el("td", null, text));
    }
    return tr;
  }));
}

async function followRace() {
  const state = document.getElementById("race-state");
  const button = document.getElementById("race-button");
  try {
    const answer = await fetch("/dashboard/race", { cache: "no-store", headers: authHeaders() });
    if (!answer.ok) return;  // locked: the admin token is needed to follow a race
    const status = await answer.json();
    raceRows(status);
    const running = status.state === "running" || status.state === "elsewhere";
    button.disabled = running;
    if (status.state === "running") {
      state.textContent = status.running
        ? `racing ${status.running}: ${fmt.format(status.done)} of ${fmt.format(status.planned)} claims`
        : "starting...";
    } else if (status.state === "elsewhere") {
      state.textContent = "a race is running in another server process";
    } else if (status.state === "failed") {
      state.textContent = `failed: ${status.error}`;
    } else if (status.state === "done") {
      state.textContent = "done";
    }
    if (running) setTimeout(followRace, 500);
  } catch (error) {
    setTimeout(followRace, 2000);
  }
}

async function startRace(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = {};
  for (const key of ["quantity", "users", "concurrency"]) body[key] = Number(form.get(key));
  const state = document.getElementById("race-state");
  document.getElementById("race-button").disabled = true;
  const headers = { "Content-Type": "application/json", ...authHeaders() };
  const response = await fetch("/dashboard/race", {
    method: "POST", headers, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    state.textContent = error.errorDescription || error.detail || `refused (${response.status})`;
  }
  followRace();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("race-form").addEventListener("submit", startRace);
  poll();
  followRace();
});
