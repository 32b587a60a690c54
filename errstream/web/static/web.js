// errstream web: optional enhancements. Every page works without this file.
// - keyboard: j/k move through the issue stream, o/Enter opens, x selects, e/r/i acknowledge/resolve/ignore
//   (the current issue's page, or the selection / current row in the stream), / focuses the search.
// - live alerts: Server-Sent Events from /api/v1/stream show a toast and prepend rows to alert tables;
//   the issue stream updates its counts in place and shows a "new events" bar.
(function () {
  "use strict";
  var rows = [], cur = -1;

  function setCur(i) {
    if (!rows.length) return;
    if (cur >= 0) rows[cur].classList.remove("cur");
    cur = Math.max(0, Math.min(rows.length - 1, i));
    rows[cur].classList.add("cur");
    rows[cur].scrollIntoView({block: "nearest"});
  }

  function act(action) {
    var form = document.getElementById("issue-actions") || document.getElementById("bulk");
    if (!form) return;
    if (form.id === "bulk") {
      var picked = form.querySelectorAll("input[name=fp]:checked");
      var box = cur >= 0 ? rows[cur].querySelector("input[name=fp]") : null;
      if (!picked.length && box) box.checked = true;
    }
    var btn = form.querySelector("button[name=action][value=" + action + "]");
    if (btn) btn.click();
  }

  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    switch (ev.key) {
      case "j": setCur(cur + 1); break;
      case "k": setCur(cur - 1); break;
      case "o": case "Enter": if (cur >= 0) location.href = rows[cur].dataset.href; else return; break;
      case "x": if (cur >= 0) { var c = rows[cur].querySelector("input[name=fp]"); if (c) c.checked = !c.checked; } break;
      case "e": act("acknowledge"); break;
      case "r": act("resolve"); break;
      case "i": act("ignore"); break;
      case "/": var q = document.getElementById("q"); if (q) q.focus(); else return; break;
      default: return;
    }
    ev.preventDefault();
  });

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function showAlert(a) {
    var box = document.getElementById("live");
    if (box) {
      var toast = document.createElement("div");
      toast.className = "toast";
      toast.appendChild(text("b", a.kind.replace("_", " ") + " "));
      var link = text(a.fingerprint ? "a" : "span", a.title);
      if (a.fingerprint) link.href = "/issues/" + a.fingerprint;
      toast.appendChild(link);
      box.prepend(toast);
      setTimeout(function () { toast.remove(); }, 15000);
    }
    var table = document.getElementById("alerts-feed");
    if (table) {
      var tr = document.createElement("tr");
      tr.className = "fresh live-alert";
      var wide = table.querySelector("th") !== null;
      if (wide) tr.appendChild(text("td", a.created_at.replace("T", " ").slice(0, 19) + " UTC", "muted"));
      tr.appendChild(text("td", a.kind));
      if (wide) { tr.appendChild(text("td", a.severity, "sev-" + a.severity)); tr.appendChild(text("td", a.service)); }
      var td = document.createElement("td");
      var l = text(a.fingerprint ? "a" : "span", a.title);
      if (a.fingerprint) l.href = "/issues/" + a.fingerprint;
      td.appendChild(l);
      tr.appendChild(td);
      if (!wide) tr.appendChild(text("td", "just now", "muted"));
      var first = table.querySelector("tr:not(:first-child)") || null;
      var anchor = wide ? table.rows[1] || null : table.rows[0] || null;
      (anchor ? anchor.parentNode : table).insertBefore(tr, anchor || first);
    }
  }

  // The stream updates itself: on a `tick` (the last 24 hours' event count changed) or an alert, the first
  // page fetches its own query as JSON once, updates the counts of the issues shown in place and counts
  // new events and issues not shown in a bar that reloads the page. One fetch at a time.
  var newIssues = {}, newEvents = 0, refreshing = false, again = false, FP = /^[0-9a-f]{32}$/;

  function liveTable() { return document.querySelector("table.stream[data-live-url]"); }

  function plural(n, what) { return n.toLocaleString("en-US") + " new " + what + (n === 1 ? "" : "s"); }

  function showBar() {
    var n = Object.keys(newIssues).length, bar = document.getElementById("new-events");
    if ((!newEvents && !n) || !bar) return;
    var parts = [];
    if (newEvents) parts.push(plural(newEvents, "event"));
    if (n) parts.push(plural(n, "issue"));
    var link = document.getElementById("show-new");
    link.textContent = parts.join(" · ") + " — show";
    link.href = location.pathname + location.search;
    bar.hidden = false;
  }

  function setCell(row, name, value) {
    var td = row.querySelector("td.c-" + name);
    if (td && typeof value === "number") td.textContent = value.toLocaleString("en-US");
  }

  function applyPage(table, page) {
    (page.issues || []).forEach(function (i) {
      if (!FP.test(i.fingerprint)) return;
      var row = table.querySelector('tr.row[data-fp="' + i.fingerprint + '"]');
      if (!row) { newIssues[i.fingerprint] = true; return; }
      var total = row.querySelector("td.c-events"), before = parseInt(total.getAttribute("data-n"), 10) || 0;
      if (i.events <= before) return;
      newEvents += i.events - before;
      total.setAttribute("data-n", String(i.events));
      ["events", "events_24h", "events_14d", "users"].forEach(function (k) { setCell(row, k, i[k]); });
      var last = row.querySelector("td.c-last_seen");
      if (last) last.textContent = "just now";
      total.classList.add("updated");
    });
    showBar();
  }

  function refreshStream() {
    var table = liveTable();
    if (!table || !window.fetch) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(table.getAttribute("data-live-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (page) { if (page) applyPage(table, page); })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { refreshing = false; if (again) { again = false; refreshStream(); } });
  }

  // One live stream per page on screen, never one per page in the back/forward cache or in a hidden tab:
  // a browser allows six connections per host, and streams kept open by cached pages used them up, so the
  // seventh page waited about a minute for a free one. Closed on pagehide and when the tab is hidden;
  // opened again on pageshow (also when restored from the cache) and when the tab is shown.
  var es = null;

  var opened = false;

  function openLive() {
    if (es || !window.EventSource || !document.getElementById("live") || document.visibilityState === "hidden") return;
    es = new EventSource("/api/v1/stream");
    es.addEventListener("alert", function (m) {
      try { showAlert(JSON.parse(m.data)); } catch (e) { /* a malformed message is skipped */ }
      refreshStream();
    });
    es.addEventListener("tick", refreshStream);
    if (opened) refreshStream();  // back on screen: catch up with what happened while hidden or cached
    opened = true;
  }

  function closeLive() {
    if (es) { es.close(); es = null; }
  }

  window.addEventListener("pagehide", closeLive);
  window.addEventListener("pageshow", openLive);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") closeLive(); else openLive();
  });

  function traceOptions() {
    var unfold = document.getElementById("unfold");
    if (!unfold || !document.querySelector("details.libs")) return;
    unfold.hidden = false;
    unfold.addEventListener("click", function () {
      var all = document.querySelectorAll("details.libs"), open = unfold.textContent === "show all frames";
      Array.prototype.forEach.call(all, function (d) { d.open = open; });
      unfold.textContent = open ? "fold library frames" : "show all frames";
    });
  }

  // The issue page's similar issues come after its first paint: the section's own HTML from the server
  // (escaped there, as every page is); without JavaScript its link opens them as a page.
  function loadSections() {
    if (!window.fetch) return;
    Array.prototype.forEach.call(document.querySelectorAll("section[data-src]"), function (section) {
      fetch(section.getAttribute("data-src") + "?fragment=1", {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          section.innerHTML = html;
          section.removeAttribute("data-src");
          section.setAttribute("data-loaded", "1");
        })
        .catch(function () { /* the link stays */ });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    loadSections();
    traceOptions();
    rows = Array.prototype.slice.call(document.querySelectorAll("table.stream tr.row"));
    openLive();
  });
})();
