// The overview refreshes itself every 10 s without reloading the page.
(function () {
  var root = document.getElementById("floors");
  var boot = document.getElementById("overview-data");
  if (!root || !boot) return;
  var init = JSON.parse(boot.textContent);
  var labels = init.labels;
  var chartEl = document.getElementById("floor-chart");
  if (chartEl && window.bbtCharts && init.chart.categories.length) bbtCharts.floorBar(chartEl, init.chart, labels);
  function refresh() {
    fetch(root.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var missing = false;
        data.devices.forEach(function (d) {
          var el = root.querySelector('[data-device="' + CSS.escape(d.device) + '"]');
          if (!el) { missing = true; return; }
          el.className = "device " + d.state;
          el.querySelector(".st").textContent = labels[d.state];
        });
        if (missing || data.devices.length !== root.querySelectorAll("li.device").length) { location.reload(); return; }
        Object.keys(data.counts).forEach(function (k) {
          var c = document.querySelector('[data-count="' + k + '"]'); if (c) c.textContent = data.counts[k];
        });
        document.getElementById("total").textContent = data.total;
        var of = document.getElementById("open-faults"); if (of) of.textContent = data.open_faults;
        var oa = document.getElementById("open-alerts"); if (oa) oa.textContent = data.open_alerts;
        if (data.usage) {
          var t = document.getElementById("today-used");
          if (t) t.textContent = data.usage.today_used + " / " + data.usage.today_done;
          var w = document.getElementById("week-rate");
          if (w) w.textContent = data.usage.week_rate === null ? "—" : Math.round(data.usage.week_rate * 100) + "%";
        }
        var gen = document.getElementById("generated"); if (gen && data.generated) gen.textContent = data.generated.substr(11, 5);
        if (chartEl && window.bbtCharts && data.floor_chart.categories.length) bbtCharts.floorBar(chartEl, data.floor_chart, labels);
      })
      .catch(function () {});
  }
  setInterval(refresh, 10000);
})();
