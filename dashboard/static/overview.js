// Refresh device states every 5 s without reloading the page.
(function () {
  var root = document.getElementById("floors");
  if (!root) return;
  var school = root.dataset.school;
  var labels = {in_use: "使用中", idle: "开机空闲", offline: "离线/关机", fault: "故障"};
  function state(d) {
    if (d.online && d.open_faults.length) return "fault";
    if (!d.online) return "offline";
    return d.in_use ? "in_use" : "idle";
  }
  function refresh() {
    fetch("/api/v1/devices?school=" + encodeURIComponent(school), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (rows) {
        if (!rows) return;
        var counts = {in_use: 0, idle: 0, offline: 0, fault: 0};
        var known = {};
        rows.forEach(function (d) {
          var s = state(d); counts[s]++;
          var el = root.querySelector('[data-device="' + d.device + '"]');
          if (!el) { known.missing = true; return; }
          el.className = "device " + s;
          el.querySelector(".st").textContent = labels[s];
        });
        if (known.missing) { location.reload(); return; }
        Object.keys(counts).forEach(function (k) {
          var c = document.querySelector('[data-count="' + k + '"]'); if (c) c.textContent = counts[k];
        });
        document.getElementById("total").textContent = rows.length;
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
