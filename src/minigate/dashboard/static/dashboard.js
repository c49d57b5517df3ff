// minigate dashboard: a little progressive enhancement. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Times are rendered in UTC; show them in the reader's own time zone as well.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.title = el.textContent;
      el.textContent = when.toLocaleString();
    }
  });
  // Forms that change something irreversible ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // "Refund everything" makes the amount field irrelevant.
  var full = document.getElementById("full");
  var amount = document.getElementById("amount");
  if (full && amount) {
    full.addEventListener("change", function () { amount.disabled = full.checked; });
  }
});
