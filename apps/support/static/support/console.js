// The agents' console: conversation list and detail over the REST API, refreshed on WebSocket pushes.
(function () {
  const api = "/api/support/console";
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const $ = (id) => document.getElementById(id);
  let selected = null;

  async function call(method, url, body) {
    const response = await fetch(url, {method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: body ? JSON.stringify(body) : undefined});
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("console-error").textContent = (data.field ? data.field + ": " : "") + (data.detail || ("error " + response.status));
      throw Object.assign(new Error(data.detail), {data});
    }
    $("console-error").textContent = "";
    return data;
  }

  function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }

  async function listRefresh() {
    const query = new URLSearchParams();
    const words = $("conv-search").value.trim();
    if (words) { query.set("q", words); query.set("state", "all"); }  // a search looks at closed conversations too
    const rows = await call("GET", api + "/conversations" + (words ? "?" + query : ""));
    const list = $("conversations");
    list.innerHTML = rows.length ? "" : '<li class="muted">None yet.</li>';
    for (const c of rows) {
      const li = document.createElement("li");
      li.dataset.id = c.id;
      li.dataset.state = c.state;
      li.className = c.id === selected ? "selected" : "";
      li.textContent = "#" + c.id + " [" + c.state + "] " + c.last_customer_text +
        " — " + (c.intent || "no intent") + ", " + pct(c.confidence) +
        (c.labels && c.labels.length ? " · " + c.labels.join(", ") : "");
      li.onclick = () => select(c.id);
      list.appendChild(li);
    }
  }

  async function detailRefresh() {
    if (selected === null) return;
    const c = await call("GET", api + "/conversations/" + selected);
    $("detail").hidden = false;
    $("detail").dataset.id = c.id;
    $("detail-id").textContent = "#" + c.id;
    $("detail-state").textContent = c.state;
    $("detail").dataset.state = c.state;
    $("detail-intent").textContent = c.intent || "–";
    $("detail-confidence").textContent = pct(c.confidence);
    $("detail-agent").textContent = c.agent || "–";
    $("detail-csat").textContent = c.csat ? c.csat + "/5" : "–";
    if (document.activeElement !== $("detail-labels")) $("detail-labels").value = (c.labels || []).join(", ");
    const asked = c.summary ? c.summary.asked : [];
    $("detail-summary").textContent = asked.length ? "Asked before a person got involved: " + asked.join(" · ") +
      (c.summary.handoff_reason ? " (handed off: " + c.summary.handoff_reason.replace("_", " ") + ")" : "") : "";
    const list = $("messages");
    list.innerHTML = "";
    for (const m of c.messages) {
      const li = document.createElement("li");
      li.className = m.sender;
      li.dataset.id = m.id;
      li.textContent = m.sender + (m.author ? " (" + m.author + ")" : "") + ": " + m.text;
      if (m.sender === "bot" && m.citations.length) {
        const sources = document.createElement("small");
        sources.className = "muted";
        sources.textContent = " [" + (m.intent || "–") + ", " + pct(m.confidence) + "; " +
          m.citations.map((c) => c.title + " — " + (c.url || c.location)).join("; ") + "]";
        li.appendChild(sources);
      }
      if (m.sender === "bot" && !m.handoff) {
        const wrong = document.createElement("button");
        wrong.type = "button"; wrong.className = "mark-wrong"; wrong.textContent = "Bot answer wrong";
        wrong.onclick = () => call("POST", api + "/messages/" + m.id + "/wrong").then(gapsRefresh);
        li.appendChild(document.createTextNode(" ")); li.appendChild(wrong);
        if (m.intent) {  // only an agent's confirmation makes the customer's question intent training data
          const right = document.createElement("button");
          right.type = "button"; right.className = "mark-right"; right.textContent = "Bot answer right";
          right.onclick = () => call("POST", api + "/messages/" + m.id + "/right").then(() => { right.disabled = true; });
          li.appendChild(document.createTextNode(" ")); li.appendChild(right);
        }
      }
      list.appendChild(li);
    }
    const s = c.suggestion;
    $("suggestion").hidden = !s;
    if (s) {
      $("suggestion-text").textContent = s.text;
      $("suggestion-meta").textContent = "intent " + (s.intent || "–") + ", confidence " + pct(s.confidence);
      $("suggestion-sources").innerHTML = "";
      for (const src of s.citations) {
        const li = document.createElement("li");
        li.textContent = src.title + " — " + (src.url || src.location);
        $("suggestion-sources").appendChild(li);
      }
    }
  }

  // "Add to knowledge base": the agent edits a pre-masked question and title, writes the answer and confirms that
  // nothing personal is left (every customer sees the title as a source). While a form is open, pushes do not
  // redraw the list (the agent's typing would be lost); it is redrawn when the form closes.
  let gapFormOpen = false;

  function field(form, label, name, value, multiline) {
    const wrap = document.createElement("label");
    wrap.textContent = label;
    const input = document.createElement(multiline ? "textarea" : "input");
    input.name = name; input.value = value || "";
    if (multiline) input.rows = 2; else input.maxLength = 300;
    wrap.appendChild(input);
    form.appendChild(wrap);
    return input;
  }

  function gapForm(li, g) {
    const form = document.createElement("form");
    form.className = "gap-add";
    field(form, "Question customers ask (reworded, nothing personal)", "question", g.suggested_question, true);
    field(form, "Title every customer sees as the source", "title", g.suggested_title, false);
    field(form, "Answer", "answer", "", true).placeholder = "The answer customers will get";
    field(form, "Intent (optional)", "intent", "", false);
    const check = document.createElement("label");
    check.className = "confirm";
    const box = document.createElement("input");
    box.type = "checkbox"; box.name = "confirmed";
    check.appendChild(box);
    check.appendChild(document.createTextNode(" I checked the question and title: no names, numbers or addresses of the customer"));
    form.appendChild(check);
    const save = document.createElement("button");
    save.type = "submit"; save.textContent = "Add";
    const cancel = document.createElement("button");
    cancel.type = "button"; cancel.textContent = "Cancel"; cancel.className = "secondary";
    const close = () => { gapFormOpen = false; gapsRefresh(); };
    cancel.onclick = close;
    const buttons = document.createElement("div");
    buttons.className = "actions";
    buttons.appendChild(save); buttons.appendChild(cancel);
    form.appendChild(buttons);
    const error = document.createElement("p");
    error.className = "error gap-error";
    form.appendChild(error);
    form.onsubmit = async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(["question", "title", "answer", "intent"].map((n) => [n, form.elements[n].value]));
      try {
        await call("POST", api + "/gaps/" + g.id + "/add", {...values, confirmed: box.checked});
      } catch (err) {  // the form stays open, saying which field is at fault
        error.textContent = (err.data && err.data.detail) || err.message;
        return;
      }
      close();
    };
    li.appendChild(form);
    gapFormOpen = true;
    form.elements.question.focus();
  }

  async function gapsRefresh() {
    if (gapFormOpen) return;
    const gaps = await call("GET", api + "/gaps");
    const list = $("gaps");
    list.innerHTML = gaps.length ? "" : '<li class="muted">None.</li>';
    for (const g of gaps) {
      const li = document.createElement("li");
      li.dataset.id = g.id;
      li.appendChild(document.createTextNode(g.suggested_question + " (" + g.reason + ") "));  // masked again
      const add = document.createElement("button");
      add.type = "button"; add.className = "gap-open"; add.textContent = "Add to knowledge base";
      add.onclick = () => { if (!gapFormOpen) { add.hidden = true; gapForm(li, g); } };
      li.appendChild(add);
      list.appendChild(li);
    }
  }

  async function kbsRefresh() {
    const kbs = await call("GET", api + "/kbs");
    const list = $("kbs");
    list.innerHTML = kbs.length ? "" : '<li class="muted">None.</li>';
    let building = false;
    for (const kb of kbs) {
      const li = document.createElement("li");
      li.dataset.name = kb.name;
      li.dataset.state = kb.state;
      building = building || kb.state === "building";
      li.textContent = kb.name + ": " + kb.faqs + " FAQ, " + kb.passages + " passages — index " + kb.state +
        (kb.state === "building" ? " " + pct(kb.progress) : "") + (kb.message ? " (" + kb.message + ")" : "") + " ";
      const rebuild = document.createElement("button");
      rebuild.type = "button"; rebuild.textContent = "Rebuild index"; rebuild.disabled = kb.state === "building";
      rebuild.onclick = () => call("POST", api + "/kbs/" + kb.name + "/rebuild").then(kbsRefresh);
      li.appendChild(rebuild);
      list.appendChild(li);
    }
    if (building) setTimeout(kbsRefresh, 1000);  // follow the rebuild's progress
  }

  async function select(id) { selected = id; await listRefresh(); await detailRefresh(); }
  async function act(action, body) { await call("POST", api + "/conversations/" + selected + "/" + action, body); await detailRefresh(); await listRefresh(); }

  $("take-over").onclick = () => act("take-over");
  $("hand-back").onclick = () => act("hand-back");
  $("resolve").onclick = () => act("resolve");
  $("labels-save").onclick = () => call("POST", api + "/conversations/" + selected + "/labels",
    {labels: $("detail-labels").value.split(",").map((l) => l.trim()).filter(Boolean)}).then(() => { detailRefresh(); listRefresh(); });
  $("conv-search").oninput = () => { clearTimeout($("conv-search").timer); $("conv-search").timer = setTimeout(listRefresh, 250); };
  $("reply-send").onclick = async () => { const text = $("reply-text").value; await act("reply", {text}); $("reply-text").value = ""; };
  $("note-send").onclick = async () => { const text = $("reply-text").value; await act("note", {text}); $("reply-text").value = ""; };
  $("use-suggestion").onclick = () => { $("reply-text").value = $("suggestion-text").textContent; };
  $("canned").onchange = async () => {
    if (!$("canned").value || selected === null) return;
    const r = await call("POST", api + "/conversations/" + selected + "/canned", {canned: $("canned").value});
    $("reply-text").value = r.text;
  };

  async function cannedLoad() {
    for (const c of await call("GET", api + "/canned")) {
      const o = document.createElement("option"); o.value = c.id; o.textContent = c.name; $("canned").appendChild(o);
    }
  }

  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/support/console/");
    ws.onopen = () => { $("console").dataset.state = "live"; listRefresh(); detailRefresh(); gapsRefresh(); kbsRefresh(); };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.event === "handoff") {  // a notice, and the browser's own notification when the agent allowed it
        const text = "Handed off: #" + msg.data.id + " " + msg.data.last_customer_text +
          (msg.data.agent ? " (assigned to " + msg.data.agent + ")" : "");
        $("notice").textContent = text;
        if (window.Notification && Notification.permission === "granted") new Notification("Support desk", {body: text});
        return;
      }
      if (msg.event !== "conversation") return;
      listRefresh();
      if (msg.data.id === selected) detailRefresh();
      gapsRefresh();
    };
    ws.onclose = () => { $("console").dataset.state = "reconnecting"; setTimeout(connect, 2000); };
  }
  $("available").onchange = () => {
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    call("POST", api + "/presence", {available: $("available").checked});
  };
  call("GET", api + "/presence").then((p) => { $("available").checked = p.available; });
  cannedLoad();
  connect();
})();
