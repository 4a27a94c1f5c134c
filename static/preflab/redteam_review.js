// The red-team review page's keys: V reveals the blurred attack, C/X confirm/reject, 1-4 pick the
// outcome, A/T/L focus category/tactic/severity, I the ideal reply, N the note, S skips,
// Ctrl+Enter saves, Esc leaves a text box.
(function () {
  "use strict";
  function reveal() {
    var c = document.getElementById("item-content");
    if (!c) { return; }
    c.classList.remove("cw-blur");
    c.removeAttribute("inert");
    c.removeAttribute("aria-hidden");
    var n = document.getElementById("cw-notice");
    if (n) { n.hidden = true; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("cw-reveal");
    if (button) { button.addEventListener("click", reveal); }
  });
  var focusKeys = { a: "category", t: "tactic", l: "severity", i: "ideal-reply", n: "review-note" };
  document.addEventListener("keydown", function (event) {
    var form = document.getElementById("attack-review-form");
    if (!form) { return; }
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"));
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    if (event.key === "Escape" && typing) { target.blur(); return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key.toLowerCase();
    if (key === "v") { reveal(); event.preventDefault(); return; }
    if (key === "s") {
      var skip = document.getElementById("attack-skip-form");
      if (skip) { event.preventDefault(); skip.requestSubmit(); }
      return;
    }
    if (focusKeys[key]) {
      document.getElementById(focusKeys[key]).focus();
      event.preventDefault();
      return;
    }
    var choice = form.querySelector('input[type="radio"][data-key="' + key + '"]');
    if (choice) {
      choice.checked = true;
      choice.focus();
      event.preventDefault();
    }
  });
})();
