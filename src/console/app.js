// wa-supervisor console: plain JavaScript, no framework, no build step.
//
// The API key lives in the `apiKey` variable of this closure and nowhere else:
// never in a URL, a cookie or the browser's web storage. Every request sends it
// as the X-API-Key header; live events come from GET /api/events read with fetch()
// (EventSource cannot send headers). Everything shown is built with textContent,
// never parsed as HTML.
"use strict";
(() => {
  const $ = (selector) => document.querySelector(selector);
  const REFRESH_MS = 15000;
  const RECONNECT_MS = 2000;

  let apiKey = null;
  let selected = null;
  let streamAbort = null;
  let refreshTimer = null;
  /** org id → { row, cells, status } */
  const rows = new Map();
  /** orgs opened in this tab: kept in the table even when `not_started`. */
  const opened = new Set();

  // Status → colour group (the text is always shown beside the colour).
  const GROUPS = {
    connected: "s-ok",
    connecting: "s-wait",
    reconnecting: "s-wait",
    qr_ready: "s-qr",
    not_started: "s-none",
  };
  const groupOf = (status) => GROUPS[status] || "s-bad";
  const label = (status) => (status || "unknown").replace(/_/g, " ");

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || "HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { "X-API-Key": apiKey }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let data = null;
    try {
      data = await resp.json();
    } catch (_) {
      data = null;
    }
    if (resp.status === 401) {
      signOut("The daemon refused the API key.");
      throw new ApiError(401, data);
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  const enc = encodeURIComponent;

  function say(text) {
    $("#message").textContent = text;
  }

  function announce(text) {
    $("#announcer").textContent = text;
  }

  function setConn(state, text) {
    const el = $("#conn-state");
    el.className = "conn conn-" + state;
    el.textContent = text;
  }

  function badge(el, status) {
    el.className = "status " + groupOf(status);
    el.textContent = label(status);
    el.dataset.status = status || "";
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // ---- confirmation -------------------------------------------------------

  function confirmAction(title, text, yesLabel) {
    const dialog = $("#confirm");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-yes").textContent = yesLabel;
    return new Promise((resolve) => {
      const finish = (ok) => {
        $("#confirm-yes").onclick = null;
        $("#confirm-no").onclick = null;
        dialog.onclose = null;
        if (dialog.open) dialog.close();
        resolve(ok);
      };
      $("#confirm-yes").onclick = () => finish(true);
      $("#confirm-no").onclick = () => finish(false);
      dialog.onclose = () => finish(false); // Escape
      dialog.showModal();
      $("#confirm-no").focus();
    });
  }

  // ---- sessions table -----------------------------------------------------

  function rowFor(org) {
    let entry = rows.get(org);
    if (entry) return entry;
    const row = document.createElement("tr");
    row.dataset.org = org;
    const cells = {};
    for (const field of ["org", "status", "phone", "reason", "retry"]) {
      const td = document.createElement("td");
      td.dataset.field = field;
      row.appendChild(td);
      cells[field] = td;
    }
    cells.org.textContent = org;
    const badgeEl = document.createElement("span");
    cells.status.appendChild(badgeEl);
    cells.badge = badgeEl;
    const actions = document.createElement("td");
    actions.className = "actions";
    for (const [action, text, danger] of [
      ["details", "Details", false],
      ["start", "Start", false],
      ["clean", "Clean", true],
      ["logout", "Log out", true],
    ]) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.action = action;
      b.textContent = text;
      b.setAttribute("aria-label", text + " organization " + org);
      if (danger) b.className = "danger";
      b.addEventListener("click", () => act(action, org));
      actions.appendChild(b);
    }
    row.appendChild(actions);
    // Keep rows ordered by organization id.
    const body = $("#sessions tbody");
    const after = [...body.children].find((r) => r.dataset.org > org);
    body.insertBefore(row, after || null);
    entry = { row, cells, status: null };
    rows.set(org, entry);
    return entry;
  }

  function showStatus(s) {
    const org = s.organization_id;
    if (s.status === "not_started" && !opened.has(org) && !rows.has(org)) return;
    const entry = rowFor(org);
    if (entry.status && entry.status !== s.status) {
      announce("Organization " + org + ": " + label(s.status));
    }
    entry.status = s.status;
    badge(entry.cells.badge, s.status);
    entry.cells.phone.textContent = s.phone_number || "";
    entry.cells.reason.textContent = s.reason || "";
    entry.cells.retry.textContent = when(s.retry_at);
    $("#count").textContent = "(" + rows.size + ")";
    $("#no-sessions").hidden = rows.size > 0;
    if (org === selected) showDetailStatus(s);
  }

  // Status requests of one org may answer out of order; only the newest shows.
  const sent = new Map();
  const shown = new Map();

  async function refreshOrg(org) {
    const n = (sent.get(org) || 0) + 1;
    sent.set(org, n);
    const s = await api("GET", "/api/status/" + enc(org));
    if (n > (shown.get(org) || 0)) {
      shown.set(org, n);
      showStatus(s);
    }
    return s;
  }

  async function refreshAll() {
    if (!apiKey) return;
    try {
      const list = await api("GET", "/api/sessions");
      const orgs = new Set(list.sessions.map((s) => s.organization_id));
      for (const org of opened) orgs.add(org);
      for (const org of rows.keys()) orgs.add(org);
      await Promise.all([...orgs].map((org) => refreshOrg(org)));
    } catch (e) {
      if (e.status !== 401) say("Refresh failed: " + e.message);
    }
  }

  // ---- actions ------------------------------------------------------------

  async function act(action, org) {
    try {
      switch (action) {
        case "details":
          await select(org);
          return;
        case "start": {
          const r = await api("POST", "/api/start-session", { organization_id: org });
          opened.add(org);
          say("Organization " + org + ": " + r.message + " (" + label(r.status) + ").");
          await refreshOrg(org);
          await select(org);
          return;
        }
        case "clean": {
          const ok = await confirmAction(
            "Clean organization " + org + "?",
            "The session is stopped, backed up and removed; the shop will have to scan a new QR code unless a backup is restored.",
            "Clean"
          );
          if (!ok) return;
          const r = await api("POST", "/api/force-clean-session", { organization_id: org });
          say("Organization " + org + ": " + r.message + (r.backup ? " (backup " + r.backup + ")." : "."));
          break;
        }
        case "logout": {
          const ok = await confirmAction(
            "Log organization " + org + " out?",
            "WhatsApp removes this device from the shop's phone; the session is backed up and removed.",
            "Log out"
          );
          if (!ok) return;
          const r = await api("POST", "/api/logout", { organization_id: org });
          say("Organization " + org + ": " + r.message);
          break;
        }
      }
      await refreshOrg(org);
      if (org === selected) await refreshDetail();
    } catch (e) {
      if (e.status !== 401) say("Organization " + org + ": " + e.message);
    }
  }

  async function restore(org, name) {
    const ok = await confirmAction(
      "Restore backup " + name + "?",
      "The session of organization " + org + " is stopped and kept as a new backup (before_restore); the chosen backup becomes the session and resumes.",
      "Restore"
    );
    if (!ok) return;
    try {
      const r = await api("POST", "/api/restore", { organization_id: org, backup: name });
      say(
        "Organization " + org + ": backup " + r.backup + " restored (" + label(r.status) + ")." +
          (r.before_restore ? " The replaced session was kept as " + r.before_restore + "." : "")
      );
      await refreshOrg(org);
      await refreshDetail();
    } catch (e) {
      if (e.status !== 401) say("Restore failed: " + e.message);
    }
  }

  async function cancelMessage(org, id) {
    const ok = await confirmAction("Cancel message " + id + "?", "It will not be sent.", "Cancel message");
    if (!ok) return;
    try {
      await api("DELETE", "/api/messages/" + enc(id));
      say("Message " + id + " cancelled.");
    } catch (e) {
      if (e.status !== 401) say("Message " + id + ": " + e.message);
    }
    if (org === selected) await showOutbox(org);
  }

  // ---- detail panel -------------------------------------------------------

  async function select(org) {
    selected = org;
    opened.add(org);
    for (const [id, entry] of rows) entry.row.classList.toggle("selected", id === org);
    $("#detail").hidden = false;
    $("#detail-org").textContent = org;
    $("#qr-img").removeAttribute("src");
    await refreshDetail();
  }

  async function refreshDetail() {
    const org = selected;
    if (!org) return;
    const s = await refreshOrg(org);
    await Promise.all([showBackups(org), showOutbox(org), s.status === "qr_ready" ? showQr(org) : null]);
  }

  function showDetailStatus(s) {
    badge($("#detail-status"), s.status);
    $("#detail-reason").textContent = s.reason ? "— " + s.reason : "";
    const qr = s.status === "qr_ready";
    $("#qr-box").hidden = !qr;
    if (!qr) {
      $("#qr-img").removeAttribute("src");
      $("#pairing-code").textContent = "";
    } else if (!$("#qr-img").getAttribute("src")) {
      showQr(s.organization_id);
    }
  }

  function setQr(dataUrl, pairingCode) {
    if (typeof dataUrl === "string" && dataUrl.startsWith("data:image/png;base64,")) {
      $("#qr-img").src = dataUrl;
    }
    $("#pairing-code").textContent = pairingCode ? "Pairing code: " + pairingCode : "";
  }

  async function showQr(org) {
    try {
      const r = await api("GET", "/api/qr/" + enc(org));
      if (org === selected && r.qr) setQr(r.qr, r.pairing_code);
    } catch (_) {
      // Scanned or rotated between two calls: the next event brings the news.
    }
  }

  async function showBackups(org) {
    const list = $("#backups");
    let r;
    try {
      r = await api("GET", "/api/backups/" + enc(org));
    } catch (e) {
      list.replaceChildren(item("Backups could not be read: " + e.message));
      return;
    }
    if (org !== selected) return;
    if (r.backups.length === 0) {
      list.replaceChildren(item("No backups."));
      return;
    }
    list.replaceChildren(
      ...r.backups.map((b) => {
        const li = document.createElement("li");
        li.dataset.backup = b.name;
        const name = document.createElement("span");
        name.className = "mono";
        name.textContent = b.name;
        const info = document.createElement("span");
        info.textContent = b.reason.replace(/_/g, " ") + ", " + when(b.created_at) + ", " + size(b.bytes);
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.action = "restore";
        button.textContent = "Restore";
        button.setAttribute("aria-label", "Restore backup " + b.name);
        button.addEventListener("click", () => restore(org, b.name));
        li.append(name, info, button);
        return li;
      })
    );
  }

  async function showOutbox(org) {
    const box = $("#outbox");
    const parts = [];
    for (const status of ["queued", "failed"]) {
      let r;
      try {
        r = await api("GET", "/api/messages?organization_id=" + enc(org) + "&status=" + status);
      } catch (e) {
        if (org !== selected) return;
        box.replaceChildren(
          para(e.status === 404 ? "Outbox not available on this daemon." : "Outbox could not be read: " + e.message)
        );
        return;
      }
      const h = document.createElement("h4");
      h.textContent = status === "queued" ? "Queued" : "Failed";
      const ul = document.createElement("ul");
      ul.className = "list";
      const messages = r.messages || [];
      if (messages.length === 0) ul.appendChild(item("None."));
      for (const m of messages) {
        const li = document.createElement("li");
        li.dataset.message = m.message_id;
        const text = document.createElement("span");
        text.textContent =
          m.phone + " — " + label(m.status) + ", " + when(m.created_at) + (m.error ? " — " + m.error : "");
        li.appendChild(text);
        if (m.status === "queued") {
          const b = document.createElement("button");
          b.type = "button";
          b.className = "danger";
          b.textContent = "Cancel";
          b.setAttribute("aria-label", "Cancel message " + m.message_id);
          b.addEventListener("click", () => cancelMessage(org, m.message_id));
          li.appendChild(b);
        }
        ul.appendChild(li);
      }
      parts.push(h, ul);
    }
    if (org === selected) box.replaceChildren(...parts);
  }

  function item(text) {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function para(text) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = text;
    return p;
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / 1024 / 1024).toFixed(1) + " MiB";
  }

  // ---- live events --------------------------------------------------------

  function parseFrame(block) {
    const frame = { event: "message", data: "" };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") frame.event = value;
      else if (field === "data") frame.data += (frame.data ? "\n" : "") + value;
      else if (field === "id") frame.id = value;
    }
    return frame;
  }

  function onFrame(frame) {
    if (frame.event === "lagged") {
      refreshAll();
      return;
    }
    let body;
    try {
      body = JSON.parse(frame.data);
    } catch (_) {
      return;
    }
    const org = body.organization_id;
    if (!org) return;
    if (frame.event === "session.qr" && org === selected) {
      setQr(body.data && body.data.qr, body.data && body.data.pairing_code);
    }
    if (frame.event.startsWith("message.")) {
      if (org === selected) showOutbox(org);
      return;
    }
    refreshOrg(org).catch(() => {});
    if (org === selected && frame.event === "session.cleaned") showBackups(org);
  }

  async function listen(abort) {
    while (apiKey && !abort.signal.aborted) {
      try {
        const resp = await fetch("/api/events", {
          headers: { "X-API-Key": apiKey },
          cache: "no-store",
          signal: abort.signal,
        });
        if (resp.status === 401) {
          signOut("The daemon refused the API key.");
          return;
        }
        if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
        setConn("live", "Live");
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            onFrame(parseFrame(block));
          }
        }
      } catch (_) {
        if (abort.signal.aborted) return;
      }
      setConn("wait", "Reconnecting…");
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
      await refreshAll();
    }
  }

  // ---- sign in / out ------------------------------------------------------

  async function signIn(key) {
    apiKey = key;
    try {
      await api("GET", "/api/sessions");
    } catch (e) {
      if (e.status !== 401) {
        $("#key-error").textContent = "Cannot reach the daemon: " + e.message;
        apiKey = null;
      }
      return;
    }
    $("#key-error").textContent = "";
    $("#api-key").value = "";
    $("#key-section").hidden = true;
    $("#app").hidden = false;
    setConn("wait", "Connecting…");
    streamAbort = new AbortController();
    listen(streamAbort);
    refreshTimer = setInterval(refreshAll, REFRESH_MS);
    await refreshAll();
    $("#org-input").focus();
  }

  function signOut(why) {
    apiKey = null;
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    clearInterval(refreshTimer);
    setConn("off", "Not connected");
    $("#app").hidden = true;
    $("#key-section").hidden = false;
    $("#key-error").textContent = why;
    $("#api-key").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("#api-key").value.trim();
      if (key) signIn(key);
    });
    $("#start-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("#org-input");
      if (input.reportValidity()) act("start", input.value.trim());
    });
    $("#show").addEventListener("click", () => {
      const input = $("#org-input");
      if (input.reportValidity()) select(input.value.trim()).catch((e) => say(e.message));
    });
    $("#api-key").focus();
  });
})();
