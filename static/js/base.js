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
  // <form data-confirm="Question?">: submitted only if the person confirms.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
