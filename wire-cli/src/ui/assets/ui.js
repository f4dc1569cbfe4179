// wire ui: keeps the page's live part current from the server's event stream. No timers:
// the server says when something changed; this fetches the live part again and swaps it
// in (server-rendered and escaped, so it is inserted as the server wrote it). While the
// operator is typing inside the live part, the swap waits until focus leaves it.
"use strict";
(function () {
  const source = document.body.dataset.events;
  const live = document.getElementById("live");
  const banner = document.getElementById("link");
  if (!source || !live || !window.EventSource) return;
  let pending = false;
  let fetching = false;

  function say(text) {
    if (text) {
      banner.textContent = text;
      banner.hidden = false;
    } else {
      banner.textContent = "";
      banner.hidden = true;
    }
  }

  async function refresh() {
    if (fetching) { pending = true; return; }
    if (live.contains(document.activeElement) && document.activeElement !== document.body) {
      pending = true;
      return;
    }
    fetching = true;
    pending = false;
    try {
      const answer = await fetch(location.pathname, { headers: { "X-Wire-Live": "1" }, credentials: "same-origin" });
      if (answer.ok) {
        live.innerHTML = await answer.text();
        document.body.dataset.updated = String(Number(document.body.dataset.updated || 0) + 1);
      }
    } catch (e) {
      say("wire ui is not answering; it may have stopped");
    } finally {
      fetching = false;
      if (pending) refresh();
    }
  }

  live.addEventListener("focusout", function () {
    if (pending) queueMicrotask(refresh);
  });

  const events = new EventSource(source);
  events.addEventListener("open", function () {
    document.body.dataset.stream = "open";
  });
  events.addEventListener("change", refresh);
  events.addEventListener("link", function (e) {
    const link = JSON.parse(e.data);
    document.body.dataset.link = link.state;
    if (link.state === "connected") say("");
    else if (link.state === "connecting") say("Connecting to the relay…");
    else say("Disconnected from the relay" + (link.why ? ": " + link.why : "") + ". Retrying.");
    refresh();
  });
  events.addEventListener("error", function () {
    document.body.dataset.stream = "closed";
    say("Disconnected from wire ui; retrying. If it stopped, run `wire ui` again.");
  });
})();
