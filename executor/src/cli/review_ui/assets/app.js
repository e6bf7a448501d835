// Airlock review: live updates only. Every page works without this script.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) {
    return;
  }
  // Events after the one this page was rendered after (a reconnect resumes
  // from the last one seen, by Last-Event-ID).
  var since = live.getAttribute("data-since");
  var source = new EventSource(
    "/events" + (since ? "?since=" + encodeURIComponent(since) : "")
  );
  source.addEventListener("ledger", function (message) {
    var e;
    try {
      e = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    // Text only: nothing from the stream is ever parsed as HTML.
    live.textContent =
      "New in the ledger: " + String(e.kind) +
      (e.proposal_id ? " " + String(e.proposal_id) : "") +
      " (event " + String(e.seq) + "). ";
    var again = document.createElement("a");
    again.href = window.location.pathname + window.location.search;
    again.textContent = "Reload to see it";
    live.appendChild(again);
    live.className = "active";
  });
})();
