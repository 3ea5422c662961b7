// The monitor's live refresh: every 10 s, fetch the study's figures and update the page.
// Without script the page shows the figures of its own load; reloading refreshes them.
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
    if (element.getAttribute("data-format") === "duration") {
      element.textContent = value === null || value === undefined ? "—" : (value / 60).toFixed(1) + " min";
    } else {
      element.textContent = value === null || value === undefined ? "—" : String(value);
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

  function fill(tableId, rows, empty) {
    var body = document.querySelector("#" + tableId + " tbody");
    if (!body) { return; }
    body.textContent = "";
    if (!rows.length) {
      var tr = row([empty]);
      tr.firstChild.colSpan = 5;
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
    }), "No answers yet.");
    fill("conditions", data.conditions.map(function (c) {
      return [c.task, c.condition || "both (choose)", String(c.answered), String(c.scheduled), String(c.participants)];
    }), "No trials yet.");
    status.textContent = "Figures of " + data.at + ". They refresh every 10 seconds.";
  }

  function refresh() {
    fetch(source, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(update)
      .catch(function () {
        status.textContent = "Could not refresh the figures just now; trying again in 10 seconds.";
      });
  }

  window.setInterval(refresh, PERIOD_MS);
}());
