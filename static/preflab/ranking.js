// What the judging page (workbench.js) and conversations (chat.js) share: the active-time counter
// and the ranking board. Active time counts only while the tab is visible and there was input in
// the last 60 s; it goes into the judgment form's #active_seconds as the form is submitted. The
// board's cards (chips) sit in rank rows and stay in step with the "A > C = B" text input #ranking_text;
// drag a card to a row, or press keys on a focused card. One board per page (#rank-board); a
// board with data-noun="Reply" names its cards "Reply A" rather than "Response A".
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function noun() {
    var board = $("#rank-board");
    return (board && board.dataset.noun) || "Response";
  }

  function rankText() {
    var groups = [];
    $$("#rank-board .tier").forEach(function (tier) {
      var rank = +tier.dataset.rank;
      if (!rank) { return; }
      var labels = $$(".chip", tier).map(function (c) { return c.dataset.label; }).sort();
      if (labels.length) { groups.push(labels.join(" = ")); }
    });
    return groups.join(" > ");
  }
  function placeChip(chip, rank, keepFocus) {
    var tier = $('#rank-board .tier[data-rank="' + rank + '"] .tier-drop');
    if (!tier) { return; }
    var had = document.activeElement === chip;
    tier.appendChild(chip);
    chip.setAttribute("aria-label", noun() + " " + chip.dataset.label + (rank ? ", rank " + rank : ", unranked"));
    if (had || keepFocus) { chip.focus(); }
    var input = $("#ranking_text");
    if (input) { input.value = rankText(); }
  }
  function chipRank(chip) { return +chip.closest(".tier").dataset.rank; }
  function syncBoardFromText() {
    var input = $("#ranking_text");
    if (!input) { return; }
    var seen = {};
    input.value.toUpperCase().split(">").forEach(function (part, i) {
      part.split("=").forEach(function (lab) {
        lab = lab.trim();
        var chip = $('#rank-board .chip[data-label="' + lab + '"]');
        if (chip && !seen[lab]) { seen[lab] = 1; $('#rank-board .tier[data-rank="' + (i + 1) + '"] .tier-drop').appendChild(chip); }
      });
    });
    $$("#rank-board .chip").forEach(function (chip) {
      if (!seen[chip.dataset.label]) { $('#rank-board .tier[data-rank="0"] .tier-drop').appendChild(chip); }
    });
  }
  function initBoard(root) {
    var board = $("#rank-board", root);
    if (!board) { return; }
    board.hidden = false;
    syncBoardFromText();
    var input = $("#ranking_text", root);
    input.addEventListener("input", syncBoardFromText);
    $$(".chip", board).forEach(function (chip) {
      chip.addEventListener("dragstart", function (ev) {
        ev.dataTransfer.setData("text/plain", chip.dataset.label);
        ev.dataTransfer.effectAllowed = "move";
      });
    });
    $$(".tier", board).forEach(function (tier) {
      tier.addEventListener("dragover", function (ev) { ev.preventDefault(); tier.classList.add("over"); });
      tier.addEventListener("dragleave", function () { tier.classList.remove("over"); });
      tier.addEventListener("drop", function (ev) {
        ev.preventDefault();
        tier.classList.remove("over");
        var chip = $('#rank-board .chip[data-label="' + ev.dataTransfer.getData("text/plain") + '"]');
        if (chip) { placeChip(chip, +tier.dataset.rank); }
      });
    });
  }
  // A key on a focused card: a digit gives it that rank (0 unranks it; a digit past K does
  // nothing), the up and down arrows move it one rank. Returns whether the key was one of these
  // (the caller then prevents the key's default); ``announce`` gets what changed.
  function chipKey(chip, key, announce) {
    var k = $$("#rank-board .chip").length;
    if (/^[0-9]$/.test(key)) {
      if (+key <= k) { placeChip(chip, +key, true); announce(noun() + " " + chip.dataset.label + (+key ? ": rank " + key : ": unranked")); }
      return true;
    }
    if (key === "ArrowUp" || key === "ArrowDown") {
      var r = chipRank(chip);
      r = key === "ArrowUp" ? (r <= 1 ? 1 : r - 1) : (r === 0 ? 0 : Math.min(k, r + 1));
      if (chipRank(chip) === 0 && key === "ArrowUp") { r = k; }
      placeChip(chip, r, true);
      announce(noun() + " " + chip.dataset.label + (r ? ": rank " + r : ": unranked"));
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- active time
  var IDLE_MS = 60000;
  var active = 0, last = Date.now(), lastInput = Date.now();
  function tick() {
    var now = Date.now();
    if (!document.hidden && now - lastInput < IDLE_MS) { active += (now - last) / 1000; }
    last = now;
  }
  function touch() { tick(); lastInput = Date.now(); }
  ["keydown", "mousedown", "pointermove", "wheel", "scroll", "touchstart"].forEach(function (e) {
    document.addEventListener(e, touch, { passive: true, capture: true });
  });
  document.addEventListener("visibilitychange", function () { tick(); if (!document.hidden) { lastInput = Date.now(); } });
  setInterval(tick, 1000);
  // Capture phase: runs before htmx reads the form's values.
  document.addEventListener("submit", function (ev) {
    if (ev.target.id === "judgment-form") {
      tick();
      var field = $("#active_seconds");
      if (field) { field.value = active.toFixed(1); }
    }
  }, true);
  // A new item or turn on the page: count from base seconds (an undone judgment's time) again.
  function resetActive(base) { active = base || 0; last = Date.now(); lastInput = Date.now(); }

  window.PreflabRanking = { initBoard: initBoard, chipKey: chipKey, rankText: rankText, resetActive: resetActive };
})();
