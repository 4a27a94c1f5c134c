// Preflab rater workbench: keys, the ranking board and active time (both ranking.js), content-warning reveal,
// diff and as-typed toggles, copying the overall answer into empty criteria.
// Works on whatever item htmx swapped into #workbench; no build step, no dependencies.
(function () {
  "use strict";

  function wb() { return document.getElementById("workbench"); }
  function form() { return document.getElementById("judgment-form"); }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // ---------------------------------------------------------------- ranking board
  // The board itself is ranking.js (shared with the conversation pages).
  var Ranking = window.PreflabRanking;
  function announce(msg) {
    var s = $(".wb-status");
    if (s) { s.textContent = msg; }
  }

  // ---------------------------------------------------------------- item setup
  function init() {
    var w = wb();
    if (!w || w.dataset.ready) { return; }
    w.dataset.ready = "1";
    var title = $("#wb-title", w);
    if (w.dataset.done) { if (title && swapped) { title.focus(); } return; }
    Ranking.resetActive(parseFloat(w.dataset.activeBase || "0") || 0);
    Ranking.initBoard(w);
    var reveal = $("#cw-reveal", w);
    if (reveal) { reveal.addEventListener("click", revealContent); }
    $("#diff-toggle", w).addEventListener("click", toggleDiff);
    $$(".as-typed-toggle", w).forEach(function (b) {
      b.addEventListener("click", function () { toggleTyped(b.closest(".response")); });
    });
    var copy = $("#copy-overall", w);
    if (copy) { copy.addEventListener("click", copyOverallAndSubmit); }
    $("#keys-toggle", w).addEventListener("click", function () { openDialog("keymap"); });
    $("#skip-open", w).addEventListener("click", function () { openDialog("skip-dialog"); });
    $$("dialog [data-close]", w).forEach(function (b) {
      b.addEventListener("click", function () { b.closest("dialog").close(); });
    });
    if (w.dataset.errorField) { focusField(w.dataset.errorField); return; }
    if (swapped && title) { title.focus({ preventScroll: true }); window.scrollTo(0, 0); }
  }
  // After a refused submission, the focus goes to the field to fix: its checked option or its
  // first one, so the next digit answers it.
  function focusField(name) {
    var inputs = $$('[name="' + name + '"], [name^="' + name + '-"]', form());
    var target = inputs.filter(function (i) { return i.checked; })[0] || inputs[0];
    if (target) { target.focus(); }
  }
  function toggleTyped(response) {
    var targets = response ? [response] : $$(".response");
    var on = !targets.every(function (r) { return !$(".as-typed", r).hidden; });
    targets.forEach(function (r) {
      $(".as-typed", r).hidden = !on;
      $(".response-md", r).hidden = on;
      $(".diff-view", r).hidden = true;
      $(".as-typed-toggle", r).setAttribute("aria-pressed", on ? "true" : "false");
    });
    announce(on ? "Shown exactly as typed." : "Shown formatted.");
  }
  // "Same for the empty criteria": each preference criterion left empty gets the overall answer
  // (both bad counts as a tie), then the form is submitted; the browser stops on anything still missing.
  function copyOverallAndSubmit() {
    var overall = $('input[name=preference]:checked');
    if (!overall) {
      announce("Choose the overall answer first.");
      var first = $("input[name=preference]");
      if (first) { first.focus(); }
      return;
    }
    var value = overall.value === "bad" ? "0" : overall.value;
    $$("fieldset.criterion").forEach(function (fs) {
      var name = "criterion-" + fs.dataset.scale.slice("criterion-".length);
      var radios = $$('input[type=radio][name="' + name + '"]', fs);
      if (radios.length && !radios.some(function (r) { return r.checked; })) {
        radios.forEach(function (r) { r.checked = r.value === value; });
      }
    });
    submitMain();
  }
  var swapped = false;
  function revealContent() {
    var c = $("#item-content");
    if (!c) { return; }
    c.classList.remove("cw-blur");
    c.removeAttribute("inert");
    c.removeAttribute("aria-hidden");
    var n = $("#cw-notice");
    if (n) { n.hidden = true; }
    var first = $(".conversation .turn", c);
    if (first) { first.setAttribute("tabindex", "-1"); first.focus(); }
  }
  function toggleDiff() {
    var b = $("#diff-toggle");
    var on = b.getAttribute("aria-pressed") !== "true";
    b.setAttribute("aria-pressed", on ? "true" : "false");
    $$(".response").forEach(function (r) {
      $(".response-md", r).hidden = on;
      $(".diff-view", r).hidden = !on;
    });
  }
  function openDialog(id) {
    var d = document.getElementById(id);
    if (!d) { return; }
    if (d.open) { d.close(); return; }
    d.showModal();
    var first = $("input:not([type=hidden]), button", d);
    if (first) { first.focus(); }
  }
  function submitMain() {
    var f = form();
    if (f) { f.requestSubmit(); }
  }
  function pickRadio(name, n) {
    var radios = $$('input[type=radio][name="' + name + '"]');
    var r = radios[n - 1];
    if (r) { r.checked = true; r.focus(); r.dispatchEvent(new Event("change", { bubbles: true })); return true; }
    return false;
  }

  // ---------------------------------------------------------------- keys
  document.addEventListener("keydown", function (ev) {
    var w = wb();
    if (!w || w.dataset.done) { return; }
    var t = ev.target;
    var key = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && key === "Enter") { ev.preventDefault(); submitMain(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var typing = t.matches && t.matches("textarea, select, input:not([type]), input[type=text], input[type=search], [contenteditable]");
    if (key === "Escape" && typing && !t.closest("dialog")) { t.blur(); return; }
    if (typing || t.closest && t.closest("dialog")) { return; }
    var upper = key.length === 1 ? key.toUpperCase() : key;
    var handled = true;
    var chip = t.classList && t.classList.contains("chip") ? t : null;
    if (chip && Ranking.chipKey(chip, key, announce)) {
      // ranked, unranked or moved (ranking.js)
    } else if (/^[1-9]$/.test(key)) {
      var group = t.type === "radio" && t.closest("[data-scale]") ? t.name : "preference";
      handled = (group !== "preference" || +key <= 7) && pickRadio(group, +key);
    } else if (key === "?") {
      openDialog("keymap");
    } else if (upper === "B" && $('input[name=preference][value="bad"]')) {
      pickRadio("preference", 8);
    } else if (upper === "S") {
      openDialog("skip-dialog");
    } else if (upper === "U") {
      var u = $("#undo-form");
      if (u) { u.requestSubmit(); } else { announce("Nothing to undo."); }
    } else if (upper === "D") {
      toggleDiff();
    } else if (upper === "P") {
      toggleTyped(t.closest && t.closest(".response"));
    } else if (upper === "C" && $("#copy-overall")) {
      copyOverallAndSubmit();
    } else if (upper === "V") {
      revealContent();
    } else if (upper === "W") {
      var box = $("#rewrite-box");
      box.open = true;
      $("#rewrite").focus();
    } else if (upper === "G") {
      var g = $("#guidelines");
      if (g) { g.open = !g.open; if (g.open) { $("summary", g).focus(); } }
    } else if (upper === "R" && $("#ranking_text")) {
      $("#ranking_text").focus();
    } else if (key === "Enter") {
      if (t.matches("button, a, summary, .chip")) { return; }
      submitMain();
    } else if (key.length === 1 && /[A-Z]/.test(upper) && $('input[data-hotkey="' + upper + '"]')) {
      var box2 = $('input[data-hotkey="' + upper + '"]');
      box2.checked = !box2.checked;
      box2.focus();
    } else {
      handled = false;
    }
    if (handled) { ev.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", function () { swapped = true; init(); });
})();
