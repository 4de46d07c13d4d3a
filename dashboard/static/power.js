// The group command's results page: poll its JSON every 2 s until every PC has answered (10 min at most).
(function () {
  var tally = document.getElementById("tally");
  if (!tally) return;
  var labels = JSON.parse(document.getElementById("labels").textContent);
  var started = Date.now();
  function render(data) {
    data.targets.forEach(function (t) {
      var row = document.querySelector('#results tr[data-device="' + CSS.escape(t.device) + '"]');
      if (!row) return;
      var cell = row.querySelector("td.result");
      cell.dataset.result = t.result;
      cell.textContent = labels[t.result] || t.result;
      if (t.error) row.querySelector("td.note").textContent = t.error;
    });
    var parts = Object.keys(data.tally).map(function (k) {
      return '<span class="chip" data-result="' + k + '"></span>';
    });
    tally.innerHTML = parts.join(" ") + ' <span class="total"></span> <span id="done-note"></span>';
    Object.keys(data.tally).forEach(function (k) {
      var chip = tally.querySelector('span.chip[data-result="' + k + '"]');
      chip.textContent = (labels[k] || k) + " ";
      var b = document.createElement("b");
      b.textContent = data.tally[k];
      chip.appendChild(b);
    });
    tally.querySelector("span.total").textContent = tally.dataset.total.replace("%d", data.total);
    tally.querySelector("#done-note").textContent = data.done ? tally.dataset.doneText : tally.dataset.waitText;
    tally.dataset.done = data.done ? "1" : "0";
  }
  function poll() {
    if (tally.dataset.done === "1" || Date.now() - started > 600000) return;
    fetch(tally.dataset.url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) render(data); })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 1000);
})();

// The group form: the floor list shows the chosen building's floors only.
(function () {
  var building = document.getElementById("building"), floor = document.getElementById("floor");
  if (!building || !floor) return;
  function sync() {
    Array.prototype.forEach.call(floor.options, function (o) {
      var mine = !o.dataset.building || o.dataset.building === building.value;
      o.hidden = o.disabled = !mine;
      if (!mine && o.selected) floor.value = "";
    });
  }
  building.addEventListener("change", sync);
  sync();
})();
