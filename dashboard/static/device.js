// While a command waits for the PC's ack, refresh the commands table every 2 s.
(function () {
  function table() { return document.querySelector("table.commands"); }
  function poll() {
    var t = table();
    if (!t || t.dataset.poll !== "1") return;
    fetch(location.pathname + location.search, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("table.commands");
        if (fresh) t.replaceWith(fresh);
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
