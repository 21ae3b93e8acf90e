"use strict";
(function () {
  var TOKEN_KEY = "hydrogen-node-control-token";
  var UNIT = Number(document.body.dataset.unit) || 1e12;
  var controlEnabled = false;
  var busy = false;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value == null ? "" : String(value); }
  function badge(id, value, kind) {
    var el = $(id);
    el.textContent = value;
    el.className = "badge" + (kind ? " " + kind : "");
  }
  function tokens(amount) {
    var n = Number(amount || 0) / UNIT;
    return n.toLocaleString(undefined, { maximumFractionDigits: 4 }) + " HYD";
  }
  function bytes(n) {
    if (n == null) { return "not reported"; }
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function statusKind(s) {
    if (s === "Available" || s === "Busy") { return "ok"; }
    if (s === "Paused" || s === "PendingPause" || s === "PendingQuit") { return "warn"; }
    return "bad";
  }
  function getJson(path) {
    return fetch(path, { cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(path + ": HTTP " + r.status); }
      return r.json();
    });
  }

  function showStatus(s) {
    text("account", s.account);
    badge("daemon", s.daemon, s.daemon === "running" ? "ok" : "warn");
    badge("node-status", s.node_status || "not registered", statusKind(s.node_status));
    text("stake", tokens(s.stake));
    text("tokens", tokens(s.tokens));
    text("missed", s.missed_in_a_row);
    text("gpu", s.gpu || "unknown");
    text("vram", s.vram_gb + " GB");
    text("backend", s.backend);
    text("device-memory", bytes(s.device_memory_bytes));
    text("chain", s.chain_connected ? "connected" : "unreachable");
    $("chain").className = s.chain_connected ? "" : "bad";
    text("last-block", s.last_block == null ? "none yet" : "#" + s.last_block);
    var t = s.current_task;
    $("task").hidden = !t;
    $("task-none").hidden = !!t;
    if (t) {
      text("task-id", t.id);
      text("task-state", t.state || "unknown");
      text("task-waiting", t.waiting_for || "nothing");
      var images = t.images || 0, steps = t.steps || 0;
      text("image-text", images ? Math.min(t.image + 1, images) + "/" + images : "not generating");
      $("image-bar").max = Math.max(images, 1);
      $("image-bar").value = images ? t.image : 0;
      text("step-text", steps ? t.step + "/" + steps : "");
      $("step-bar").max = Math.max(steps, 1);
      $("step-bar").value = steps ? t.step : 0;
    }
    var c = s.counters || {};
    text("earnings", tokens(c.earnings));
    text("tasks-run", c.tasks_run);
    text("paid", c.paid);
    text("slashed", c.slashed);
    text("missed-total", c.missed);
    text("local-faults", c.local_faults);
    text("kicked-out", c.kicked_out);
    text("entropy", c.entropy_contributions);
    text("last-error", s.last_error || "none");
    $("last-error").className = s.last_error ? "" : "muted";
  }

  function verdict(v) {
    if (!v) { return ["", ""]; }
    if (v.verdict === "paid") { return ["paid " + tokens(v.amount), "ok"]; }
    if (v.verdict === "slashed") { return ["slashed " + tokens(v.amount), "bad"]; }
    if (v.verdict === "missed") { return ["missed", "bad"]; }
    return [v.verdict, ""];
  }

  function showRecent(tasks) {
    var body = $("recent");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    tasks.forEach(function (t) {
      var tr = document.createElement("tr");
      var v = verdict(t.verdict);
      var state = t.state + (t.detail ? ": " + t.detail : "");
      var result = t.result === "invalid_args" ? "invalid arguments" :
        t.result === "images" ? t.images + " image(s)" : "";
      var deadline = t.deadline ? new Date(t.deadline).toLocaleString() : "";
      [[t.id, ""], [state, t.state === "aborted" ? "warn" : ""], [result, ""], v, [deadline, ""]]
        .forEach(function (cell) {
          var td = document.createElement("td");
          td.textContent = cell[0];
          if (cell[1]) { td.className = cell[1]; }
          tr.appendChild(td);
        });
      body.appendChild(tr);
    });
    $("recent-none").hidden = tasks.length > 0;
  }

  function showLogs(doc) {
    var pre = $("log");
    pre.textContent = (doc.lines || []).join("\n");
    if ($("follow").checked) { pre.scrollTop = pre.scrollHeight; }
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function updateButtons() {
    var has = token() !== "";
    $("token-note").textContent = has ?
      "Token set for this tab. Actions run on the chain and take a block or two." :
      "Read-only until you enter the node's control token (kept in this tab only).";
    Array.prototype.forEach.call(document.querySelectorAll("button.action"), function (b) {
      b.disabled = !controlEnabled || !has || busy;
    });
  }

  function result(message, ok) {
    text("control-result", message);
    $("control-result").className = "mono " + (ok ? "ok" : "bad");
  }

  function act(action) {
    if (action === "quit" && !window.confirm(
      "Quit the network? The node takes no more tasks; the stake comes back once the task at hand is over.")) {
      return;
    }
    busy = true;
    updateButtons();
    result(action + ": sent, waiting for the chain…", true);
    fetch("/control/" + action, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token() },
      cache: "no-store"
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false, error: "HTTP " + r.status }; })
        .then(function (body) {
          if (r.ok && body.ok) {
            result(action + ": done; node status " + (body.node_status || "not registered"), true);
          } else {
            if (r.status === 401) {
              try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignored */ }
            }
            result(action + ": " + (body.error || ("HTTP " + r.status)), false);
          }
        });
    }).catch(function (e) {
      result(action + ": " + e.message, false);
    }).then(function () {
      busy = false;
      updateButtons();
      pollStatus();
    });
  }

  function setupControl() {
    getJson("/control").then(function (c) {
      controlEnabled = !!c.enabled;
      $("control-on").hidden = !controlEnabled;
      $("control-off").hidden = controlEnabled;
      updateButtons();
    }).catch(function () { /* retried with the next status poll */ });
    $("token-save").addEventListener("click", function () {
      var value = $("token").value.trim();
      $("token").value = "";
      try {
        if (value) { sessionStorage.setItem(TOKEN_KEY, value); }
      } catch (e) { result("this browser keeps no session storage", false); }
      updateButtons();
    });
    $("token-forget").addEventListener("click", function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignored */ }
      updateButtons();
    });
    Array.prototype.forEach.call(document.querySelectorAll("button.action"), function (b) {
      b.addEventListener("click", function () { act(b.dataset.action); });
    });
  }

  function pollStatus() {
    return getJson("/status").then(function (s) {
      showStatus(s);
      badge("reach", "live", "ok");
    }).catch(function () {
      badge("reach", "daemon unreachable", "bad");
    });
  }
  function pollRecent() { return getJson("/tasks/recent").then(showRecent).catch(function () {}); }
  function pollLogs() { return getJson("/logs").then(showLogs).catch(function () {}); }

  setupControl();
  pollStatus(); pollRecent(); pollLogs();
  setInterval(pollStatus, 2000);
  setInterval(pollRecent, 5000);
  setInterval(pollLogs, 3000);
}());
