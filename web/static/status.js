// Status page: rows follow /api/v1/events (WebSocket) live; the system facts refresh every 10 s.
// While the page is visible it asks the stream for audio levels ({"levels": true}) and draws each
// port's mouthpiece and earpiece power (dBm0, ~4 readings a second) as two small meters.
"use strict";
(() => {
  const table = document.querySelector("#ports tbody");
  const live = document.getElementById("live");
  const METER_MIN = -60; // dBm0: quieter reads as an empty meter (speech sits near -20, tones -10..-16)
  const METER_MAX = 3; // a full-scale sine is +3.14 dBm0 (dsp/level.py)
  const DIRECTIONS = [["mouthpiece_dbm0", "Mouthpiece", "from the phone"], ["earpiece_dbm0", "Earpiece", "to the phone"]];
  const levels = {}; // port -> its last reading, kept so a row re-drawn on a status change keeps its meters
  let socket = null;
  const text = (tag, value, cls) => {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  };

  function meters(port) {
    const box = document.createElement("span");
    box.className = "levels";
    box.dataset.port = port;
    for (const [key, name, what] of DIRECTIONS) {
      const line = document.createElement("label");
      line.className = "level";
      const meter = document.createElement("meter");
      Object.assign(meter, { min: METER_MIN, max: METER_MAX, low: -45, high: -6, optimum: -20, value: METER_MIN });
      meter.dataset.key = key;
      line.append(text("span", name, "level-name"), meter, text("span", "", "level-value"));
      line.title = `${name} (${what}), power in dBm0`;
      box.append(line);
    }
    show(box, levels[port]);
    return box;
  }

  function show(box, reading) {
    for (const line of box.querySelectorAll(".level")) {
      const meter = line.querySelector("meter");
      const dbm0 = reading ? reading[meter.dataset.key] : null;
      meter.value = dbm0 === null ? METER_MIN : Math.max(METER_MIN, Math.min(METER_MAX, dbm0));
      line.querySelector(".level-value").textContent =
        dbm0 === null ? "" : dbm0 <= METER_MIN ? "silent" : `${Math.round(dbm0)}`;
    }
  }

  function updateLevels(ports) {
    for (const reading of ports) {
      levels[reading.port] = reading;
      const box = table.querySelector(`.levels[data-port="${reading.port}"]`);
      if (box) show(box, reading);
    }
  }

  function wantLevels() {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ levels: !document.hidden }));
  }

  function row(p) {
    const tr = document.createElement("tr");
    tr.dataset.port = p.port;
    const reg = document.createElement("span");
    reg.append(text("span", p.registration, `pill ${p.registration}`));
    if (p.registration_error) reg.append(text("small", p.registration_error, "field-error"));
    const duration = text("span", p.connected_since ? hookflash.duration(p.connected_since) : "", "duration");
    duration.dataset.since = p.connected_since || "";
    const call = document.createElement("span");
    call.append(text("span", p.call, `pill ${p.call}`));
    if (p.pending_config) call.append(text("small", "new settings after this call", "help"));
    const cells = [text("span", p.port), text("span", p.extension || "—"), reg, text("span", `${p.hook}-hook`),
                   call, text("span", p.peer || ""), duration, meters(p.port)];
    for (const cell of cells) {
      const td = document.createElement("td");
      td.append(cell);
      tr.append(td);
    }
    return tr;
  }

  function update(p) {
    const old = table.rows[p.port - 1];
    const fresh = row(p);
    if (old) old.replaceWith(fresh); else table.append(fresh);
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/events`);
    socket = ws;
    ws.onopen = () => { live.textContent = "live"; live.className = "ok"; wantLevels(); };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") message.ports.forEach(update);
      else if (message.type === "port") update(message.port);
      else if (message.type === "levels") updateLevels(message.ports);
    };
    ws.onclose = () => {
      live.textContent = "reconnecting…";
      live.className = "muted";
      setTimeout(connect, 2000);
    };
  }

  async function refreshSystem() {
    const response = await fetch("/api/v1/status", { credentials: "same-origin" });
    if (!response.ok) return;
    const s = (await response.json()).system;
    const set = (key, value) => { const el = document.querySelector(`#system [data-key="${key}"]`); if (el) el.textContent = value; };
    const since = (seconds) => {
      const up = Math.floor(seconds);
      const days = Math.floor(up / 86400);
      return `${days ? `${days} day${days > 1 ? "s" : ""}, ` : ""}${new Date(up * 1000).toISOString().substring(11, 19)}`;
    };
    set("uptime", since(s.uptime_s));
    if (s.system_uptime_s !== null) set("system_uptime", since(s.system_uptime_s));
    set("load", `${s.load.join(" / ")} on ${s.cpus} cores`);
    set("temperature", s.temperature_c === null ? "not available" : `${s.temperature_c.toFixed(1)} °C`);
  }

  setInterval(() => {
    for (const el of document.querySelectorAll(".duration")) {
      if (el.dataset.since) el.textContent = hookflash.duration(Number(el.dataset.since));
    }
  }, 1000);
  setInterval(refreshSystem, 10000);
  document.addEventListener("visibilitychange", wantLevels); // a hidden tab costs the gateway nothing
  connect();
})();
