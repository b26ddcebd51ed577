/* The automatic logoff as the page shows it (the server decides: tenants/idle_logoff.py;
   its clock: tenants/views/session_clock.py). Settings come on this script's own tag
   (templates/_idle_script.html), on the site's pages and on the viewer's alike.
   - A key, click, touch or wheel on the page is the person's activity. It is told to the
     server at most once a minute, one request at a time, so someone writing a long report
     is not signed out mid-sentence.
   - Two minutes before the server would end the session, a banner fixed at the bottom of
     the window counts down, with a button to stay signed in. Screen readers hear it once.
   - At zero the page asks the server, which knows about the person's other tabs. Asking is
     not activity: the question itself ends an idle session. The page then goes to the
     sign-in page, which says why. If the server cannot be asked, the page leaves anyway
     a little later: patient data does not stay on an unattended screen. */
(function () {
  "use strict";
  var me = document.currentScript;
  var idle = me && parseInt(me.dataset.idleSeconds, 10);
  if (!idle || !window.fetch) return;
  var clockUrl = me.dataset.sessionClock;
  var WARN_MS = 120 * 1000, TELL_MS = 60 * 1000, RETRY_MS = 15 * 1000;
  var GRACE_MS = 30 * 1000, LONGEST_WAIT_MS = 60 * 60 * 1000;
  var automatic = new URL(location.href).searchParams.get("auto_refresh") === "1";
  var told = automatic ? 0 : Date.now();  // when the server last heard of the person
  var deadline = Date.now() + 1000 * parseInt(me.dataset.idleLeft || String(idle), 10);
  var timer = null, ticker = null, banner = null, asking = false;

  function signIn(reason) {
    var here = new URL(location.href);
    here.searchParams.delete("auto_refresh");
    var url = new URL(me.dataset.login, location.href);
    url.searchParams.set("next", here.pathname + here.search);
    if (reason === "idle") url.searchParams.set("idle", String(Math.round(idle / 60)));
    location.replace(url.toString());  // not kept in the history: Back does not show it again
  }

  function ask(method) {
    if (asking) return;
    asking = true;
    var url = method === "GET" ? clockUrl + "?auto_refresh=1" : clockUrl;
    fetch(url, {method: method, credentials: "same-origin", cache: "no-store",
                headers: {"Accept": "application/json", "X-CSRFToken": me.dataset.csrf}})
      .then(function (response) {
        if (response.status === 401) {
          stop();
          signIn(response.headers.get("X-Signed-Out"));
          return;
        }
        if (!response.ok) throw new Error("session clock: " + response.status);
        return response.json().then(function (clock) {
          if (clock.seconds_left === null) { stop(); return; }  // the limit was switched off
          deadline = Date.now() + 1000 * clock.seconds_left;
          schedule();
        });
      })
      .catch(function () {
        // Unreachable: try again soon, and leave once well past the end.
        if (Date.now() > deadline + GRACE_MS) { stop(); signIn("idle"); return; }
        clearTimeout(timer);
        timer = setTimeout(check, RETRY_MS);
      })
      .finally(function () { asking = false; });
  }

  function check() { ask("GET"); }

  function schedule() {
    clearTimeout(timer);
    var left = deadline - Date.now();
    if (left > WARN_MS) {
      hide();
      timer = setTimeout(check, Math.min(left - WARN_MS, LONGEST_WAIT_MS));
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
      banner.setAttribute("role", "alert");
      var style = banner.style;  // set here: the viewer's page has not the site's stylesheet
      style.position = "fixed"; style.left = "0.75rem"; style.right = "0.75rem"; style.bottom = "0.75rem";
      style.zIndex = "2147483647"; style.margin = "0 auto"; style.maxWidth = "40rem";
      style.padding = "0.75rem 1rem"; style.borderRadius = "6px"; style.font = "16px/1.4 system-ui, sans-serif";
      style.background = "#fff4e5"; style.color = "#1f2933"; style.border = "1px solid #f0b35a";
      style.boxShadow = "0 4px 16px rgba(0, 0, 0, 0.25)";
      var minutes = Math.max(1, Math.round((deadline - Date.now()) / 60000));
      var sentence = document.createElement("span");
      sentence.appendChild(document.createTextNode("To protect patient data you will be signed out in "));
      var count = document.createElement("strong");
      count.setAttribute("aria-hidden", "true");  // the ticking time is seen, not read out
      sentence.appendChild(count);
      var spoken = document.createElement("span");
      spoken.className = "sr-only";
      spoken.style.position = "absolute"; spoken.style.width = "1px"; spoken.style.height = "1px";
      spoken.style.overflow = "hidden"; spoken.style.clip = "rect(0, 0, 0, 0)";
      spoken.textContent = minutes === 1 ? "1 minute" : minutes + " minutes";
      sentence.appendChild(spoken);
      sentence.appendChild(document.createTextNode(" without activity. "));
      banner.appendChild(sentence);
      var stay = document.createElement("button");
      stay.type = "button";
      stay.className = "idle-stay";
      stay.textContent = "Stay signed in";
      stay.style.font = "inherit"; stay.style.marginTop = "0.25rem"; stay.style.minHeight = "44px";
      stay.addEventListener("click", function () { told = Date.now(); ask("POST"); });
      banner.appendChild(stay);
      document.body.appendChild(banner);
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
  // A page brought back by Back or Forward (the browser's page cache) runs no timers
  // meanwhile: look at the clock again at once.
  window.addEventListener("pageshow", function (event) { if (event.persisted) check(); });
  schedule();
})();
