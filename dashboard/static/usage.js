// The usage page's trend chart (rates over the last weeks, threshold dashed).
(function () {
  var el = document.getElementById("trend-chart");
  var boot = document.getElementById("trend-data");
  if (!el || !boot || !window.bbtCharts) return;
  var d = JSON.parse(boot.textContent);
  if (!d.trend.series.length) { el.style.display = "none"; return; }
  el.style.height = "260px";
  bbtCharts.rateLine(el, d.trend.weeks, d.trend.series, d.threshold, d.label);
})();
