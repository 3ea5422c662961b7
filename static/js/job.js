// The job page's live progress: poll the job's status every 2 s and update the bar; reload
// the page once the job has finished or failed. Without script the page refreshes itself.
// The states' words come from the page, in its language (data-states); the message, from the
// server in the same language.
(function () {
  "use strict";
  var panel = document.getElementById("job");
  if (!panel || !window.fetch) { return; }
  var status = panel.getAttribute("data-status");
  if (status !== "queued" && status !== "running") { return; }
  var states = JSON.parse(panel.getAttribute("data-states") || "{}");
  // The script keeps the page current: the meta refresh would only lose the scroll position.
  var refresh = document.querySelector('meta[http-equiv="refresh"]');
  if (refresh) { refresh.parentNode.removeChild(refresh); }
  var bar = document.getElementById("job-progress");
  var PERIOD_MS = 2000;
  var LIMIT = 1800; // stop polling after an hour; reloading starts again

  function field(name, value) {
    var element = panel.querySelector('[data-field="' + name + '"]');
    if (element) { element.textContent = String(value); }
  }

  function poll(left) {
    if (left <= 0) { return; }
    fetch(panel.getAttribute("data-source"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) {
          bar.value = data.progress;
          bar.textContent = data.progress + "%";
          field("progress", data.progress);
          field("message", data.message);
          field("status", states[data.status] || data.status);
          if (data.status === "done" || data.status === "failed") {
            window.location.reload();
            return;
          }
        }
        window.setTimeout(function () { poll(left - 1); }, PERIOD_MS);
      })
      .catch(function () { window.setTimeout(function () { poll(left - 1); }, PERIOD_MS); });
  }
  window.setTimeout(function () { poll(LIMIT); }, PERIOD_MS);
})();
