// The bureau's comparison chart: usage rate (bars, %) and faults this week (bars) per school.
(function () {
  var el = document.getElementById("district-chart");
  var data = document.getElementById("district-data");
  if (!el || !data || typeof echarts === "undefined") return;
  var d = JSON.parse(data.textContent);
  var c = echarts.init(el, null, {renderer: "svg"});
  c.setOption({
    animation: false,
    legend: {top: 0, data: [d.labels.rate, d.labels.faults]},
    tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
    grid: {left: 8, right: 24, top: 36, bottom: 8, containLabel: true},
    xAxis: [{type: "value", max: 100, name: "%"}, {type: "value", minInterval: 1}],
    yAxis: {type: "category", data: d.chart.schools, inverse: true},
    series: [
      {name: d.labels.rate, type: "bar", data: d.chart.rates, itemStyle: {color: "#2e7d32"},
       markLine: {silent: true, symbol: "none", lineStyle: {type: "dashed", color: "#c62828"}, data: [{xAxis: 60}]}},
      {name: d.labels.faults, type: "bar", xAxisIndex: 1, data: d.chart.faults, itemStyle: {color: "#c62828"}}
    ]
  });
  window.addEventListener("resize", function () { c.resize(); });
})();
