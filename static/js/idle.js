/* The automatic logoff as the page shows it (the server decides: tenants/idle_logoff.py;
   its clock: tenants/views/session_clock.py).
   - A key, click or touch on the page is the person's activity. It is told to the server at
     most once a minute, so someone writing a long report is not signed out mid-sentence.
   - Two minutes before the server would end the session, a banner counts down, with a
     button to stay signed in.
   - At zero the page asks the server, which knows about the person's other tabs. Asking is
     not activity: the question itself ends an idle session. The page then goes to the
     sign-in page, which says why. */
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.dataset.idleSeconds, 10);
  if (!idle || !window.fetch) return;
  var clockUrl = body.dataset.sessionClock;
  var WARN_MS = 120 * 1000, TELL_MS = 60 * 1000, RETRY_MS = 15 * 1000;
  var here = new URL(location.href);
  var automatic = here.searchParams.get("auto_refresh") === "1";
  var told = automatic ? 0 : Date.now();  // when the server last heard of the person
  var deadline = Date.now() + idle * 1000;  // the earliest the server can end it
  var timer = null, ticker = null, banner = null;

  function signIn() {
    here.searchParams.delete("auto_refresh");
    var url = new URL(body.dataset.login, location.href);
    url.searchParams.set("next", here.pathname + here.search);
    url.searchParams.set("idle", String(Math.round(idle / 60)));
    location.assign(url.toString());
  }

  function ask(method) {
    var url = method === "GET" ? clockUrl + "?auto_refresh=1" : clockUrl;
    return fetch(url, {method: method, credentials: "same-origin", cache: "no-store",
                       headers: {"Accept": "application/json", "X-CSRFToken": body.dataset.csrf}})
      .then(function (response) {
        if (response.status === 401) { stop(); signIn(); return; }
        if (!response.ok) throw new Error("session clock: " + response.status);
        return response.json().then(function (clock) {
          if (clock.seconds_left === null) { stop(); return; }  // the limit was switched off
          deadline = Date.now() + 1000 * clock.seconds_left;
          schedule();
        });
      })
      .catch(function () { clearTimeout(timer); timer = setTimeout(check, RETRY_MS); });
  }

  function check() { ask("GET"); }

  function schedule() {
    clearTimeout(timer);
    var left = deadline - Date.now();
    if (left > WARN_MS) {
      hide();
      timer = setTimeout(check, left - WARN_MS);
    } else {
      show();
      timer = setTimeout(check, Math.max(left, 0) + 1000);
    }
  }

  function stop() { clearTimeout(timer); hide(); }

  function show() {
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "banner warning idle-warning";
      banner.setAttribute("role", "alertdialog");
      banner.setAttribute("aria-live", "assertive");
      banner.appendChild(document.createTextNode("To protect patient data you will be signed out in "));
      banner.appendChild(document.createElement("strong"));
      banner.appendChild(document.createTextNode(" without activity. "));
      var stay = document.createElement("button");
      stay.type = "button";
      stay.textContent = "Stay signed in";
      banner.appendChild(stay);
      (document.querySelector("main") || body).prepend(banner);
    }
    var tick = function () {
      var seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      banner.querySelector("strong").textContent =
        Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
    };
    tick();
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
  }

  function hide() {
    clearInterval(ticker);
    if (banner) { banner.remove(); banner = null; }
  }

  function active() {
    var now = Date.now();
    if (banner || now - told >= TELL_MS) {
      told = now;
      ask("POST");
    }
  }

  ["keydown", "pointerdown", "wheel"].forEach(function (kind) {
    document.addEventListener(kind, active, {capture: true, passive: true});
  });
  if (automatic) check(); else schedule();
})();
