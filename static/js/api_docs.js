/* /api/docs/: start Redoc on the schema URL, with the nonce that lets its <style> elements
   through the Content-Security-Policy (templates/drf_spectacular/redoc.html). */
(function () {
  "use strict";
  var container = document.getElementById("redoc");
  window.Redoc.init(container.dataset.specUrl, {nonce: container.dataset.styleNonce}, container);
})();
