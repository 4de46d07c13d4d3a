// The print button of the staff-meeting view.
(function () {
  var b = document.getElementById("print-now");
  if (b) b.addEventListener("click", function () { window.print(); });
})();
