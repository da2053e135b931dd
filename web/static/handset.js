/* Hookflash virtual handset: one port's phone in the page (WebRTC to the gateway's aiortc).
 *
 * On the simulator the panel is the phone: lift / hang up / flash / keypad drive the simulator routes
 * (/api/v1/sim/ports/{n}/...; keys are real DTMF tones in the line, or rotary pulses), and the
 * microphone and speaker talk through POST /api/v1/ports/{n}/handset. On real hardware the simulator
 * routes answer 409 and the panel becomes a listen-only line monitor.
 *
 * Use:  mountHandset(element, port, {csrf})   (port is 1-based; returns {destroy()})
 * or mark elements <div data-handset-port="1"></div> and put the token in
 * <meta name="csrf-token" content="...">: they are mounted on DOMContentLoaded (no inline script).
 * A classic script: load with <script src="/static/handset.js" defer></script>.
 */
"use strict";

const HANDSET_POLL_MS = 500;
const ICE_GATHER_MS = 3000;

/* fetch with the CSRF header and the session cookie; rejects with the API's {"error"} message. */
async function hookflashApi(path, csrf, method = "GET", body = undefined) {
  const headers = { "X-CSRF-Token": csrf || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("application/json") ? await resp.json() : null;
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function hfElement(tag, attrs = {}, text = "") {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, ICE_GATHER_MS); // send the candidates gathered so far
  });
}

function mountHandset(element, port, options = {}) {
  const csrf = options.csrf || "";
  const sim = `/api/v1/sim/ports/${port}`;
  const ui = {
    status: hfElement("div", { class: "handset-status", role: "status", "aria-live": "polite" }, "…"),
    callerid: hfElement("div", { class: "handset-callerid" }),
    lamp: hfElement("span", { class: "handset-mwi", title: "message waiting lamp" }),
    lift: hfElement("button", { type: "button", class: "handset-lift" }, "Lift"),
    hangup: hfElement("button", { type: "button", class: "handset-hangup" }, "Hang up"),
    flash: hfElement("button", { type: "button", class: "handset-flash" }, "Flash"),
    listen: hfElement("button", { type: "button", class: "handset-listen", hidden: "" }, "Listen"),
    keypad: hfElement("div", { class: "handset-keypad", role: "group", "aria-label": "keypad" }),
    mode: hfElement("fieldset", { class: "handset-mode" }),
    audio: hfElement("audio", { autoplay: "" }),
    error: hfElement("p", { class: "handset-error", role: "alert" }),
  };
  const name = `handset-mode-${port}-${Math.random().toString(36).slice(2)}`;
  ui.mode.append(hfElement("legend", {}, "Dialling"));
  for (const [value, label] of [["dtmf", "Tone (DTMF)"], ["pulse", "Rotary (pulse)"]]) {
    const input = hfElement("input", { type: "radio", name, value });
    if (value === "dtmf") input.checked = true;
    const wrap = hfElement("label");
    wrap.append(input, ` ${label}`);
    ui.mode.append(wrap);
  }
  // A phone's 3 x 4 keypad (CSSOM styles, allowed under a strict Content-Security-Policy).
  Object.assign(ui.keypad.style, { display: "grid", gridTemplateColumns: "repeat(3, 3em)", gap: "0.25em" });
  const keys = {};
  for (const d of "123456789*0#") {
    keys[d] = hfElement("button", { type: "button", "data-digit": d }, d);
    ui.keypad.append(keys[d]);
  }
  const controls = hfElement("div", { class: "handset-controls" });
  controls.append(ui.lift, ui.hangup, ui.flash, ui.listen);
  const display = hfElement("div", { class: "handset-display" });
  display.append(ui.status, ui.callerid, ui.lamp);
  element.replaceChildren(display, controls, ui.keypad, ui.mode, ui.audio, ui.error);
  element.classList.add("handset");

  let pc = null;
  let mic = null;
  let listenOnly = false;
  let timer = null;
  let destroyed = false;
  let last = null;

  const method = () => ui.mode.querySelector("input:checked").value;
  const showError = (e) => { ui.error.textContent = e ? e.message || String(e) : ""; };
  const guarded = (fn) => async () => {
    showError(null);
    try { await fn(); } catch (e) { showError(e); }
  };

  async function connectAudio() {
    if (pc) return;
    pc = new RTCPeerConnection({ iceServers: [] }); // host candidates: the device is on the LAN
    pc.addEventListener("track", (e) => {
      ui.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc && pc.connectionState === "failed") { showError(new Error("audio connection failed")); closeAudio(); }
    });
    if (listenOnly) {
      pc.addTransceiver("audio", { direction: "recvonly" });
    } else {
      mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    const answer = await hookflashApi(`/api/v1/ports/${port}/handset`, csrf, "POST",
      { sdp: pc.localDescription.sdp, type: "offer" });
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  }

  function closeAudio() {
    if (mic) mic.getTracks().forEach((t) => t.stop());
    if (pc) pc.close();
    mic = null;
    pc = null;
    ui.audio.srcObject = null;
  }

  function render(s) {
    last = s;
    const parts = [s.offhook ? "Off hook" : "On hook"];
    if (s.ringing) parts.push(`Ringing (${s.rings})`);
    ui.status.textContent = parts.join(" · ");
    element.classList.toggle("handset-ringing", s.ringing);
    element.classList.toggle("handset-offhook", s.offhook);
    const cid = s.callerid;
    ui.callerid.textContent = cid
      ? [cid.name, cid.number, cid.time].filter(Boolean).join(" · ") || "Caller ID: private"
      : "";
    ui.lamp.textContent = s.mwi_lamp ? "● message waiting" : "";
    element.classList.toggle("handset-mwi-on", s.mwi_lamp);
    ui.lift.disabled = s.offhook;
    ui.hangup.disabled = !s.offhook;
    ui.flash.disabled = !s.offhook;
    const rotary = method() === "pulse";
    for (const [d, button] of Object.entries(keys)) button.disabled = !s.offhook || (rotary && !/\d/.test(d));
  }

  function becomeListener() {
    listenOnly = true;
    for (const el of [ui.lift, ui.hangup, ui.flash, ui.keypad, ui.mode, ui.callerid, ui.lamp]) el.hidden = true;
    ui.listen.hidden = false;
    ui.status.textContent = "Real phone line: listen only";
  }

  async function poll() {
    if (destroyed || listenOnly) return;
    try {
      render(await hookflashApi(sim, csrf));
    } catch (e) {
      if (e.status === 409) becomeListener(); else showError(e);
    }
    if (!destroyed && !listenOnly) timer = setTimeout(poll, HANDSET_POLL_MS);
  }

  ui.lift.addEventListener("click", guarded(async () => {
    await connectAudio();
    await hookflashApi(`${sim}/hook`, csrf, "POST", { offhook: true });
  }));
  ui.hangup.addEventListener("click", guarded(async () => {
    try { await hookflashApi(`${sim}/hook`, csrf, "POST", { offhook: false }); } finally { closeAudio(); }
  }));
  ui.flash.addEventListener("click", guarded(() => hookflashApi(`${sim}/flash`, csrf, "POST", {})));
  ui.keypad.addEventListener("click", (e) => {
    const digit = e.target.closest("[data-digit]");
    if (digit) guarded(() => hookflashApi(`${sim}/dial`, csrf, "POST",
      { digits: digit.dataset.digit, method: method() }))();
  });
  ui.listen.addEventListener("click", guarded(async () => {
    if (pc) { closeAudio(); ui.listen.textContent = "Listen"; return; }
    await connectAudio();
    ui.listen.textContent = "Stop listening";
  }));
  ui.mode.addEventListener("change", () => { if (last) render(last); });

  poll();
  return {
    destroy() {
      destroyed = true;
      clearTimeout(timer);
      closeAudio();
      element.replaceChildren();
    },
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  for (const el of document.querySelectorAll("[data-handset-port]")) {
    mountHandset(el, Number(el.dataset.handsetPort), { csrf: meta ? meta.content : "" });
  }
});
