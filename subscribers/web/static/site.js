// Progressive enhancement only: every form works the same with JavaScript off.
(function () {
  "use strict";

  // Time zone: the browser knows it; the server's list (UTC first) is the fallback.
  var zone = document.querySelector("select[data-detect]");
  if (zone && window.Intl) {
    try {
      var detected = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (detected && Array.prototype.some.call(zone.options, function (o) {
        return o.value === detected;
      })) {
        zone.value = detected;
      }
    } catch (ignored) { /* an old browser keeps the server's default */ }
  }

  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();

  var box = document.getElementById("keywords");
  var results = document.getElementById("preview-results");
  if (!box || !results || !window.fetch || !window.DOMParser) return;
  var section = results.parentNode;
  var timer = null;
  var shown = null;
  var pending = null;

  // Live preview: the server renders the same list the no-JS "Preview" button shows.
  function refresh() {
    var value = box.value;
    if (value === shown) return;
    shown = value;
    if (pending) pending.abort();
    pending = new AbortController();
    section.classList.add("loading");
    fetch("/preview/fragment?keywords=" + encodeURIComponent(value), {
      signal: pending.signal, credentials: "same-origin", headers: {"Accept": "text/html"}
    }).then(function (response) {
      if (!response.ok) throw new Error("preview " + response.status);
      return response.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      results.replaceChildren.apply(results, Array.prototype.slice.call(doc.body.childNodes));
      section.classList.remove("loading");
    }).catch(function (error) {
      if (error.name !== "AbortError") { section.classList.remove("loading"); shown = null; }
    });
  }

  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  });
  shown = box.value;

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    var suggestion = target.closest("button[data-keyword]");
    if (suggestion) {
      // Add the keyword in place instead of submitting the form.
      event.preventDefault();
      var keyword = suggestion.getAttribute("data-keyword");
      var present = box.value.split(/[,;\n]/).map(function (k) { return k.trim().toLowerCase(); });
      if (present.indexOf(keyword.toLowerCase()) < 0) {
        var text = box.value.replace(/\s+$/, "");
        box.value = text + (text ? "\n" : "") + keyword;
      }
      suggestion.setAttribute("aria-pressed", "true");
      refresh();
      return;
    }
    if (target.closest(".preview-button")) {
      event.preventDefault();
      shown = null;
      refresh();
      section.scrollIntoView({behavior: "smooth", block: "start"});
    }
  });
})();
