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
    if (!response.ok) { $("console-error").textContent = data.detail || ("error " + response.status); throw new Error(data.detail); }
    $("console-error").textContent = "";
    return data;
  }

  function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }

  async function listRefresh() {
    const rows = await call("GET", api + "/conversations");
    const list = $("conversations");
    list.innerHTML = rows.length ? "" : '<li class="muted">None yet.</li>';
    for (const c of rows) {
      const li = document.createElement("li");
      li.dataset.id = c.id;
      li.dataset.state = c.state;
      li.className = c.id === selected ? "selected" : "";
      li.textContent = "#" + c.id + " [" + c.state + "] " + c.last_customer_text +
        " — " + (c.intent || "no intent") + ", " + pct(c.confidence);
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
      }
      list.appendChild(li);
    }
        if (m.intent) {  // only an agent's confirmation makes the customer's question intent training data
          const right = document.createElement("button");
          right.type = "button"; right.className = "mark-right"; right.textContent = "Bot answer right";
          right.onclick = () => call("POST", api + "/messages/" + m.id + "/right").then(() => { right.disabled = true; });
          li.appendChild(document.createTextNode(" ")); li.appendChild(right);
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

  async function gapsRefresh() {
    const gaps = await call("GET", api + "/gaps");
    const list = $("gaps");
    list.innerHTML = gaps.length ? "" : '<li class="muted">None.</li>';
    for (const g of gaps) {
      const li = document.createElement("li");
      li.dataset.id = g.id;
      li.textContent = g.question + " (" + g.reason + ") ";
      const add = document.createElement("button");
      add.type = "button"; add.textContent = "Add to knowledge base";
      add.onclick = async () => {
        const answer = prompt("Answer for: " + g.question);
        if (!answer) return;
        const intent = prompt("Intent (optional)") || "";
        await call("POST", api + "/gaps/" + g.id + "/add", {answer, intent});
        gapsRefresh();
      };
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
      if (msg.event !== "conversation") return;
      listRefresh();
      if (msg.data.id === selected) detailRefresh();
      gapsRefresh();
    };
    ws.onclose = () => { $("console").dataset.state = "reconnecting"; setTimeout(connect, 2000); };
  }
  cannedLoad();
  connect();
})();
