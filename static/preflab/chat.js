// Preflab conversations (/chat/<id>/): keys, where the focus goes, as-typed toggles. The ranking
// board and the time spent ranking are ranking.js; htmx polls the model's turn (#turn-live)
// and swaps its replies in, after which this puts the focus on the first reply card.
// No build step, no dependencies.
(function () {
  "use strict";
  var Ranking = window.PreflabRanking;

  function chat() { return document.getElementById("chat"); }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function announce(msg) {
    var s = $("#chat-status");
    if (s) { s.textContent = msg; }
  }

  // ---------------------------------------------------------------- the model's turn
  function setupTurn() {
    var live = $("#turn-live");
    if (!live || live.dataset.ready) { return false; }
    live.dataset.ready = "1";
    if ($("#rank-board", live)) {
      Ranking.initBoard(live);
      Ranking.resetActive(0);
    }
    return true;
  }
  // Where the trainer goes on: the field a refusal names, the first reply card to rank, the reply
  // to write, Retry, or the message box.
  function focusStart() {
    var c = chat();
    var name = c && c.dataset.errorField;
    var target = null;
    if (name) {
      var inputs = $$('[name="' + name + '"], [name^="' + name + '-"]');
      target = inputs.filter(function (i) { return i.checked; })[0] || inputs[0] || document.getElementById(name);
      var box = target && target.closest("details");
      if (box) { box.open = true; }
    }
    target = target || $("#rank-board .tier.pool .chip") || $("#rank-board .chip") ||
      $("#turn-live.state-writing #reply-text") || $("#retry-button") || $("#say-text");
    if (!target) { return; }
    target.focus();
    if (target.tagName === "TEXTAREA") { target.selectionStart = target.selectionEnd = target.value.length; }
  }

  function toggleTyped(scope) {
    var blocks = scope ? [scope] : $$("#chat .response, #chat .turn");
    var on = !blocks.every(function (b) { return !$(".as-typed", b).hidden; });
    blocks.forEach(function (b) {
      $(".as-typed", b).hidden = !on;
      $(".md", b).hidden = on;
      var t = $(".as-typed-toggle", b);
      if (t) { t.setAttribute("aria-pressed", on ? "true" : "false"); }
    });
    if (!scope) { $("#typed-all").setAttribute("aria-pressed", on ? "true" : "false"); }
    announce(on ? "Shown exactly as typed." : "Shown formatted.");
  }
  function openDialog(id) {
    var d = document.getElementById(id);
    if (!d) { return; }
    if (d.open) { d.close(); return; }
    d.showModal();
    var first = $("button", d);
    if (first) { first.focus(); }
  }
  function submit(form) { if (form) { form.requestSubmit(); } }
  function pickRadio(name, n) {
    var r = $$('input[type=radio][name="' + name + '"]')[n - 1];
    if (r) { r.checked = true; r.focus(); return true; }
    return false;
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest ? ev.target : null;
    if (!t || !chat()) { return; }
    var typed = t.closest(".as-typed-toggle");
    if (typed) { toggleTyped(typed.closest(".response")); return; }
    if (t.closest("#typed-all")) { toggleTyped(null); return; }
    if (t.closest("#keys-toggle")) { openDialog("keymap"); return; }
    var close = t.closest("dialog [data-close]");
    if (close) { close.closest("dialog").close(); }
  });

  // ---------------------------------------------------------------- keys
  document.addEventListener("keydown", function (ev) {
    if (!chat()) { return; }
    var t = ev.target;
    var key = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && key === "Enter") {
      // The form the focus is in: the message box, the reply being written, or the ranking.
      var form = (t.closest && t.closest("form")) || $("#judgment-form") || $("#reply-form") || $("#composer");
      ev.preventDefault();
      submit(form);
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var typing = t.matches && t.matches("textarea, select, input:not([type]), input[type=text], input[type=search], [contenteditable]");
    if (key === "Escape" && typing && !t.closest("dialog")) { t.blur(); return; }
    if (typing || (t.closest && t.closest("dialog"))) { return; }
    var upper = key.length === 1 ? key.toUpperCase() : key;
    var chip = t.classList && t.classList.contains("chip") ? t : null;
    var handled = true;
    if (chip && Ranking.chipKey(chip, key, announce)) {
      // ranked, unranked or moved (ranking.js)
    } else if (chip && key === "Enter") {
      submit($("#judgment-form"));
    } else if (/^[1-7]$/.test(key) && t.type === "radio" && t.closest("[data-scale]")) {
      pickRadio(t.name, +key);
    } else if (key === "?") {
      openDialog("keymap");
    } else if (upper === "R" && $("#ranking_text")) {
      $("#ranking_text").focus();
    } else if (upper === "R" && $("#retry-form")) {
      submit($("#retry-form"));
    } else if (upper === "W" && $("#rewrite-box")) {
      $("#rewrite-box").open = true;
      $("#rewrite").focus();
    } else if (upper === "W" && $("#reply-text")) {
      $("#reply-text").focus();
    } else if (upper === "C" && $("#say-text")) {
      $("#say-text").focus();
    } else if (upper === "P") {
      toggleTyped(t.closest && t.closest(".response"));
    } else if (upper === "G" && $("#guidelines")) {
      var g = $("#guidelines");
      g.open = !g.open;
      if (g.open) { $("summary", g).focus(); }
    } else if (key === "Enter" && $("#judgment-form") && !t.matches("button, a, summary")) {
      submit($("#judgment-form"));
    } else if (key.length === 1 && /[A-Z]/.test(upper) && $('#judgment-form input[data-hotkey="' + upper + '"]')) {
      var box = $('#judgment-form input[data-hotkey="' + upper + '"]');
      box.checked = !box.checked;
      box.focus();
    } else {
      handled = false;
    }
    if (handled) { ev.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", function () { setupTurn(); focusStart(); });
  document.addEventListener("htmx:afterSettle", function () {
    if (!setupTurn()) { return; }
    var live = $("#turn-live");
    var state = live ? live.dataset.state : "";
    if (state === "ready") {
      announce("The replies are ready: rank them, best first.");
    } else if (state === "failed") {
      announce("The model could not answer. Retry with R, or write the reply yourself.");
    }
    // To the cards (or Retry), unless the trainer has put the focus somewhere meanwhile.
    var focus = document.activeElement;
    if (state !== "waiting" && (!focus || focus === document.body || !document.body.contains(focus))) {
      focusStart();
    }
  });
})();
