/* Hookflash diagnostics panels (web/diagnostics.py's API). A classic script; entry points:
 *
 *   mountScope(canvas, port, {csrf, ms})       live waveform (top) and spectrum (bottom) of both
 *                                              directions, polled from GET /api/v1/ports/{n}/scope
 *   mountCallStats(canvas, port, {csrf})       jitter / loss / MOS of the port's call, one point a second
 *   mountDiagnostics(element, port, {csrf})    forms: ring with test caller ID, play a tone, DTMF test
 *
 * Each returns {destroy()}. Port numbers are 1-based. Requests carry X-CSRF-Token and the session
 * cookie (same-origin). Elements marked data-scope-port / data-callstats-port / data-diagnostics-port
 * are mounted on DOMContentLoaded with the token of <meta name="csrf-token">.
 */
"use strict";

const SCOPE_POLL_MS = 200;
const STATS_POLL_MS = 1000;
const UP_COLOUR = "#1f77b4";   // uplink: the phone's mouthpiece
const DOWN_COLOUR = "#e6550d"; // downlink: the phone's earpiece
const DB_TOP = 5;
const DB_BOTTOM = -90;

async function diagApi(path, csrf, method = "GET", body = undefined) {
  const headers = { "X-CSRF-Token": csrf || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = (resp.headers.get("Content-Type") || "").includes("application/json") ? await resp.json() : null;
  if (!resp.ok) throw new Error((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
  return data;
}

/* Size the canvas's backing store to its CSS box (sharp on high-DPI screens); returns the 2-D context. */
function diagContext(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  ctx.font = "11px sans-serif";
  return ctx;
}

function diagLine(ctx, values, x0, y0, w, h, lo, hi, colour) {
  if (!values.length) return;
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1;
  ctx.beginPath();
  const span = hi - lo || 1;
  values.forEach((v, i) => {
    const x = x0 + (values.length === 1 ? 0 : (i / (values.length - 1)) * w);
    const clamped = Math.min(hi, Math.max(lo, v));
    const y = y0 + h - ((clamped - lo) / span) * h;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function diagFrame(ctx, x, y, w, h, title) {
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(x, y, w, h);
  ctx.fillStyle = "#444";
  ctx.fillText(title, x + 4, y + 12);
}

/* Keep polling `step` every `ms` until destroyed; errors are shown through `onError`. */
function diagPoller(step, ms, onError) {
  let timer = null;
  let stopped = false;
  const loop = async () => {
    try { await step(); onError(null); } catch (e) { onError(e); }
    if (!stopped) timer = setTimeout(loop, ms);
  };
  loop();
  return () => { stopped = true; clearTimeout(timer); };
}

function drawScope(canvas, s) {
  const ctx = diagContext(canvas);
  const W = canvas.clientWidth;
  const H = canvas.clientHeight;
  const half = Math.floor(H / 2);
  // Autoscaled to the louder direction (never below ±1000, so silence stays flat).
  let peak = 1000;
  for (const v of s.uplink) peak = Math.max(peak, Math.abs(v));
  for (const v of s.downlink) peak = Math.max(peak, Math.abs(v));
  diagFrame(ctx, 0, 0, W, half - 2, `waveform ${s.samples / 8} ms, ±${peak} · mouthpiece ${s.level_dbm0.uplink} dBm0 · earpiece ${s.level_dbm0.downlink} dBm0`);
  diagLine(ctx, s.uplink, 0, 14, W, half - 18, -peak, peak, UP_COLOUR);
  diagLine(ctx, s.downlink, 0, 14, W, half - 18, -peak, peak, DOWN_COLOUR);
  diagFrame(ctx, 0, half + 2, W, H - half - 2, `spectrum 0–4000 Hz, ${DB_BOTTOM}…${DB_TOP} dBm0`);
  diagLine(ctx, s.spectrum.uplink_dbm0, 0, half + 16, W, H - half - 20, DB_BOTTOM, DB_TOP, UP_COLOUR);
  diagLine(ctx, s.spectrum.downlink_dbm0, 0, half + 16, W, H - half - 20, DB_BOTTOM, DB_TOP, DOWN_COLOUR);
  ctx.fillStyle = "#666";
  for (const hz of [1000, 2000, 3000]) ctx.fillText(`${hz / 1000}k`, (hz / 4000) * W - 6, H - 3);
}

function mountScope(canvas, port, options = {}) {
  const csrf = options.csrf || "";
  const ms = options.ms || 100;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `port ${port} audio: mouthpiece blue, earpiece orange`);
  const stop = diagPoller(async () => {
    drawScope(canvas, await diagApi(`/api/v1/ports/${port}/scope?ms=${ms}`, csrf));
  }, SCOPE_POLL_MS, (e) => { canvas.title = e ? e.message : ""; });
  return { destroy: stop };
}

function drawCallStats(canvas, stats) {
  const ctx = diagContext(canvas);
  const W = canvas.clientWidth;
  const H = canvas.clientHeight;
  const series = stats.series;
  const rows = [
    ["jitter ms", series.map((p) => p.jitter_ms), 0, Math.max(20, ...series.map((p) => p.jitter_ms))],
    ["loss %", series.map((p) => p.loss_pct), 0, Math.max(5, ...series.map((p) => p.loss_pct))],
    ["MOS", series.map((p) => p.mos), 1, 4.5],
  ];
  const h = Math.floor(H / rows.length);
  rows.forEach(([title, values, lo, hi], i) => {
    const last = values.length ? ` · now ${values[values.length - 1]}` : "";
    diagFrame(ctx, 0, i * h, W, h - 2, `${title} (${lo}–${Math.round(hi * 10) / 10})${last}`);
    diagLine(ctx, values, 0, i * h + 14, W, h - 18, lo, hi, i === 2 ? "#2ca02c" : DOWN_COLOUR);
  });
  if (!series.length) {
    ctx.fillStyle = "#888";
    ctx.fillText("no call yet on this port", 8, H / 2);
  } else if (!stats.active) {
    ctx.fillStyle = "#888";
    ctx.fillText("call ended", W - 70, 12);
  }
}

function mountCallStats(canvas, port, options = {}) {
  const csrf = options.csrf || "";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `port ${port} call quality: jitter, loss, MOS per second`);
  const stop = diagPoller(async () => {
    drawCallStats(canvas, await diagApi(`/api/v1/ports/${port}/callstats`, csrf));
  }, STATS_POLL_MS, (e) => { canvas.title = e ? e.message : ""; });
  return { destroy: stop };
}

function diagField(label, input) {
  const wrap = document.createElement("label");
  wrap.append(`${label} `, input);
  return wrap;
}

function diagInput(attrs) {
  const input = document.createElement(attrs.tag || "input");
  for (const [k, v] of Object.entries(attrs)) if (k !== "tag") input.setAttribute(k, v);
  return input;
}

function diagHeading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

function diagSelect(values, selected) {
  const select = document.createElement("select");
  for (const v of values) {
    const option = document.createElement("option");
    option.value = option.textContent = v;
    if (v === selected) option.selected = true;
    select.append(option);
  }
  return select;
}

function mountDiagnostics(element, port, options = {}) {
  const csrf = options.csrf || "";
  const base = `/api/v1/ports/${port}`;
  const result = document.createElement("output");
  result.setAttribute("aria-live", "polite");
  const show = (text, error = false) => { result.textContent = text; result.classList.toggle("diag-error", error); };
  const run = (fn) => async (event) => {
    event.preventDefault();
    show("…");
    try { show(await fn()); } catch (e) { show(e.message, true); }
  };
  element.replaceChildren(result);
  element.classList.add("diagnostics");

  diagApi("/api/v1/diagnostics", csrf).then((opts) => {
    // Ring with a test caller ID.
    const ring = document.createElement("form");
    const cadence = diagSelect(opts.cadences, "normal");
    const standard = diagSelect(opts.callerid_standards, opts.callerid_standards[0]);
    const number = diagInput({ value: "5551234", inputmode: "numeric", pattern: "[0-9]*", maxlength: "20" });
    const name = diagInput({ value: "HOOKFLASH TEST", maxlength: "50" });
    const stopRing = diagInput({ type: "button", value: "Stop ringing" });
    ring.append(diagHeading("Ring the phone"), diagField("Cadence", cadence), diagField("Caller ID", standard), diagField("Number", number),
      diagField("Name", name), diagInput({ type: "submit", value: "Ring" }), stopRing);
    ring.addEventListener("submit", run(async () => {
      const r = await diagApi(`${base}/ring`, csrf, "POST", {
        cadence: cadence.value, standard: standard.value, number: number.value, name: name.value });
      return `Ringing port ${r.port} (${r.cadence}, ${r.standard}) for ${r.seconds} s`;
    }));
    stopRing.addEventListener("click", run(async () => {
      await diagApi(`${base}/ring`, csrf, "DELETE");
      return "Ringing stopped";
    }));

    // Play a tone: the country's by name, or a test sine.
    const toneForm = document.createElement("form");
    const toneName = diagSelect([...opts.tones, "sine"], "dial");
    const freq = diagInput({ type: "number", value: "1004", min: "20", max: "3900" });
    const level = diagInput({ type: "number", value: "-16", min: "-60", max: "0" });
    const seconds = diagInput({ type: "number", value: "3", min: "0.2", max: "30", step: "0.1" });
    toneForm.append(diagHeading("Play a tone"), diagField("Tone", toneName), diagField("Sine Hz", freq),
      diagField("Sine level (dBm0)", level),
      diagField("Seconds", seconds), diagInput({ type: "submit", value: "Play" }));
    toneForm.addEventListener("submit", run(async () => {
      const tone = toneName.value === "sine"
        ? { freq: Number(freq.value), level_dbm0: Number(level.value) } : toneName.value;
      const r = await diagApi(`${base}/tone`, csrf, "POST", { tone, seconds: Number(seconds.value) });
      return `Playing ${r.tone} on port ${r.port} for ${r.seconds} s`;
    }));

    // DTMF test: the sim phone dials (the keys also reach the dial plan) or we listen to a real one.
    const dtmf = document.createElement("form");
    const digits = diagInput({ value: "123456789*0#", maxlength: "20" });
    const listen = diagInput({ type: "number", value: "5", min: "1", max: "30" });
    dtmf.append(diagHeading("DTMF detector"), opts.simulator ? diagField("Digits", digits) : diagField("Listen seconds", listen),
      diagInput({ type: "submit", value: "DTMF test" }));
    dtmf.addEventListener("submit", run(async () => {
      const body = opts.simulator ? { digits: digits.value } : { listen_s: Number(listen.value) };
      const r = await diagApi(`${base}/dtmf-test`, csrf, "POST", body);
      const verdict = r.sent === undefined ? "" : r.match ? " ✓ all digits detected" : ` ✗ sent ${r.sent}`;
      return `Detector heard: ${r.heard || "(nothing)"}${verdict}`;
    }));

    element.replaceChildren(ring, toneForm, dtmf, result);
  }).catch((e) => show(e.message, true));

  return { destroy() { element.replaceChildren(); } };
}

document.addEventListener("DOMContentLoaded", () => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  for (const el of document.querySelectorAll("[data-scope-port]")) mountScope(el, Number(el.dataset.scopePort), { csrf });
  for (const el of document.querySelectorAll("[data-callstats-port]")) mountCallStats(el, Number(el.dataset.callstatsPort), { csrf });
  for (const el of document.querySelectorAll("[data-diagnostics-port]")) mountDiagnostics(el, Number(el.dataset.diagnosticsPort), { csrf });
});
