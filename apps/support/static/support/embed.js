// Embed the support chat on another site (listed in SUPPORT_WIDGET_ORIGINS):
//   <script src="https://desk.example.com/static/support/embed.js" data-kb="default" async></script>
// It adds a "Help" button that opens the widget in an iframe served by the desk itself, so the chat's API calls
// and its WebSocket stay same-origin (no CORS, no cookies of the shop involved).
(function () {
  const script = document.currentScript;
  if (!script) return;
  const desk = new URL(script.src).origin;
  const kb = (script.dataset.kb || "default").replace(/[^A-Za-z0-9_-]/g, "");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = script.dataset.label || "Help";
  button.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483000;padding:.6rem 1rem;border-radius:2rem;";
  const frame = document.createElement("iframe");
  frame.title = "Support chat";
  frame.src = desk + "/support/widget/?embed=1&kb=" + encodeURIComponent(kb);
  frame.style.cssText = "position:fixed;right:1rem;bottom:4rem;width:24rem;height:34rem;max-width:95vw;max-height:80vh;" +
    "border:1px solid #ccc;border-radius:8px;background:#fff;z-index:2147483000;display:none;";
  button.onclick = () => { frame.style.display = frame.style.display === "none" ? "block" : "none"; };
  document.body.append(frame, button);
})();
