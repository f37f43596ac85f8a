// Agola web UI: progressive enhancements of server-rendered pages (no framework, no build).
//  - confirmations for actions (forms with data-confirm);
//  - live regions: elements with data-live and an id are swapped with the same element of a fresh
//    copy of the page, on run events (server-sent, /events) and, while a run is active, every 2 s;
//  - the log viewer: the tail of a step log, earlier ranges on demand, live follow, ANSI colours.
// Every piece of log text goes into the page through textContent, never as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const TAIL_BYTES = 256 * 1024;
  const MAX_LINES = 5000;

  // ------------------------------------------------------------------ confirmations
  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  // ------------------------------------------------------------------ live regions
  let refreshing = false;
  let again = false;

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const resp = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok || resp.redirected) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      document.querySelectorAll("[data-live][id]").forEach(function (el) {
        const fresh = doc.getElementById(el.id);
        if (fresh && fresh.outerHTML !== el.outerHTML) el.replaceWith(document.importNode(fresh, true));
      });
      if (doc.body.dataset.active) document.body.dataset.active = "1";
      else delete document.body.dataset.active;
      document.dispatchEvent(new CustomEvent("agola:refreshed"));
    } catch (e) {
      // a network hiccup: the next event or poll tries again
    } finally {
      refreshing = false;
      if (again) { again = false; setTimeout(refresh, 100); }
    }
  }

  let pending = null;
  function soon() {
    if (pending === null) pending = setTimeout(function () { pending = null; refresh(); }, 150);
  }

  if (document.body.dataset.liveEvents && window.EventSource) {
    const events = new EventSource("/events");
    // Connected (or reconnected after a drop): what changed since the page was rendered, or while
    // the stream was down, sent no event to this page: fetch it once.
    events.onopen = function () { soon(); };
    events.onmessage = function (msg) {
      let ev = null;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      const runEl = document.querySelector("[data-run-id]");
      const here = document.getElementById("run-live");
      if (!here || (here.dataset.runId === ev.RunID) || !runEl) soon();
    };
  }

  function poll() {
    if (document.body.dataset.active && !document.hidden) refresh();
    setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);

  // ------------------------------------------------------------------ ANSI colours
  const SGR = /\x1b\[([0-9;]*)m/g;
  const OTHER_ESC = /\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b\][^\x07]*\x07|\r/g;

  function ansiSpans(text, state) {
    // state: {fg, bg, bold, italic, underline} carried across lines, as terminals do
    const out = document.createDocumentFragment();
    let last = 0;
    function emit(s) {
      if (!s) return;
      s = s.replace(OTHER_ESC, "");
      if (!s) return;
      const cls = [];
      if (state.fg !== null) cls.push("fg" + state.fg);
      if (state.bg !== null) cls.push("bg" + state.bg);
      if (state.bold) cls.push("b");
      if (state.italic) cls.push("i");
      if (state.underline) cls.push("u");
      if (cls.length === 0) { out.appendChild(document.createTextNode(s)); return; }
      const span = document.createElement("span");
      span.className = cls.join(" ");
      span.textContent = s;
      out.appendChild(span);
    }
    SGR.lastIndex = 0;
    let m;
    while ((m = SGR.exec(text)) !== null) {
      emit(text.slice(last, m.index));
      last = SGR.lastIndex;
      const codes = m[1] === "" ? [0] : m[1].split(";").map(Number);
      for (let i = 0; i < codes.length; i++) {
        const c = codes[i];
        if (c === 0) { state.fg = state.bg = null; state.bold = state.italic = state.underline = false; }
        else if (c === 1) state.bold = true;
        else if (c === 3) state.italic = true;
        else if (c === 4) state.underline = true;
        else if (c === 22) state.bold = false;
        else if (c === 23) state.italic = false;
        else if (c === 24) state.underline = false;
        else if (c >= 30 && c <= 37) state.fg = c - 30;
        else if (c >= 90 && c <= 97) state.fg = c - 90 + 8;
        else if (c === 39) state.fg = null;
        else if (c >= 40 && c <= 47) state.bg = c - 40;
        else if (c >= 100 && c <= 107) state.bg = c - 100 + 8;
        else if (c === 49) state.bg = null;
        else if ((c === 38 || c === 48) && codes[i + 1] === 5) i += 2; // 256 colours: ignored
        else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4; // true colour: ignored
      }
    }
    emit(text.slice(last));
    return out;
  }

  // ------------------------------------------------------------------ log viewer
  const encoder = new TextEncoder();

  function LogViewer(details) {
    this.details = details;
    this.url = details.dataset.log;
    this.key = details.dataset.step;
    this.box = details.querySelector(".logbox");
    this.start = 0;        // byte offset of the first shown line
    this.startLine = 0;    // lines before it
    this.end = 0;          // bytes read so far
    this.count = 0;        // lines shown
    this.pending = "";     // a line still being written
    this.ansi = { fg: null, bg: null, bold: false, italic: false, underline: false };
    this.following = false;
    this.build();
    this.load();
  }

  LogViewer.prototype.build = function () {
    const bar = document.createElement("div");
    bar.className = "logbar";
    this.earlier = document.createElement("button");
    this.earlier.type = "button";
    this.earlier.textContent = "Load earlier lines";
    this.earlier.hidden = true;
    this.earlier.addEventListener("click", this.loadEarlier.bind(this));
    const label = document.createElement("label");
    this.follow = document.createElement("input");
    this.follow.type = "checkbox";
    this.follow.checked = true;
    this.follow.className = "follow";
    label.appendChild(this.follow);
    label.appendChild(document.createTextNode(" Follow"));
    this.status = document.createElement("span");
    this.status.className = "muted small logstatus";
    this.status.setAttribute("aria-live", "polite");
    bar.append(this.earlier, label, this.status);
    this.log = document.createElement("div");
    this.log.className = "log";
    this.log.setAttribute("role", "log");
    this.log.tabIndex = 0;
    this.box.append(bar, this.log);
    const self = this;
    this.log.addEventListener("scroll", function () {
      const atBottom = self.log.scrollHeight - self.log.scrollTop - self.log.clientHeight < 4;
      if (!atBottom && self.follow.checked && self.userScrolled) self.follow.checked = false;
      self.userScrolled = true;
    });
  };

  LogViewer.prototype.phase = function () {
    const head = document.getElementById("step-" + this.key + "-head");
    return head ? head.dataset.phase : "";
  };

  LogViewer.prototype.line = function (text, n) {
    const row = document.createElement("div");
    row.className = "ln";
    row.id = "L" + this.key + "-" + n;
    const a = document.createElement("a");
    a.className = "lno";
    a.href = "#" + row.id;
    a.textContent = String(n);
    a.setAttribute("aria-hidden", "true");
    a.tabIndex = -1;
    const t = document.createElement("span");
    t.className = "lt";
    t.appendChild(ansiSpans(text, this.ansi));
    row.append(a, t);
    return row;
  };

  LogViewer.prototype.append = function (text) {
    const lines = (this.pending + text).split("\n");
    this.pending = lines.pop();
    const frag = document.createDocumentFragment();
    for (const l of lines) {
      this.count += 1;
      frag.appendChild(this.line(l, this.startLine + this.count));
    }
    this.log.appendChild(frag);
    this.trim();
    this.userScrolled = false;
    if (this.follow.checked) this.log.scrollTop = this.log.scrollHeight;
    this.status.textContent = (this.startLine + this.count) + " lines";
  };

  LogViewer.prototype.trim = function () {
    // A long follow keeps at most MAX_LINES in the page; earlier ones come back on demand.
    while (this.count > MAX_LINES && this.log.firstChild) {
      const first = this.log.firstChild;
      this.start += encoder.encode(first.querySelector(".lt").textContent).length + 1;
      this.startLine += 1;
      this.count -= 1;
      first.remove();
    }
    this.earlier.hidden = this.start === 0;
  };

  LogViewer.prototype.flush = function () {
    if (this.pending) { const p = this.pending; this.pending = ""; this.append(p + "\n"); }
  };

  LogViewer.prototype.load = async function () {
    this.status.textContent = "loading…";
    let resp;
    try {
      resp = await fetch(this.url + "&tail=" + TAIL_BYTES, { credentials: "same-origin", cache: "no-store" });
    } catch (e) { resp = null; }
    if (!resp || !resp.ok) {
      this.status.textContent = this.waiting() ? "waiting for the log…" : "no log";
      if (this.waiting()) setTimeout(this.load.bind(this), 1000);
      return;
    }
    this.start = Number(resp.headers.get("X-Log-Start") || 0);
    this.startLine = Number(resp.headers.get("X-Log-Start-Line") || 0);
    this.end = Number(resp.headers.get("X-Log-End") || 0);
    this.append(await resp.text());
    this.earlier.hidden = this.start === 0;
    this.jumpToAnchor();
    if (this.live()) this.followFrom();
    else { this.flush(); this.status.textContent = (this.startLine + this.count) + " lines"; }
  };

  LogViewer.prototype.waiting = function () {
    const p = this.phase();
    return document.body.dataset.active === "1" && (p === "notstarted" || p === "running" || p === "");
  };

  LogViewer.prototype.live = function () {
    return document.body.dataset.active === "1" && this.phase() === "running";
  };

  LogViewer.prototype.followFrom = async function () {
    if (this.following) return;
    this.following = true;
    this.status.textContent = "following…";
    const decoder = new TextDecoder();
    try {
      const resp = await fetch(this.url + "&follow&start=" + this.end, { credentials: "same-origin", cache: "no-store" });
      if (resp.ok && resp.body) {
        const reader = resp.body.getReader();
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          this.end += chunk.value.length;
          this.append(decoder.decode(chunk.value, { stream: true }));
        }
        this.append(decoder.decode());
      }
    } catch (e) {
      // stream cut: retried below while the step runs
    }
    this.following = false;
    const self = this;
    setTimeout(function () {
      if (self.live()) self.followFrom();
      else { self.flush(); self.status.textContent = (self.startLine + self.count) + " lines"; }
    }, 500);
  };

  LogViewer.prototype.loadEarlier = async function () {
    const from = Math.max(0, this.start - TAIL_BYTES);
    const resp = await fetch(this.url + "&start=" + from + "&end=" + this.start, { credentials: "same-origin" });
    if (!resp.ok) return;
    const start = Number(resp.headers.get("X-Log-Start") || 0);
    const startLine = Number(resp.headers.get("X-Log-Start-Line") || 0);
    let text = await resp.text();
    if (text.endsWith("\n")) text = text.slice(0, -1);
    const lines = text === "" ? [] : text.split("\n");
    const frag = document.createDocumentFragment();
    const state = { fg: null, bg: null, bold: false, italic: false, underline: false };
    const saved = this.ansi;
    this.ansi = state;
    lines.forEach(function (l, i) { frag.appendChild(this.line(l, startLine + i + 1)); }, this);
    this.ansi = saved;
    const before = this.log.scrollHeight;
    this.log.insertBefore(frag, this.log.firstChild);
    this.log.scrollTop += this.log.scrollHeight - before;
    this.count += lines.length;
    this.start = start;
    this.startLine = startLine;
    this.earlier.hidden = this.start === 0;
  };

  LogViewer.prototype.jumpToAnchor = function () {
    if (!window.location.hash.startsWith("#L" + this.key + "-")) return;
    const el = document.getElementById(window.location.hash.slice(1));
    if (el) { this.follow.checked = false; el.classList.add("hl"); el.scrollIntoView({ block: "center" }); }
  };

  function initViewer(details) {
    if (!details.open || details.viewer) return;
    details.viewer = new LogViewer(details);
  }

  document.querySelectorAll("details.step[data-log]").forEach(function (d) {
    d.addEventListener("toggle", function () { initViewer(d); });
    initViewer(d);
  });
  // Opening a step from a link to one of its lines (#L<step>-<n>).
  const m = /^#L(setup|\d+)-\d+$/.exec(window.location.hash);
  if (m) {
    const d = document.querySelector('details.step[data-step="' + m[1] + '"]');
    if (d && !d.open) d.open = true;
  }
})();
