// The review page's keys: 1-7 pick the preference, N goes to the note, Ctrl+Enter saves.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var form = document.getElementById("review-form");
    if (!form) {
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    var target = event.target;
    // Keys type into text boxes and lists; a focused radio button still takes them.
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    var choice = form.querySelector('input[name="preference"][data-key="' + event.key + '"]');
    if (choice) {
      choice.checked = true;
      choice.focus();
      event.preventDefault();
    } else if (event.key === "n" || event.key === "N") {
      document.getElementById("review-note").focus();
      event.preventDefault();
    }
  });
})();
