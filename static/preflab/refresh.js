// Sections that refresh themselves: <section id=... data-refresh="url" data-active="1"> is fetched
// again from its URL every 2 s while the fresh copy still says data-active="1", and swapped in.
// Nothing else on the page is touched, so a form being filled in keeps what was typed. Open
// <details> stay open, the focus stays on the same control, and rows whose data-status changed
// are announced in the page's polite live region (#refresh-status), e.g. "Export 12: Succeeded".
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function rows(section) {
    var found = new Map();
    section.querySelectorAll("[id][data-status]").forEach(function (row) {
      found.set(row.id, {status: row.dataset.status, announce: row.dataset.announce || ""});
    });
    return found;
  }

  // Where the focus is inside the section, as something that survives the swap: the row's id
  // plus the control's own label.
  function focusKey(section) {
    var active = document.activeElement;
    if (!active || !section.contains(active) || active === section) return null;
    var row = active.closest("[id]");
    return {
      id: active.id || null,
      row: row && row !== section ? row.id : null,
      tag: active.tagName,
      label: active.getAttribute("aria-label") || active.textContent.trim(),
    };
  }

  function refocus(fresh, key) {
    if (!key) return;
    var target = key.id ? fresh.querySelector("#" + CSS.escape(key.id)) : null;
    if (!target) {
      var scope = key.row ? fresh.querySelector("#" + CSS.escape(key.row)) : fresh;
      if (scope) {
        target = Array.prototype.find.call(scope.querySelectorAll(key.tag), function (el) {
          return (el.getAttribute("aria-label") || el.textContent.trim()) === key.label;
        });
      }
    }
    (target || fresh).focus({preventScroll: true});
  }

  function schedule(id) {
    var section = document.getElementById(id);
    if (section && section.dataset.active === "1") setTimeout(function () { refresh(id); }, PERIOD_MS);
  }

  function refresh(id) {
    var section = document.getElementById(id);
    if (!section) return;
    fetch(section.dataset.refresh, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var t = document.createElement("template");
        t.innerHTML = html.trim();
        var fresh = t.content.firstElementChild;
        if (!fresh || fresh.id !== id) return;
        section.querySelectorAll("details[open]").forEach(function (d) {
          var row = d.closest("[id]");
          var same = row && fresh.querySelector("#" + CSS.escape(row.id) + " details");
          if (same) same.open = true;
        });
        var before = rows(section);
        var changed = [];
        rows(fresh).forEach(function (row, rowId) {
          var old = before.get(rowId);
          if (old && old.status !== row.status && row.announce) changed.push(row.announce);
        });
        var key = focusKey(section);
        if (key) fresh.setAttribute("tabindex", "-1");
        section.replaceWith(fresh);
        refocus(fresh, key);
        var live = document.getElementById("refresh-status");
        if (live && changed.length) live.textContent = changed.join(". ") + ".";
      })
      .catch(function () {})
      .finally(function () { schedule(id); });
  }

  document.querySelectorAll("[data-refresh]").forEach(function (section) { schedule(section.id); });
})();
