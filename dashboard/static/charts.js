// Chart helpers over the vendored Apache ECharts (no CDN). Exposes window.bbtCharts.
(function () {
  var COLORS = {in_use: "#2e7d32", idle: "#f9a825", off: "#90a4ae", offline: "#cfd8dc", fault: "#c62828"};
  var charts = [];
  function make(el) {
    var c = echarts.getInstanceByDom(el) || echarts.init(el);
    if (charts.indexOf(c) < 0) charts.push(c);
    return c;
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });

  // Stacked horizontal bars: devices per floor, one colour per state.
  function floorBar(el, chart, labels) {
    var states = Object.keys(chart.series);
    el.style.height = Math.max(160, 34 * chart.categories.length + 70) + "px";
    make(el).setOption({
      animation: false,
      grid: {left: 8, right: 16, top: 8, bottom: 40, containLabel: true},
      legend: {bottom: 0, data: states.map(function (s) { return labels[s]; })},
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
      xAxis: {type: "value", minInterval: 1},
      yAxis: {type: "category", data: chart.categories, inverse: true},
      series: states.map(function (s) {
        return {name: labels[s], type: "bar", stack: "all", data: chart.series[s], itemStyle: {color: COLORS[s]}};
      })
    }, true);
  }

  // Rates (0..1) over weeks as lines, with the threshold as a dashed line.
  function rateLine(el, weeks, series, threshold, thresholdLabel) {
    var lines = series.map(function (s, i) {
      var o = {name: s.name, type: "line", data: s.data.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }),
               connectNulls: true, symbolSize: 6};
      if (i === 0) {
        o.markLine = {silent: true, symbol: "none", lineStyle: {type: "dashed", color: "#c62828"},
                      label: {position: "insideEndTop", color: "#c62828",
                               formatter: thresholdLabel + " " + Math.round(threshold * 100) + "%"}, data: [{yAxis: Math.round(threshold * 1000) / 10}]};
      }
      return o;
    });
    make(el).setOption({
      animation: false,
      grid: {left: 8, right: 24, top: 36, bottom: 8, containLabel: true},
      legend: {top: 0, type: "scroll"},
      tooltip: {trigger: "axis", valueFormatter: function (v) { return v === null || v === undefined ? "—" : v + "%"; }},
      xAxis: {type: "category", data: weeks},
      yAxis: {type: "value", min: 0, max: 100, axisLabel: {formatter: "{value}%"}},
      series: lines
    }, true);
  }
  window.bbtCharts = {floorBar: floorBar, rateLine: rateLine, colors: COLORS};
})();
