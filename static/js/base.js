/* Behaviour every page shares, kept out of the HTML so that the Content-Security-Policy can
   forbid inline script: the phone menu toggle, and forms that ask before they act. */
(function () {
  "use strict";
  var toggle = document.querySelector("button.nav-toggle");
  var nav = document.getElementById("mainnav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      toggle.setAttribute("aria-expanded", String(nav.classList.toggle("open")));
    });
  }
  // <button class="copy" data-copy="#input">: copies the input's text (a link to pass on).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.dataset.copy);
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else { document.execCommand("copy"); done(); }
  });
  // <span data-refresh-seconds="3">: work shown on the page is under way; look again soon.
  // The reload says it is automatic (auto_refresh=1): it does not count as the person's
  // activity, so a page left refreshing still reaches the automatic logoff.
  var refresh = document.querySelector("[data-refresh-seconds]");
  if (refresh) {
    setTimeout(function () {
      var url = new URL(location.href);
      url.searchParams.set("auto_refresh", "1");
      location.replace(url.toString());
    }, 1000 * parseFloat(refresh.dataset.refreshSeconds));
  }
  // <form data-confirm="Question?">: submitted only if the person confirms.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
