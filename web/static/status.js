// Status page: rows follow /api/v1/events (WebSocket) live; the system facts refresh every 10 s.
"use strict";
(() => {
  const table = document.querySelector("#ports tbody");
  const live = document.getElementById("live");
  const text = (tag, value, cls) => {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  };

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
                   call, text("span", p.peer || ""), duration];
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
    ws.onopen = () => { live.textContent = "live"; live.className = "ok"; };
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") message.ports.forEach(update);
      else if (message.type === "port") update(message.port);
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
  connect();
})();
