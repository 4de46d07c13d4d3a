// Buttons with class "confirm" ask before submitting (data-confirm holds the question).
document.addEventListener("click", function (e) {
  var b = e.target.closest("button.confirm, input.confirm");
  if (b && !window.confirm(b.dataset.confirm || "?")) e.preventDefault();
});
