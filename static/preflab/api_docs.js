// /api/docs/: Swagger UI draws the API's description and its Authorize button outside any
// landmark, its headings jump from the title (h1) to the groups of operations (h3), and an
// operation's request body box and responses table have no name. Each time it draws them, name
// those parts and give the headings the levels of their place in the page, so that the page is
// navigable by landmarks and headings (axe-core's "region", "heading-order", "label" and
// "landmark-unique" rules).
(function () {
  "use strict";
  var REGIONS = {".information-container": "About this API", ".scheme-container": "Authorization"};
  function operationName(el) {
    var block = el.closest(".opblock");
    var method = block && block.querySelector(".opblock-summary-method");
    var path = block && block.querySelector(".opblock-summary-path");
    return block ? (method ? method.textContent : "") + " " + (path ? path.textContent.replace(/\u200b/g, "") : "") : "";
  }
  function label() {
    // An operation's request body box and its responses table, named after the operation.
    document.querySelectorAll("#swagger-ui textarea.body-param__text:not([aria-label])").forEach(function (t) {
      t.setAttribute("aria-label", "Request body of " + operationName(t));
    });
    document.querySelectorAll("#swagger-ui table.responses-table[role=region]:not([aria-label])").forEach(function (t) {
      t.setAttribute("aria-label", "Responses of " + operationName(t));
    });
    var levels = {
      "h3.opblock-tag": "2", ".models > h4": "2", ".opblock h4": "3", ".opblock h5": "4", ".model-box h4": "3"
    };
    Object.keys(levels).forEach(function (selector) {
      document.querySelectorAll("#swagger-ui " + selector + ":not([aria-level])").forEach(function (h) {
        h.setAttribute("aria-level", levels[selector]);
      });
    });
    Object.keys(REGIONS).forEach(function (selector) {
      document.querySelectorAll("#swagger-ui " + selector + ":not([role])").forEach(function (el) {
        el.setAttribute("role", "region");
        el.setAttribute("aria-label", REGIONS[selector]);
      });
    });
  }
  new MutationObserver(label).observe(document.getElementById("swagger-ui"), {childList: true, subtree: true});
  label();
})();
