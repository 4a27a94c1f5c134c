// Forms after a server-side error: the error summary (templates/_form_errors.html) or a question
// that needs an answer takes the focus when the page loads ([data-focus-on-load]), so keyboard and
// screen reader users start there; its links move the focus to the field they name (the first
// input of a group of radio buttons or checkboxes), with the field's label in view.
(function () {
  "use strict";
  var first = document.querySelector("[data-focus-on-load]");
  if (first) first.focus();

  document.addEventListener("click", function (event) {
    var link = event.target.closest(".error-summary a[href^='#']");
    if (!link) return;
    var target = document.getElementById(decodeURIComponent(link.hash.slice(1)));
    if (!target) return;
    var field = target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea");
    if (!field) return;
    event.preventDefault();
    var group = field.closest("fieldset.choices");
    var label = group ? group.querySelector("legend") : document.querySelector("label[for='" + CSS.escape(field.id) + "']");
    (label || field).scrollIntoView({block: "start"});
    field.focus({preventScroll: true});
  });
})();
