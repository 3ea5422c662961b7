// The monitor's live refresh: every 10 s, fetch the study's figures and update the page.
// Without script the page shows the figures of its own load; reloading refreshes them.
// Its words come from the page, in the page's language (data-* attributes rendered through
// gettext): "%(at)s" and "%(minutes)s" stand for the time and the minutes.
(function () {
  "use strict";
  var status = document.getElementById("monitor-status");
  if (!status || !window.fetch) { return; }
  var source = status.getAttribute("data-source");
  var PERIOD_MS = 10000;

  function lookup(data, path) {
    return path.split(".").reduce(function (value, key) {
      return value === null || value === undefined ? value : value[key];
    }, data);
  }

  function show(element, value) {
    var minutes = element.getAttribute("data-minutes");
    if (value === null || value === undefined) {
      element.textContent = "—";
    } else if (minutes !== null) {
      element.textContent = minutes.replace("%(minutes)s", (value / 60).toFixed(1));
    } else {
      element.textContent = String(value);
    }
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    });
    return tr;
  }

  function fill(tableId, rows) {
    var table = document.getElementById(tableId);
    var body = table && table.querySelector("tbody");
    if (!body) { return; }
    body.textContent = "";
    if (!rows.length) {
      var tr = row([table.getAttribute("data-empty")]);
      tr.firstChild.colSpan = 5;
      tr.firstChild.className = "muted";
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) { body.appendChild(row(cells)); });
  }

  function update(data) {
    document.querySelectorAll("[data-figure]").forEach(function (element) {
      show(element, lookup(data, element.getAttribute("data-figure")));
    });
    fill("recent-answers", data.recent_answers.map(function (a) {
      return [a.at, a.participant, String(a.trial), a.block, a.measure];
    }));
    var both = document.getElementById("conditions").getAttribute("data-both");
    fill("conditions", data.conditions.map(function (c) {
      return [c.task, c.condition || both, String(c.answered), String(c.scheduled), String(c.participants)];
    }));
    status.textContent = status.getAttribute("data-refreshed").replace("%(at)s", data.at);
  }

  function refresh() {
    fetch(source, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(update)
      .catch(function () {
        status.textContent = status.getAttribute("data-failed");
      });
  }

  window.setInterval(refresh, PERIOD_MS);
}());
