// /export/: the live estimate of the rows an export would have, fetched as the form changes. A file
// of its own rather than an inline script: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  const form = document.getElementById("export-form");
  const out = document.getElementById("export-estimate");
  if (!form || !out) return;
  let timer = null;
  function update() {
    const data = new FormData(form);
    data.delete("csrfmiddlewaretoken");
    fetch(form.dataset.estimateUrl + "?" + new URLSearchParams(data), {credentials: "same-origin"})
      .then((r) => r.json().then((body) => ({ok: r.ok, body})))
      .then(({ok, body}) => {
        out.textContent = ok
          ? `about ${body.rows} rows from ${body.judgments} judgments on ${body.comparisons} comparisons (upper bound)`
          : body.detail;
      })
      .catch(() => { out.textContent = "estimate unavailable"; });
  }
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 250); });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(update, 100); });
  update();
})();
