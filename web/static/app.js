// Shared by every page: fetch() that sends the session's CSRF token (from <meta name="csrf-token">),
// which the server requires on every state-changing request made with the session cookie.
"use strict";
window.hookflash = {
  csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  },
  fetch(url, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("X-CSRF-Token", this.csrf());
    return fetch(url, { ...options, headers, credentials: "same-origin" });
  },
  duration(since) {
    const s = Math.max(0, Math.floor(Date.now() / 1000 - since));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  },
};
