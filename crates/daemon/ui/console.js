// revoked console: the only script (served from /ui/assets, so the CSP allows no other).
// A page that shows a job still running reloads itself every few seconds, unless the person
// is typing a reason or has a details box open.
(function () {
  "use strict";
  var secs = Number(document.body.getAttribute("data-refresh"));
  if (!secs) { return; }
  function busy() {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA")) { return true; }
    var inputs = document.querySelectorAll("input[name=reason]");
    for (var i = 0; i < inputs.length; i++) { if (inputs[i].value) { return true; } }
    return document.querySelector("details[open]") !== null;
  }
  window.setInterval(function () { if (!busy()) { window.location.reload(); } }, secs * 1000);
})();
