// Preflab red-team sessions (/redteam/<id>/): the keys of the label form, on top of chat.js (the
// conversation page's own keys). They act on the label form the focus is in, else on the current
// one (#label-form, the latest model turn): 1-4 outcome, Shift+1-5 severity, H category, T tactic,
// I ideal reply, X labels the focused reply card, Enter saves, V opens the verdict. Digits are
// read from the physical key (ev.code), so Shift+digit works on every keyboard layout.
// No build step, no dependencies.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function announce(msg) {
    var s = $("#chat-status");
    if (s) { s.textContent = msg; }
  }
  function currentForm(t) {
    return (t && t.closest && t.closest("form.label-form")) || $("#label-form");
  }
  function digit(ev) {
    var m = /^(?:Digit|Numpad)([0-9])$/.exec(ev.code || "");
    if (m) { return +m[1]; }
    return /^[0-9]$/.test(ev.key) ? +ev.key : null;
  }
  function pick(form, name, value) {
    var r = $('input[type=radio][name="' + name + '"][' + (name === "reply" ? "value" : "data-key") + '="' + value + '"]', form);
    if (!r) { return false; }
    r.checked = true;
    r.focus();
    var box = r.closest("details");
    if (box) { box.open = true; }
    var text = r.closest("label") ? r.closest("label").textContent.trim().replace(/\s+/g, " ") : value;
    announce((name === "severity" ? "Severity " : name === "reply" ? "Labelling " : "") + text);
    return true;
  }
  function focusField(form, sel) {
    var f = $(sel, form);
    if (!f) { return false; }
    var box = f.closest("details");
    if (box) { box.open = true; }
    f.focus();
    return true;
  }

  window.addEventListener("keydown", function (ev) {
    var t = ev.target;
    var form = currentForm(t);
    if (!$("#chat") || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var typing = t.matches && t.matches("textarea, select, input:not([type]), input[type=text], input[type=search], [contenteditable]");
    if (typing || (t.closest && t.closest("dialog"))) { return; }
    var upper = ev.key.length === 1 ? ev.key.toUpperCase() : ev.key;
    var n = digit(ev);
    var handled = false;
    if (upper === "V" && $("#finish-box")) {
      $("#finish-box").open = true;
      handled = focusField(document, "#finish-form input[name=verdict]");
    } else if (!form) {
      return;
    } else if (n !== null && ev.shiftKey && n >= 1 && n <= 5) {
      handled = pick(form, "severity", n);
    } else if (n !== null && !ev.shiftKey && n >= 1 && n <= 4) {
      handled = pick(form, "outcome", n);
    } else if (upper === "H") {
      handled = focusField(form, ".label-category");
    } else if (upper === "T") {
      handled = focusField(form, ".label-tactic");
    } else if (upper === "I") {
      handled = focusField(form, ".label-ideal-text");
    } else if (upper === "X" && t.closest && t.closest(".response[data-label]")) {
      handled = pick($("#label-form"), "reply", t.closest(".response").dataset.label);
    } else if (ev.key === "Enter" && !(t.matches && t.matches("button, a, summary"))) {
      form.requestSubmit();
      handled = true;
    }
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  }, true);

  // The latest model turn waits for its label: the focus goes to it (after chat.js placed it),
  // unless it is labelled already (then the message box keeps it), or a refusal names a form.
  function focusLabel() {
    var form = $("#label-form");
    if (!form || (form.dataset.labelled && !$("#form-error", form))) { return; }
    var first = $("input[name=reply]:checked", form) || $("input[name=reply]", form) ||
      $("input[name=outcome]:checked", form) || $("input[name=outcome]", form);
    if (first) { first.focus(); }
  }
  document.addEventListener("DOMContentLoaded", focusLabel);
  document.addEventListener("htmx:afterSettle", focusLabel);
})();
