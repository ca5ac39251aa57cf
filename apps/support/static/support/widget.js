// The customer's chat widget: POST /api/support/messages, agent replies arrive over /ws/support/chat/<token>/.
(function () {
  const box = document.getElementById("chat");
  const list = document.getElementById("chat-messages");
  const key = "support-conversation-" + box.dataset.kb;
  let token = sessionStorage.getItem(key);
  let ws = null;

  function render(m) {
    if (list.querySelector('li[data-id="' + m.id + '"]')) return;
    const li = document.createElement("li");
    li.className = m.sender;
    li.dataset.id = m.id;
    li.textContent = (m.sender === "customer" ? "You" : m.sender === "agent" ? "Agent" : "Bot") + ": " + m.text;
    if (m.citations && m.citations.length) {
      const sources = document.createElement("small");
      sources.className = "muted";
      sources.textContent = " Sources: " + m.citations.map((c) => c.title + (c.url ? " (" + c.url + ")" : "")).join("; ");
      li.appendChild(sources);
      const full = m.citations.find((c) => c.excerpt && c.text);
      if (full) {  // the reply is the passage's answering sentences: the whole passage is one click away
        const more = document.createElement("details");
        more.className = "read-more";
        const summary = document.createElement("summary");
        summary.textContent = "Read more";
        const body = document.createElement("p");
        body.textContent = full.text;
        more.append(summary, body);
        li.appendChild(more);
      }
    }
    if (m.sender === "bot" && m.choices && m.choices.length) {
      const options = document.createElement("div");
      options.className = "choices";
      for (const c of m.choices) {
        const b = document.createElement("button");
        b.type = "button"; b.className = "choice choice-" + c.kind; b.textContent = c.label;
        b.onclick = () => choose(m, c, options);
        options.appendChild(b);
      }
      li.appendChild(options);
    }
    if (m.sender === "bot" && !m.handoff) {
      for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {  // words: emoji fonts are often missing
        const b = document.createElement("button");
        b.type = "button"; b.className = "rate-" + rating; b.textContent = label; b.title = "rate this answer " + rating;
        b.onclick = () => fetch("/api/support/feedback", {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({conversation: token, message: m.id, rating})})
          .then(() => { for (const other of li.querySelectorAll("button")) other.disabled = true; });  // one rating an answer
        li.appendChild(b);
      }
    }
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  async function post(url, body) {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) { document.getElementById("chat-error").textContent = data.detail || "error"; return null; }
    document.getElementById("chat-error").textContent = "";
    token = data.conversation;
    sessionStorage.setItem(key, token);
    await history();
    connect();
    return data;
  }

  async function choose(m, c, options) {
    for (const b of options.querySelectorAll("button")) b.disabled = true;  // one pick a message
    await post("/api/support/choices", {conversation: token, message: m.id, choice: String(c.id)});
  }

  async function history() {
    if (!token) return;
    const r = await fetch("/api/support/conversations/" + token + "/messages");
    if (r.status === 404) { sessionStorage.removeItem(key); token = null; return; }
    for (const m of (await r.json()).messages) render(m);
  }

  function connect() {
    if (!token || ws) return;
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/support/chat/" + token + "/");
    ws.onopen = () => { box.dataset.state = "live"; history(); };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.event === "message") render(msg.data);
      if (msg.event === "resolved") {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "This conversation was closed. Write again if you need more help.";
        list.appendChild(li);
      }
    };
    ws.onclose = () => { ws = null; box.dataset.state = "reconnecting"; setTimeout(connect, 2000); };
  }

  document.getElementById("chat-form").onsubmit = async (e) => {
    e.preventDefault();
    const text = document.getElementById("chat-text").value;
    if (await post("/api/support/messages", {conversation: token, text, kb: box.dataset.kb})) {
      document.getElementById("chat-text").value = "";
    }
  };
  document.getElementById("chat-person").onclick = () =>  // the server maps this phrasing to a handoff
    post("/api/support/messages", {conversation: token, text: "I'd like to talk to a person.", kb: box.dataset.kb});
  history().then(connect);
})();
