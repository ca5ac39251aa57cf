// The Model operations page: the server renders it, a WebSocket (/ws/registry/ops/) keeps it current.
// Events (services/registry/live.py): ops_alert, alert_acknowledged, run_progress, champion_changed.
(function () {
  "use strict";
  const $ = (selector, root) => (root || document).querySelector(selector);
  const csrf = $("input[name=csrfmiddlewaretoken]").value;
  const RUNS_SHOWN = 10;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  // Times as the server renders them (UTC, "Y-m-d H:i"): the ISO strings pushed are UTC too.
  const when = (iso) => (iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") : "");
  const taskSection = (task) => document.querySelector(`section.task[data-task="${CSS.escape(task)}"]`);

  // --- alerts ----------------------------------------------------------------------------------------------
  function messageNode(alert) {
    const p = el("p", { class: "message" });
    p.append(el("span", { class: "when" }, when(alert.created_at)), " · ");
    alert.message.split("\n").forEach((line, i) => { if (i) p.appendChild(el("br")); p.append(line); });
    return p;
  }
  function openAlert(alert) {
    const div = el("div", { class: `alert open ${alert.level || "error"} fresh`, "data-alert": alert.id });
    div.appendChild(messageNode(alert));
    const form = el("form", { method: "post", action: $("#ops-alerts").dataset.ackUrl.replace("/0/", `/${alert.id}/`) });
    form.append(el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf }),
      el("input", { name: "comment", placeholder: "comment (optional)", maxlength: "2000" }), " ",
      el("button", { type: "submit" }, "Acknowledge"));
    div.appendChild(form);
    return div;
  }
  function onAlert(alert) {
    const list = $("#alerts-open");
    if ($(`[data-alert="${alert.id}"]`, list)) return;
    const none = $(".none", list);
    if (none) none.remove();
    list.insertBefore(openAlert(alert), list.firstChild);
    // An alert about a run means the run failed (or was abandoned): its row says so too.
    const row = alert.run ? document.querySelector(`tr.run[data-run="${alert.run}"][data-status="running"]`) : null;
    if (row) onRunProgress({ run: alert.run, task: alert.task, status: "failed", phase: row.dataset.phase || "" });
  }
  function onAlertAcknowledged(alert) {
    const open = $(`#alerts-open [data-alert="${alert.id}"]`);
    if (open) open.remove();
    if (!$("#alerts-open .alert")) $("#alerts-open").appendChild(el("p", { class: "muted none" }, "No open alerts."));
    const box = $("#alerts-acknowledged");
    if ($(`[data-alert="${alert.id}"]`, box)) return;
    const div = el("div", { class: "alert acknowledged", "data-alert": alert.id });
    div.append(messageNode(alert), el("p", { class: "muted small" }, `acknowledged by ${alert.acknowledged_by} at ${when(alert.acknowledged_at)}${alert.acknowledged_comment ? ": " + alert.acknowledged_comment : ""}`));
    $("summary", box).after(div);
    $(".count", box).textContent = String(box.querySelectorAll(".alert").length);
  }

  // --- runs --------------------------------------------------------------------------------------------------
  function phaseText(run) {
    if (run.status === "running") return run.phase ? run.phase + (run.total ? ` ${run.step}/${run.total} steps` : "") : "starting";
    if (run.status === "failed" && run.phase) return "in " + run.phase;
    return "";
  }
  function progressBar(run) {
    return run.status === "running" && run.total ? el("progress", { max: run.total, value: run.step || 0 }) : null;
  }
  function newRunRow(run) {
    const tr = el("tr", { class: "run fresh", "data-run": run.run });
    const cells = [["", when(new Date().toISOString())], ["duration", "running"], ["run-status", null], ["", "–"], ["version", ""],
      ["", ""], ["", ""], ["reason", ""], ["", ""]];
    for (const [cls, text] of cells) tr.appendChild(el("td", cls ? { class: cls } : {}, text));
    $(".run-status", tr).append(el("span", { class: "status" }), " ", el("span", { class: "phase" }));
    return tr;
  }
  function onRunProgress(run) {
    const section = taskSection(run.task);
    if (!section) return; // a task this page does not show yet: the next load lists it
    const body = $("table.runs tbody", section);
    let tr = $(`tr.run[data-run="${run.run}"]`, body);
    if (!tr) {
      const none = $("tr.none", body);
      if (none) none.remove();
      tr = newRunRow(run);
      body.insertBefore(tr, body.firstChild);
      while (body.children.length > RUNS_SHOWN) body.removeChild(body.lastChild);
    }
    tr.dataset.status = run.status;
    tr.dataset.phase = run.phase || "";
    $(".status", tr).textContent = run.status;
    $(".phase", tr).textContent = phaseText(run);
    const oldBar = $("progress", tr), bar = progressBar(run);
    if (oldBar) oldBar.remove();
    if (bar) $(".run-status", tr).appendChild(bar);
    if (run.version) $(".version", tr).textContent = "v" + run.version;
    if (run.reason) $(".reason", tr).textContent = run.reason;
    if (run.status !== "running" && $(".duration", tr).textContent === "running") $(".duration", tr).textContent = "finished";

    const current = $(".current-run", section);
    if (run.status === "running") {
      current.hidden = false;
      current.dataset.run = run.run;
      $(".phase-text", current).textContent = phaseText(run);
      const p = $("progress", current);
      p.max = run.total || 1;
      p.value = run.total ? run.step || 0 : 0;
    } else if (current.dataset.run === String(run.run)) {
      current.hidden = true;
    }
  }

  // --- champion ----------------------------------------------------------------------------------------------
  function onChampionChanged(change) {
    const section = taskSection(change.task);
    if (!section) return;
    const champion = $(".champion", section);
    champion.textContent = "v" + change.version;
    champion.dataset.champion = String(change.version);
    const body = $("table.champion-history tbody", section);
    const none = $("tr.none", body);
    if (none) none.remove();
    const tr = el("tr", { class: "fresh" });
    for (const text of [when(change.at), change.action, `v${change.previous ?? "–"} → v${change.version}`, change.actor, change.reason]) {
      tr.appendChild(el("td", {}, text));
    }
    body.insertBefore(tr, body.firstChild);
  }

  // --- the socket --------------------------------------------------------------------------------------------
  const HANDLERS = { ops_alert: onAlert, alert_acknowledged: onAlertAcknowledged, run_progress: onRunProgress,
    champion_changed: onChampionChanged };

  function connect() {
    const live = $("#ops-live");
    const state = (name, text) => { live.dataset.state = name; $(".live-text", live).textContent = text; };
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/registry/ops/");
    ws.onopen = () => state("live", "live");
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      const handler = HANDLERS[msg.event];
      if (handler) handler(msg.data);
      live.dataset.pushes = String(Number(live.dataset.pushes || 0) + 1);
    };
    ws.onclose = () => { state("offline", "offline, reconnecting…"); setTimeout(connect, 2000); };
  }
  connect();
})();
