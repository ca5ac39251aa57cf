// The sentiment dashboard: REST for the first view and filters, a WebSocket (/ws/sentiment/) for live updates.
// Charts are uPlot (frontend/package-lock.json, copied into static/vendor/uplot/ by deploy/vendor.sh).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { ticker: "*", range: "24h", source: "", topic: "", page: 1, pageSize: 25, granularity: "hour" };
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const STEP = { minute: 60, hour: 3600, day: 86400 };  // bucket widths in seconds (buckets start on UTC boundaries)
  const SPAN = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, all: null };
  const RANGE_WORDS = { "1h": "last hour", "24h": "last 24 h", "7d": "last 7 days", "30d": "last 30 days", all: "all time" };
  const COLORS = { score: "#1f6feb", negative: "#cf222e", volume: "rgba(120, 144, 180, 0.45)", volumeLine: "#7890b4",
    firing: "#cf222e", fired: "#cf222e", pending: "#d4a72c", resolved: "#1a7f37" };

  async function api(path, options) {
    const response = await fetch("/api/sentiment/" + path, Object.assign({
      credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    }, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || JSON.stringify(body));
    return body;
  }
  function query(extra, keys) {
    const q = new URLSearchParams({ range: state.range });
    const use = keys || ["ticker", "source"];
    if (use.includes("ticker") && state.ticker !== "*") q.set("ticker", state.ticker);
    if (use.includes("source") && state.source) q.set("source", state.source);
    if (use.includes("topic") && state.topic) q.set("topic", state.topic);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q.toString();
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function throttled(fn, ms) {  // at most one call per `ms` while pushes keep coming (a debounce would never fire)
    let timer = null;
    return () => { if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms); };
  }
  const signed = (v, digits) => (v > 0 ? "+" : v < 0 ? "−" : "") + Math.abs(v).toFixed(digits);
  const pct = (v) => Math.round(v * 100) + "%";
  const toSec = (iso) => Math.floor(Date.parse(iso) / 1000);
  const pad2 = (n) => String(n).padStart(2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function timeLabel(sec, granularity, withDate) {
    const d = new Date(sec * 1000), day = `${MONTHS[d.getMonth()]} ${d.getDate()}`;
    if (granularity === "day") return day;
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return withDate ? `${day} ${hm}` : hm;
  }
  function scoreClass(v) { return v === null || v === undefined ? "" : v > 0.1 ? "pos" : v < -0.1 ? "neg" : "neu"; }

  // Buckets → aligned columns: one slot per bucket from the range's start to now, so empty buckets show as gaps
  // (no volume, no score) and the time axis is the range, not just the buckets that had news.
  function columns(points, granularity) {
    const step = STEP[granularity], now = Math.floor(Date.now() / 1000), span = SPAN[state.range];
    const byTs = new Map(points.map((p) => [toSec(p.start), p]));
    let from = span ? now - span : (points.length ? toSec(points[0].start) : now - step);
    from = Math.floor(from / step) * step;
    let xs = [];
    if ((now - from) / step <= 2000) { for (let t = from; t <= now; t += step) xs.push(t); }
    for (const t of byTs.keys()) if (!xs.length || t < xs[0] || t > xs[xs.length - 1] || (t - xs[0]) % step) xs.push(t);
    xs = [...new Set(xs)].sort((a, b) => a - b);
    const get = (t, k) => (byTs.has(t) ? byTs.get(t)[k] : null);
    return [xs, xs.map((t) => get(t, "count") || 0), xs.map((t) => get(t, "mean_score")), xs.map((t) => get(t, "negative_share"))];
  }

  // --- the main chart: volume bars (right axis), mean score and negative share (left axis), alert marks ----
  const chartBox = $("chart");
  let chart = null, chartData = null, chartAlerts = [];
  const uPlotMissing = typeof uPlot === "undefined";
  if (uPlotMissing) {
    chartBox.textContent = "The chart library (uPlot) is not installed in the static files: run deploy/vendor.sh (make demo does).";
    chartBox.classList.add("missing");
  }

  function alertTarget(alert) {  // "ACME", "#earnings" (a topic rule) or "ACME#earnings"
    return (alert.symbol || "") + (alert.topic ? "#" + alert.topic : "");
  }
  function alertTimes(alert) {  // when it started (pending or fired) and, if it did, when it resolved
    const start = alert.pending_at || alert.started_at || alert.fired_at || alert.window_end || alert.created_at;
    return { start: start ? toSec(start) : null, fired: alert.fired_at ? toSec(alert.fired_at) : null,
      resolved: alert.resolved_at ? toSec(alert.resolved_at) : null, state: alert.state || "fired" };
  }
  function alertMarksPlugin() {
    return { hooks: { draw: [(u) => {
      const ctx = u.ctx, { top, height } = u.bbox, dpr = window.devicePixelRatio || 1;
      const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
      let drawn = 0;
      ctx.save();
      for (const a of chartAlerts) {
        const t = alertTimes(a);
        if (t.start === null || t.start > xmax || (t.resolved || t.start) < xmin) continue;
        const x0 = u.valToPos(Math.max(t.start, xmin), "x", true);
        if (t.resolved !== null) {  // the span it was open, shaded, closed by a green mark
          const x1 = u.valToPos(Math.min(t.resolved, xmax), "x", true);
          ctx.fillStyle = "rgba(207, 34, 46, 0.08)";
          ctx.fillRect(x0, top, Math.max(x1 - x0, 1), height);
          ctx.strokeStyle = COLORS.resolved; ctx.lineWidth = 2 * dpr; ctx.setLineDash([]);
          ctx.beginPath(); ctx.moveTo(x1, top); ctx.lineTo(x1, top + height); ctx.stroke();
        }
        if (t.fired !== null && t.fired !== t.start && t.fired >= xmin && t.fired <= xmax) {  // pending → firing
          const xf = u.valToPos(t.fired, "x", true);
          ctx.strokeStyle = COLORS.firing; ctx.lineWidth = 2 * dpr; ctx.setLineDash([]);
          ctx.beginPath(); ctx.moveTo(xf, top); ctx.lineTo(xf, top + height); ctx.stroke();
        }
        const color = t.state === "pending" ? COLORS.pending : (t.fired !== null && t.fired !== t.start) ? COLORS.pending : COLORS.firing;
        ctx.strokeStyle = color; ctx.lineWidth = 2 * dpr; ctx.setLineDash(t.state === "pending" ? [5 * dpr, 4 * dpr] : []);
        ctx.beginPath(); ctx.moveTo(x0, top); ctx.lineTo(x0, top + height); ctx.stroke();
        ctx.fillStyle = color;  // a flag with the symbol at the top
        ctx.beginPath(); ctx.moveTo(x0, top); ctx.lineTo(x0 + 8 * dpr, top + 4 * dpr); ctx.lineTo(x0, top + 8 * dpr); ctx.fill();
        ctx.font = `${10 * dpr}px sans-serif`; ctx.fillText(alertTarget(a), x0 + 10 * dpr, top + 9 * dpr);
        drawn++;
      }
      ctx.restore();
      chartBox.dataset.alerts = String(drawn);
    }] } };
  }
  function tipPlugin() {
    const tip = $("chart-tip");
    return { hooks: { setCursor: [(u) => {
      const i = u.cursor.idx;
      if (i === null || i === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
      const [xs, counts, means, negs] = u.data, t = xs[i], step = STEP[state.granularity];
      const lines = [`<strong>${timeLabel(t, state.granularity, true)}</strong>`,
        `${counts[i]} headline(s)`,
        means[i] === null ? "no score" : `mean score ${signed(means[i], 2)}`,
        negs[i] === null ? "" : `${pct(negs[i])} negative`];
      for (const a of chartAlerts) {
        const at = alertTimes(a);
        if (at.start !== null && at.start >= t && at.start < t + step) lines.push(`⚑ ${alertTarget(a)} ${a.kind} (${at.state})`);
      }
      tip.innerHTML = lines.filter(Boolean).join("<br>");
      tip.hidden = false;
      // placed in the card (its positioned parent), beside the cursor, inside the plot
      const card = tip.offsetParent.getBoundingClientRect(), over = u.over.getBoundingClientRect();
      const left = over.left - card.left + u.cursor.left + 14;
      tip.style.left = (left + tip.offsetWidth > over.right - card.left ? left - tip.offsetWidth - 28 : left) + "px";
      tip.style.top = (over.top - card.top + 6) + "px";
      chartBox.dataset.hoverIdx = String(i);
    }] } };
  }
  function chartOptions(width) {
    const xs = [], ys = [];
    return {
      width, height: 280, cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: { live: true },
      scales: { x: { time: true }, score: { range: [-1, 1] }, count: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] } },
      series: [
        { label: "time", value: (u, v) => (v === null ? "–" : timeLabel(v, state.granularity, true)) },
        { label: "headlines", scale: "count", stroke: COLORS.volumeLine, fill: COLORS.volume, width: 1,
          paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false }, value: (u, v) => (v === null ? "–" : String(v)) },
        { label: "mean score", scale: "score", stroke: COLORS.score, width: 2, points: { show: true, size: 4 },
          value: (u, v) => (v === null ? "–" : signed(v, 2)) },
        { label: "negative share", scale: "score", stroke: COLORS.negative, width: 1.5, dash: [6, 4], points: { show: false },
          value: (u, v) => (v === null ? "–" : pct(v)) },
      ],
      axes: [
        { scale: "x", values: (u, splits) => {
          const withDate = (u.scales.x.max - u.scales.x.min) > 86400 && state.granularity !== "day";
          const labels = splits.map((v) => timeLabel(v, state.granularity, withDate));
          xs.splice(0, xs.length, ...labels); chartBox.dataset.xTicks = labels.join("|");
          return labels;
        }, space: 70 },
        { scale: "score", label: "mean score", values: (u, splits) => {
          const labels = splits.map((v) => (v === 0 ? "0" : signed(v, 1)));
          ys.splice(0, ys.length, ...labels); chartBox.dataset.yTicks = labels.join("|");
          return labels;
        } },
        { scale: "count", side: 1, label: "headlines", grid: { show: false },
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000],
          values: (u, splits) => splits.map((v) => String(v)) },
      ],
      plugins: [alertMarksPlugin(), tipPlugin()],
    };
  }
  function drawChart(points) {
    chartData = columns(points, state.granularity);
    chartBox.dataset.points = String(points.length);
    chartBox.dataset.total = String(points.reduce((a, p) => a + p.count, 0));
    if (uPlotMissing) return;
    if (chart && chart.__granularity === state.granularity) { chart.setData(chartData); return; }
    if (chart) chart.destroy();
    chart = new uPlot(chartOptions(Math.max(chartBox.clientWidth, 300)), chartData, chartBox);
    chart.__granularity = state.granularity;
  }
  if (!uPlotMissing && "ResizeObserver" in window) {
    new ResizeObserver(() => { if (chart) chart.setSize({ width: Math.max(chartBox.clientWidth, 300), height: 280 }); }).observe(chartBox);
  }
  async function loadSeries() {
    const series = await api("series?" + query());
    state.granularity = series.granularity;
    $("chart-title").textContent = "Sentiment and volume · " + (state.ticker === "*" ? "all news" : state.ticker)
      + " · " + RANGE_WORDS[state.range] + " · per " + series.granularity;
    drawChart(series.points);
  }

  // --- watchlist sparklines ------------------------------------------------------------------------
  let sparks = [];
  async function loadSparklines() {
    const rows = await api("sparklines?" + query({}, []));
    for (const s of sparks) s.destroy();
    sparks = [];
    $("watch-range").textContent = RANGE_WORDS[state.range];
    const body = $("watch").querySelector("tbody");
    body.innerHTML = "";
    for (const t of rows) {
      const tr = el("tr", { "data-symbol": t.symbol, class: t.symbol === state.ticker ? "active" : "" });
      const name = el("td");
      const pick = el("button", { type: "button", class: "link", title: "show " + t.symbol }, t.symbol);
      pick.onclick = () => setTicker(state.ticker === t.symbol ? "*" : t.symbol);
      name.appendChild(pick);
      if (t.name) name.appendChild(el("div", { class: "muted small" }, t.name));
      tr.appendChild(name);
      const cell = el("td", { class: "spark-cell" });
      const box = el("div", { class: "spark", "data-points": String(t.points.length),
        title: `${t.symbol}: ${t.count} headline(s)` + (t.count ? `, mean ${signed(t.mean_score, 2)}, ${pct(t.negative_share)} negative` : "") });
      cell.appendChild(box);
      tr.appendChild(cell);
      tr.appendChild(el("td", { class: "num" }, String(t.count)));
      tr.appendChild(el("td", { class: "num " + scoreClass(t.mean_score) }, t.mean_score === null ? "–" : signed(t.mean_score, 2)));
      tr.appendChild(el("td", { class: "num" }, t.negative_share === null ? "–" : pct(t.negative_share)));
      body.appendChild(tr);
      if (!uPlotMissing) sparks.push(sparkline(box, t));
    }
    if (!rows.length) body.appendChild(el("tr", {}, "")).appendChild(el("td", { colspan: 5, class: "muted" }, "No tickers yet: add one below."));
  }
  function sparkline(box, t) {
    const data = columns(t.points, state.granularity);
    const color = t.mean_score === null ? "#999" : t.mean_score < -0.1 ? COLORS.negative : t.mean_score > 0.1 ? "#1a7f37" : COLORS.score;
    return new uPlot({
      width: 150, height: 34, legend: { show: false }, cursor: { show: false }, select: { show: false },
      padding: [2, 2, 2, 2],
      scales: { x: { time: true }, score: { range: [-1, 1] }, count: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ show: false }, { scale: "score", show: false }, { scale: "count", show: false }],
      series: [{}, { scale: "count", fill: COLORS.volume, stroke: "transparent", paths: uPlot.paths.bars({ size: [0.8, 20] }), points: { show: false } },
        { scale: "score", stroke: color, width: 1.5, points: { show: true, size: 3 } }, { show: false }],
      hooks: { drawAxes: [(u) => {  // the zero line
        const y = u.valToPos(0, "score", true), ctx = u.ctx;
        ctx.save(); ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1; ctx.beginPath();
        ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke(); ctx.restore();
      }] },
    }, data, box);
  }

  // --- topic breakdown ---------------------------------------------------------------------------
  async function loadTopics() {
    const b = await api("topics?" + query());
    if (b.tagger) { $("topics-tagger").textContent = b.tagger.text; $("topics-tagger").dataset.source = b.tagger.source; }
    $("topics-range").textContent = RANGE_WORDS[state.range] + (b.limited ? ` · newest ${b.headlines} headlines` : ` · ${b.headlines} headline(s)`);
    const body = $("topics").querySelector("tbody"), max = Math.max(1, ...b.topics.map((t) => t.count));
    body.innerHTML = "";
    for (const t of b.topics) {
      const untagged = t.topic === "(none)";
      const tr = el("tr", { "data-topic": t.topic, class: t.topic === state.topic ? "active" : "" });
      const name = el("td");
      if (untagged) name.appendChild(el("span", { class: "muted" }, "no topic"));
      else {
        const pick = el("button", { type: "button", class: "link" }, t.topic);
        pick.onclick = () => setTopic(state.topic === t.topic ? "" : t.topic);
        name.appendChild(pick);
      }
      tr.appendChild(name);
      const bar = el("td", { class: "bar-cell" });
      const fill = el("span", { class: "bar " + scoreClass(t.mean_score) });
      fill.style.width = Math.max(2, Math.round((t.count / max) * 100)) + "%";
      bar.append(fill, el("span", { class: "bar-n" }, String(t.count)));
      tr.appendChild(bar);
      tr.appendChild(el("td", { class: "num " + scoreClass(t.mean_score) }, signed(t.mean_score, 2)));
      tr.appendChild(el("td", { class: "num" }, pct(t.negative_share)));
      body.appendChild(tr);
    }
    if (!b.topics.length) body.appendChild(el("tr")).appendChild(el("td", { colspan: 4, class: "muted" }, "No headlines in this range."));
    const select = $("f-topic");
    for (const t of b.topics) {
      if (t.topic !== "(none)" && ![...select.options].some((o) => o.value === t.topic)) select.appendChild(el("option", { value: t.topic }, t.topic));
    }
  }

  // --- headlines: one page at a time, the newest page follows the live feed ------------------------------
  const pageState = { total: 0, pages: 1, unseen: 0 };
  function headlineRow(item, fresh) {
    const tr = el("tr", { "data-id": item.id, class: fresh ? "fresh" : "" });
    const when = new Date(item.published_at);
    tr.appendChild(el("td", { class: "time", title: when.toString() },
      `${MONTHS[when.getMonth()]} ${when.getDate()}, ${pad2(when.getHours())}:${pad2(when.getMinutes())}`));
    const td = el("td", { class: "headline" });
    if (item.url) td.appendChild(el("a", { href: item.url, rel: "noopener", target: "_blank" }, item.headline)); else td.appendChild(el("span", {}, item.headline));
    const meta = el("div", { class: "meta" });
    meta.appendChild(el("span", { class: "source" }, item.source));
    for (const s of item.tickers) meta.appendChild(el("span", { class: "chip ticker" }, "$" + s));
    for (const t of item.topics) meta.appendChild(el("span", { class: "chip topic" }, t));
    td.appendChild(meta);
    tr.appendChild(td);
    tr.appendChild(el("td", { class: "label label-" + item.label }, item.label));
    tr.appendChild(el("td", { class: "score num " + scoreClass(item.score) }, item.score.toFixed(2)));
    tr.appendChild(el("td", { class: "model" }, "v" + item.model_version));
    const cell = el("td", { class: "relabel-cell" }), select = el("select", { "aria-label": "correct label" });
    for (const l of ["positive", "neutral", "negative"]) { const o = el("option", { value: l }, l); if (l === item.label) o.selected = true; select.appendChild(o); }
    const button = el("button", { type: "button", class: "relabel" }, "Relabel");
    button.onclick = async () => {
      try { await api(`headlines/${item.id}/relabel`, { method: "POST", body: JSON.stringify({ label: select.value }) }); button.textContent = "Saved ✓"; }
      catch (e) { button.textContent = "Failed: " + e.message; }
    };
    cell.append(select, button);
    // The topic, relabelled the same way: a training example of the `topic` task.
    const topicLine = el("div", { class: "relabel-topic" });
    const topicSelect = el("select", { "aria-label": "correct topic" });
    const current = item.topics[0] || "";
    const names = topicNames.includes(current) || !current ? topicNames : [current, ...topicNames];
    if (!current) topicSelect.appendChild(el("option", { value: "" }, "topic…"));
    for (const t of names) { const o = el("option", { value: t }, t); if (t === current) o.selected = true; topicSelect.appendChild(o); }
    const topicButton = el("button", { type: "button", class: "relabel-topic-button" }, "Set topic");
    topicButton.onclick = async () => {
      if (!topicSelect.value) return;
      try { await api(`headlines/${item.id}/topic`, { method: "POST", body: JSON.stringify({ topic: topicSelect.value }) }); topicButton.textContent = "Saved ✓"; }
      catch (e) { topicButton.textContent = "Failed: " + e.message; }
    };
    topicLine.append(topicSelect, topicButton);
    cell.appendChild(topicLine);
    tr.appendChild(cell);
    return tr;
  }
  function pagerShow() {
    const info = $("pg-info");
    info.dataset.page = String(state.page); info.dataset.pages = String(pageState.pages);
    info.textContent = `page ${state.page} of ${pageState.pages}`;
    $("hl-total").textContent = `${pageState.total} in ${RANGE_WORDS[state.range]}` + (state.topic ? ` · topic ${state.topic}` : "");
    $("pg-first").disabled = $("pg-prev").disabled = state.page <= 1;
    $("pg-next").disabled = state.page >= pageState.pages;
    $("hl-empty").hidden = pageState.total > 0;
    const banner = $("hl-new");
    banner.hidden = pageState.unseen === 0;
    $("hl-new-button").textContent = `${pageState.unseen} new headline(s) since · show the newest`;
  }
  async function loadHeadlines() {
    let body;
    try {
      body = await api("headlines/page?" + query({ page: state.page, page_size: state.pageSize }, ["ticker", "source", "topic"]));
    } catch (e) {  // a page past the end (the range moved on): back to the newest
      if (state.page > 1) { state.page = 1; return loadHeadlines(); }
      throw e;
    }
    pageState.total = body.total; pageState.pages = body.pages; pageState.unseen = 0;
    const tbody = $("headlines").querySelector("tbody");
    tbody.innerHTML = "";
    for (const item of body.items) tbody.appendChild(headlineRow(item, false));
    pagerShow();
  }
  function goPage(page) { state.page = page; loadHeadlines(); }
  $("pg-first").onclick = () => goPage(1);
  $("pg-prev").onclick = () => goPage(Math.max(1, state.page - 1));
  $("pg-next").onclick = () => goPage(Math.min(pageState.pages, state.page + 1));
  $("pg-size").onchange = (e) => { state.pageSize = Number(e.target.value); goPage(1); };
  $("hl-new-button").onclick = () => goPage(1);

  function matches(item) {
    return (state.ticker === "*" || item.tickers.includes(state.ticker)) && (!state.source || item.source === state.source)
      && (!state.topic || item.topics.includes(state.topic));
  }
  const refreshAggregates = throttled(() => { loadSeries(); loadSparklines(); loadTopics(); }, 500);
  function pushHeadlines(items) {
    const tbody = $("headlines").querySelector("tbody"), fresh = items.filter(matches);
    for (const item of items) {
      const src = $("f-source");
      if (![...src.options].some((o) => o.value === item.source)) src.appendChild(el("option", { value: item.source }, item.source));
    }
    pageState.total += fresh.length;
    pageState.pages = Math.max(1, Math.ceil(pageState.total / state.pageSize));
    if (state.page === 1) {
      for (const item of fresh) tbody.insertBefore(headlineRow(item, true), tbody.firstChild);
      while (tbody.children.length > state.pageSize) tbody.removeChild(tbody.lastChild);
    } else {
      pageState.unseen += fresh.length;  // later pages stay put; the banner offers the newest
    }
    pagerShow();
    refreshAggregates();
  }

  // --- alerts ------------------------------------------------------------------------------------
  function alertItem(alert) {
    const st = alert.state || "fired";
    const li = el("li", { "data-id": alert.id, "data-state": st, class: (alert.acknowledged_at ? "acked " : "") + "state-" + st });
    li.appendChild(el("strong", {}, `${alertTarget(alert)} · ${alert.kind} `));
    if (alert.state) li.appendChild(el("span", { class: "state-badge " + st }, st));
    li.appendChild(el("span", {}, " " + alert.message));
    const t = alertTimes(alert);
    li.appendChild(el("div", { class: "muted small" }, new Date(t.start * 1000).toLocaleString()
      + (t.resolved !== null ? " → resolved " + new Date(t.resolved * 1000).toLocaleString() : "")));
    if (alert.headline_ids && alert.headline_ids.length) {  // drill-down: the headlines of the window that made it
      const more = el("button", { type: "button", class: "link small drill-open" }, `${alert.headline_ids.length} headline(s) ▸`);
      const list = el("ul", { class: "drill", hidden: "" });
      more.onclick = async () => {
        if (!list.hidden) { list.hidden = true; return; }
        try {
          list.innerHTML = "";
          for (const h of await api(`alerts/${alert.id}/headlines`)) {
            const item = el("li", { "data-id": h.id });
            item.append(el("span", { class: "label-" + h.label }, signed(h.score, 2) + " "), document.createTextNode(h.headline));
            list.appendChild(item);
          }
          list.hidden = false;
        } catch (e) { more.textContent = "Failed: " + e.message; }
      };
      li.append(more, list);
    }
    if (alert.acknowledged_at) {
      li.appendChild(el("div", { class: "muted small" }, `acknowledged by ${alert.acknowledged_by}: ${alert.comment}`));
    } else {
      const comment = el("input", { placeholder: "comment", class: "ack-comment" });
      const button = el("button", { type: "button", class: "ack" }, "Acknowledge");
      button.onclick = async () => {
        try { const a = await api(`alerts/${alert.id}/acknowledge`, { method: "POST", body: JSON.stringify({ comment: comment.value }) }); alertUpsert(a); }
        catch (e) { button.textContent = "Failed: " + e.message; }
      };
      li.append(comment, button);
    }
    return li;
  }
  function alertUpsert(alert) {  // a new alert, or a new state of one already shown (pending → firing → resolved)
    const i = chartAlerts.findIndex((a) => a.id === alert.id);
    if (i >= 0) chartAlerts[i] = alert; else chartAlerts.unshift(alert);
    const list = $("alerts"), old = list.querySelector(`li[data-id="${alert.id}"]`);
    if (old) old.replaceWith(alertItem(alert)); else list.insertBefore(alertItem(alert), list.firstChild);
    if (chart) chart.redraw(false, false);
  }
  async function loadAlerts() {
    const list = $("alerts");
    const q = new URLSearchParams({ limit: 200 });
    if (state.ticker !== "*") q.set("ticker", state.ticker);
    chartAlerts = await api("alerts?" + q);
    list.innerHTML = "";
    for (const alert of chartAlerts) list.appendChild(alertItem(alert));
    if (chart) chart.redraw(false, false);
  }
  function pushAlert(alert) {
    if (state.ticker !== "*" && alert.symbol !== state.ticker) return;
    alertUpsert(alert);
  }

  // --- lag, watchlist rules ------------------------------------------------------------------------
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
      loadSparklines();
    } catch (e) { $("watchlist-msg").textContent = "Not saved: " + e.message; }
  });

  // --- filters and live feed ---------------------------------------------------------------------
  function reload() { state.page = 1; loadSeries(); loadHeadlines(); loadAlerts(); loadTopics(); loadSparklines(); }
  function setTicker(symbol) {
    state.ticker = symbol;
    if (![...$("f-ticker").options].some((o) => o.value === symbol)) $("f-ticker").appendChild(el("option", { value: symbol }, symbol));
    $("f-ticker").value = symbol;
    reload();
  }
  function setTopic(topic) {
    state.topic = topic;
    if (topic && ![...$("f-topic").options].some((o) => o.value === topic)) $("f-topic").appendChild(el("option", { value: topic }, topic));
    $("f-topic").value = topic;
    for (const tr of $("topics").querySelectorAll("tbody tr")) tr.classList.toggle("active", tr.dataset.topic === topic);
    state.page = 1;
    loadHeadlines();
  }
  for (const [id, key] of [["f-ticker", "ticker"], ["f-range", "range"], ["f-source", "source"]]) {
    $(id).addEventListener("change", (e) => { state[key] = e.target.value; reload(); });
  }
  $("f-topic").addEventListener("change", (e) => setTopic(e.target.value));
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
  let topicNames = [];  // the topics an analyst may pick (the topic model's labels, else the default set)
  api("topics/names").then((b) => { topicNames = b.names; }).catch(() => {}).finally(reload);
  loadLag();
  loadWatchlist();
  setInterval(loadLag, 5000);
  connect();
})();
