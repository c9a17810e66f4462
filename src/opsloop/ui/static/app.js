// The dashboard's progressive enhancement, written here rather than taken from a library:
// no well-kept PyPI package ships htmx, and the pages need only two things, which fit in a few
// lines: draw the Plotly figures a page embeds, and refresh a polled region in place.
// Every page works without it (tables, forms and links are plain HTML).
(function () {
  "use strict";

  function draw(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll("[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.getAttribute("data-figure"));
      var config = Object.assign({ responsive: true, displaylogo: false }, fig.config || {});
      window.Plotly.react(el, fig.data, fig.layout, config);
    });
  }

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var every = parseInt(el.getAttribute("data-poll-ms") || "5000", 10);
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/login"); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            var box = document.createElement("div");
            box.innerHTML = html;
            if (box.innerHTML !== el.getAttribute("data-last")) {
              el.setAttribute("data-last", box.innerHTML);
              el.innerHTML = html;
              draw(el);
            }
          }
        })
        .catch(function () { /* the server may be restarting: try again next tick */ })
        .finally(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
}());
