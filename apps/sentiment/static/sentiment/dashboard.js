// The sentiment dashboard: REST for the first view and filters, a WebSocket (/ws/sentiment/) for live updates.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { ticker: "*", range: "24h", source: "" };
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;

  async function api(path, options) {
    const response = await fetch("/api/sentiment/" + path, Object.assign({
      credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || JSON.stringify(body));
    return body;
  }
  function query(extra) {
    const q = new URLSearchParams({ range: state.range });
    if (state.ticker !== "*") q.set("ticker", state.ticker);
    if (state.source) q.set("source", state.source);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q.toString();
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- chart: plain SVG, volume bars under a mean-score line -------------------------------------
  function drawChart(points) {
    const svg = $("chart"), W = 800, H = 220, pad = 10;
    svg.innerHTML = "";
    const ns = "http://www.w3.org/2000/svg";
    const add = (tag, attrs) => { const n = document.createElementNS(ns, tag); for (const k in attrs) n.setAttribute(k, attrs[k]); svg.appendChild(n); return n; };
    add("line", { x1: 0, x2: W, y1: H / 2, y2: H / 2, class: "zero" });
    const n = points.length, maxCount = Math.max(1, ...points.map((p) => p.count));
    const step = n > 1 ? (W - 2 * pad) / (n - 1) : 0, barW = Math.max(2, Math.min(30, (W - 2 * pad) / Math.max(n, 1) - 2));
    const x = (i) => (n > 1 ? pad + i * step : W / 2), y = (s) => H / 2 - s * (H / 2 - pad);
    points.forEach((p, i) => {
      const h = (p.count / maxCount) * (H / 2 - pad);
      const bar = add("rect", { x: x(i) - barW / 2, y: H - h, width: barW, height: h, class: "vol" });
      bar.appendChild(document.createElementNS(ns, "title")).textContent = `${p.start}: ${p.count} headlines, mean ${p.mean_score}, ${Math.round(p.negative_share * 100)}% negative`;
    });
    if (n) add("polyline", { class: "score", points: points.map((p, i) => `${x(i)},${y(p.mean_score)}`).join(" ") });
    if (n === 1) add("circle", { cx: x(0), cy: y(points[0].mean_score), r: 4, class: "score" });
    svg.dataset.points = String(n);
    svg.dataset.total = String(points.reduce((a, p) => a + p.count, 0));
  }
  async function loadSeries() {
    const series = await api("series?" + query());
    $("chart-title").textContent = "Sentiment and volume · " + (state.ticker === "*" ? "all news" : state.ticker) + " · per " + series.granularity;
    drawChart(series.points);
  }
  let seriesTimer = null;
  function seriesSoon() { clearTimeout(seriesTimer); seriesTimer = setTimeout(loadSeries, 300); }

  // --- headlines ---------------------------------------------------------------------------------
  function headlineRow(item, fresh) {
    const tr = el("tr", { "data-id": item.id, class: fresh ? "fresh" : "" });
    tr.appendChild(el("td", {}, new Date(item.published_at).toLocaleString()));
    tr.appendChild(el("td", {}, item.source));
    tr.appendChild(el("td", {}, item.tickers.join(" ")));
    const td = el("td");
    if (item.url) td.appendChild(el("a", { href: item.url, rel: "noopener", target: "_blank" }, item.headline)); else td.textContent = item.headline;
    tr.appendChild(td);
    tr.appendChild(el("td", { class: "label label-" + item.label }, item.label));
    tr.appendChild(el("td", { class: "score" }, item.score.toFixed(2)));
    tr.appendChild(el("td", {}, "v" + item.model_version));
    const cell = el("td"), select = el("select", { "aria-label": "correct label" });
    for (const l of ["positive", "neutral", "negative"]) { const o = el("option", { value: l }, l); if (l === item.label) o.selected = true; select.appendChild(o); }
    const button = el("button", { type: "button", class: "relabel" }, "Relabel");
    button.onclick = async () => {
      try { await api(`headlines/${item.id}/relabel`, { method: "POST", body: JSON.stringify({ label: select.value }) }); button.textContent = "Saved ✓"; }
      catch (e) { button.textContent = "Failed: " + e.message; }
    };
    cell.append(select, button);
    tr.appendChild(cell);
    return tr;
  }
  async function loadHeadlines() {
    const items = await api("headlines?" + query({ limit: 50 }));
    const body = $("headlines").querySelector("tbody");
    body.innerHTML = "";
    for (const item of items) body.appendChild(headlineRow(item, false));
  }
  function matches(item) {
    return (state.ticker === "*" || item.tickers.includes(state.ticker)) && (!state.source || item.source === state.source);
  }
  function pushHeadlines(items) {
    const body = $("headlines").querySelector("tbody");
    for (const item of items.filter(matches)) {
      body.insertBefore(headlineRow(item, true), body.firstChild);
      const src = $("f-source");
      if (![...src.options].some((o) => o.value === item.source)) src.appendChild(el("option", { value: item.source }, item.source));
    }
    while (body.children.length > 50) body.removeChild(body.lastChild);
    seriesSoon();
  }

  // --- alerts ------------------------------------------------------------------------------------
  function alertItem(alert) {
    const li = el("li", { "data-id": alert.id, class: alert.acknowledged_at ? "acked" : "" });
    li.appendChild(el("strong", {}, `${alert.symbol} · ${alert.kind} `));
    li.appendChild(el("span", {}, alert.message));
    li.appendChild(el("div", { class: "muted small" }, new Date(alert.window_end).toLocaleString()));
    if (alert.acknowledged_at) {
      li.appendChild(el("div", { class: "muted small" }, `acknowledged by ${alert.acknowledged_by}: ${alert.comment}`));
    } else {
      const comment = el("input", { placeholder: "comment", class: "ack-comment" });
      const button = el("button", { type: "button", class: "ack" }, "Acknowledge");
      button.onclick = async () => {
        try { li.replaceWith(alertItem(await api(`alerts/${alert.id}/acknowledge`, { method: "POST", body: JSON.stringify({ comment: comment.value }) }))); }
        catch (e) { button.textContent = "Failed: " + e.message; }
      };
      li.append(comment, button);
    }
    return li;
  }
  async function loadAlerts() {
    const list = $("alerts");
    list.innerHTML = "";
    const q = state.ticker === "*" ? "" : "?ticker=" + encodeURIComponent(state.ticker);
    for (const alert of await api("alerts" + q)) list.appendChild(alertItem(alert));
  }
  function pushAlert(alert) {
    if (state.ticker !== "*" && alert.symbol !== state.ticker) return;
    $("alerts").insertBefore(alertItem(alert), $("alerts").firstChild);
  }

  // --- lag, watchlist ----------------------------------------------------------------------------
  // The lag the news consumers measured and published (read from Redis by the server, never from Kafka).
  // ?group= and ?topic= on the page's address show another consumer group or topic.
  async function loadLag() {
    const node = $("lag"), page = new URLSearchParams(location.search), q = new URLSearchParams();
    for (const k of ["group", "topic"]) if (page.get(k)) q.set(k, page.get(k));
    try {
      const lag = await api("lag" + (q.toString() ? "?" + q : ""));
      const parts = Object.entries(lag.partitions);
      node.dataset.total = lag.total === null ? "" : String(lag.total);
      node.textContent = lag.total === null ? "not published" : `${lag.total} message(s)`;
      node.title = lag.total === null ? lag.error
        : `${lag.group} on ${lag.topic}: ` + parts.map(([p, n]) => `partition ${p}: ${n}`).join(", ")
          + ` (measured ${new Date(lag.measured_at).toLocaleTimeString()} by ${lag.consumers.length} consumer(s))`;
    } catch (e) { node.dataset.total = ""; node.textContent = "unknown"; node.title = e.message; }
  }
  const RULE_FIELDS = ["threshold", "window_minutes", "baseline_days", "cooldown_minutes"];
  async function loadWatchlist() {
    const body = $("rules").querySelector("tbody");
    body.innerHTML = "";
    for (const t of await api("tickers")) {
      for (const rule of t.rules) {
        const tr = el("tr", { "data-rule": rule.id });
        tr.appendChild(el("td", {}, t.symbol + (t.aliases.length ? ` (${t.aliases.join(", ")})` : "")));
        tr.appendChild(el("td", {}, rule.kind));
        const inputs = {};
        for (const f of RULE_FIELDS) { const td = el("td"); inputs[f] = el("input", { type: "number", step: "any", value: rule[f], size: 5, name: f }); td.appendChild(inputs[f]); tr.appendChild(td); }
        const ch = el("td"); inputs.channels = el("input", { value: rule.channels.join(","), size: 14, name: "channels" }); ch.appendChild(inputs.channels); tr.appendChild(ch);
        const em = el("td"); inputs.email_to = el("input", { value: rule.email_to, size: 14, name: "email_to" }); em.appendChild(inputs.email_to); tr.appendChild(em);
        const wh = el("td"); inputs.webhook_url = el("input", { value: rule.webhook_url, size: 14, name: "webhook_url" }); wh.appendChild(inputs.webhook_url); tr.appendChild(wh);
        const on = el("td"); inputs.enabled = el("input", { type: "checkbox", name: "enabled" }); inputs.enabled.checked = rule.enabled; on.appendChild(inputs.enabled); tr.appendChild(on);
        const save = el("button", { type: "button" }, "Save");
        save.onclick = async () => {
          const payload = { kind: rule.kind, enabled: inputs.enabled.checked, email_to: inputs.email_to.value, webhook_url: inputs.webhook_url.value,
            channels: inputs.channels.value.split(",").map((s) => s.trim()).filter(Boolean) };
          for (const f of RULE_FIELDS) payload[f] = f === "threshold" ? Number(inputs[f].value) : parseInt(inputs[f].value, 10);
          try { await api(`tickers/${t.symbol}/rules/${rule.id}`, { method: "PUT", body: JSON.stringify(payload) }); $("watchlist-msg").textContent = `Saved ${t.symbol} ${rule.kind}.`; }
          catch (e) { $("watchlist-msg").textContent = "Not saved: " + e.message; }
        };
        const td = el("td"); td.appendChild(save); tr.appendChild(td);
        body.appendChild(tr);
      }
    }
  }
  $("ticker-form").addEventListener("submit", async () => {
    const aliases = $("t-aliases").value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const t = await api("tickers", { method: "POST", body: JSON.stringify({ symbol: $("t-symbol").value, name: $("t-name").value, aliases }) });
      $("watchlist-msg").textContent = `Saved ${t.symbol}.`;
      if (![...$("f-ticker").options].some((o) => o.value === t.symbol)) $("f-ticker").appendChild(el("option", { value: t.symbol }, t.symbol));
      loadWatchlist();
    } catch (e) { $("watchlist-msg").textContent = "Not saved: " + e.message; }
  });

  // --- filters and live feed ---------------------------------------------------------------------
  function reload() { loadSeries(); loadHeadlines(); loadAlerts(); }
  for (const [id, key] of [["f-ticker", "ticker"], ["f-range", "range"], ["f-source", "source"]]) {
    $(id).addEventListener("change", (e) => { state[key] = e.target.value; reload(); });
  }
  const params = new URLSearchParams(location.search);
  if (params.get("ticker")) { state.ticker = params.get("ticker").toUpperCase(); $("f-ticker").value = state.ticker; }

  function connect() {
    const live = $("live");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/sentiment/");
    ws.onopen = () => { live.dataset.state = "live"; };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.event === "headlines") pushHeadlines(msg.data.items);
      if (msg.event === "alert") pushAlert(msg.data);
      live.dataset.pushes = String(Number(live.dataset.pushes || 0) + 1);
    };
    ws.onclose = () => { live.dataset.state = "reconnecting"; setTimeout(connect, 2000); };
  }
  reload();
  loadLag();
  loadWatchlist();
  setInterval(loadLag, 5000);
  connect();
})();
