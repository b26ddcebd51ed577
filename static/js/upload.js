/* Browser upload: files, folders (picker or drag and drop), zips and CD contents, sent with
   the tus 1.0 protocol in chunks so an upload resumes after a dropped connection.
   Per-file and overall progress; a summary when everything is done. */
(function () {
  "use strict";
  var root = document.getElementById("upload");
  if (!root) return;
  var FILES_URL = root.dataset.filesUrl, BATCH_URL = root.dataset.batchUrl;
  var CSRF = root.dataset.csrf, CHUNK = parseInt(root.dataset.chunk, 10);
  var MAX = parseInt(root.dataset.max, 10);
  var list = document.getElementById("files"), overallBar = document.getElementById("overall-bar");
  var overallText = document.getElementById("overall-text"), summaryEl = document.getElementById("summary");
  var LABELS = {stored: "stored", already_present: "already present", rejected: "rejected", skipped: "skipped"};
  var queue = [], running = false, totals = {bytes: 0, sent: 0}, counts = {};

  function b64(s) { return btoa(unescape(encodeURIComponent(s))); }

  function xhr(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      var r = new XMLHttpRequest();
      r.open(method, url);
      r.setRequestHeader("X-CSRFToken", CSRF);
      Object.keys(headers || {}).forEach(function (k) { r.setRequestHeader(k, headers[k]); });
      if (onProgress) r.upload.onprogress = function (e) { onProgress(e.loaded); };
      r.onload = function () { resolve(r); };
      r.onerror = r.ontimeout = function () { reject(new Error("network")); };
      r.send(body || null);
    });
  }

  function tusHeaders(extra) {
    var h = {"Tus-Resumable": "1.0.0"};
    Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
    return h;
  }

  function row(name) {
    var li = document.createElement("li");
    li.innerHTML = '<div class="name"></div><progress max="1" value="0"></progress><div class="status">waiting</div>';
    li.querySelector(".name").textContent = name;
    list.appendChild(li);
    return {li: li, bar: li.querySelector("progress"), status: li.querySelector(".status")};
  }

  function showResult(item, files) {
    item.bar.value = 1;
    var stored = 0;
    item.status.textContent = "";
    files.forEach(function (f) {
      counts[f.status] = (counts[f.status] || 0) + 1;
      if (files.length === 1) {
        item.status.className = "status st-" + f.status;
        item.status.textContent = LABELS[f.status] + (f.reason ? ": " + f.reason : "");
      } else if (f.status !== "stored" && f.status !== "already_present") {
        var p = document.createElement("div");
        p.className = "st-" + f.status;
        p.textContent = f.name + " - " + LABELS[f.status] + (f.reason ? ": " + f.reason : "");
        item.status.appendChild(p);
      } else { stored++; }
    });
    if (files.length > 1) {
      var head = document.createElement("div");
      head.className = "st-stored";
      head.textContent = files.length + " files in the zip, " + stored + " stored or already present";
      item.status.insertBefore(head, item.status.firstChild);
    }
  }

  // A link to each study the upload made, to check it at once.
  function showStudies(links) {
    var ul = document.getElementById("studies");
    ul.textContent = "";
    links.forEach(function (study) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = study.url;
      a.textContent = study.name;
      li.appendChild(a);
      var rest = [study.date, study.description].filter(Boolean).join(" · ");
      if (rest) li.appendChild(document.createTextNode(" " + rest));
      ul.appendChild(li);
    });
    ul.hidden = !links.length;
  }

  // Rows in the files' own order (a folder's listing comes in the disk's order): by path,
  // numbers compared as numbers, so IM2 comes before IM10.
  var byPath = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});

  function updateOverall() {
    overallBar.max = Math.max(totals.bytes, 1);
    overallBar.value = totals.sent;
    var pct = totals.bytes ? Math.floor(100 * totals.sent / totals.bytes) : 100;
    overallText.textContent = pct + "% of " + (totals.bytes / 1048576).toFixed(1) + " MB";
  }

  function fingerprint(file) {
    return "tus::" + location.pathname + "::" + (file.relPath || file.name) + "::" + file.size + "::" + file.lastModified;
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  async function createUpload(file, batch) {
    var key = fingerprint(file), saved = localStorage.getItem(key);
    if (saved) {
      var head = await xhr("HEAD", saved, tusHeaders());
      if (head.status === 200) return {url: saved, offset: parseInt(head.getResponseHeader("Upload-Offset"), 10)};
      localStorage.removeItem(key);
    }
    var meta = "filename " + b64(file.relPath || file.name) + ",batch " + b64(batch);
    var r = await xhr("POST", FILES_URL, tusHeaders({"Upload-Length": String(file.size), "Upload-Metadata": meta}));
    if (r.status !== 201) throw new Error(r.responseText || ("could not start the upload (" + r.status + ")"));
    var url = r.getResponseHeader("Location");
    localStorage.setItem(key, url);
    return {url: url, offset: 0};
  }

  async function sendFile(file, item, batch) {
    var up = await createUpload(file, batch), offset = up.offset, failures = 0, base = totals.sent;
    while (offset < file.size) {
      var end = Math.min(offset + CHUNK, file.size), start = offset;
      item.status.textContent = "uploading";
      try {
        var r = await xhr("PATCH", up.url, tusHeaders({"Upload-Offset": String(offset),
          "Content-Type": "application/offset+octet-stream"}), file.slice(offset, end), function (loaded) {
          item.bar.value = (start + loaded) / file.size;
          totals.sent = base + start + loaded; updateOverall();
        });
        if (r.status === 204) { offset = parseInt(r.getResponseHeader("Upload-Offset"), 10); failures = 0; continue; }
        if (r.status === 404) throw new Error("the upload expired; add the file again");
        if (r.status !== 409 && r.status !== 423) throw new Error(r.responseText || ("upload failed (" + r.status + ")"));
      } catch (e) {
        if (e.message !== "network") throw e;
      }
      // Dropped connection or offset mismatch: ask the server where it stands and resume.
      failures++;
      if (failures > 8) throw new Error("the connection keeps dropping; try again later");
      item.status.textContent = "connection lost, resuming...";
      await sleep(Math.min(30000, 500 * Math.pow(2, failures)));
      try {
        var head = await xhr("HEAD", up.url, tusHeaders());
        if (head.status === 404) throw new Error("the upload expired; add the file again");
        if (head.status === 200) offset = parseInt(head.getResponseHeader("Upload-Offset"), 10);
      } catch (e) { if (e.message !== "network") throw e; }
    }
    totals.sent = base + file.size; updateOverall();
    item.status.textContent = "checking and storing...";
    var done = await xhr("POST", up.url + "/ingest", {});
    localStorage.removeItem(fingerprint(file));
    var data = JSON.parse(done.responseText || "{}");
    if (done.status !== 200) throw new Error(data.error || ("could not store (" + done.status + ")"));
    showResult(item, data.files);
  }

  async function run() {
    if (running) return;
    running = true;
    summaryEl.hidden = true;
    document.getElementById("overall").hidden = false;
    var batchResp = await xhr("POST", BATCH_URL, {});
    var batch = JSON.parse(batchResp.responseText).batch;
    while (queue.length) {
      var job = queue.shift();
      try { await sendFile(job.file, job.item, batch); }
      catch (e) {
        counts.rejected = (counts.rejected || 0) + 1;
        job.item.status.className = "status st-rejected";
        job.item.status.textContent = "not uploaded: " + e.message;
        totals.sent += job.file.size; updateOverall();
      }
    }
    var closed = await xhr("POST", BATCH_URL + batch + "/close", {});
    var s = JSON.parse(closed.responseText || "{}");
    summaryEl.textContent = "Done: " + (counts.stored || 0) + " stored, " + (counts.already_present || 0) +
      " already present, " + (counts.rejected || 0) + " rejected, " + (counts.skipped || 0) + " skipped" +
      (s.studies !== undefined ? " (" + s.studies + (s.studies === 1 ? " study)" : " studies)") : "") + ".";
    summaryEl.hidden = false;
    showStudies(s.study_links || []);
    running = false;
  }

  function add(files) {
    files.forEach(function (file) { file.relPath = file.relPath || file.webkitRelativePath || file.name; });
    files.sort(function (a, b) { return byPath.compare(a.relPath, b.relPath); });
    files.forEach(function (file) {
      var name = file.relPath;
      var item = row(name);
      if (file.name.toUpperCase() === "DICOMDIR") {
        item.bar.value = 1; item.status.className = "status st-skipped";
        item.status.textContent = "skipped: DICOMDIR is the CD's index; its images are uploaded";
        counts.skipped = (counts.skipped || 0) + 1;
        return;
      }
      if (file.size > MAX) {
        item.status.className = "status st-rejected";
        item.status.textContent = "rejected: larger than the upload limit";
        counts.rejected = (counts.rejected || 0) + 1;
        return;
      }
      totals.bytes += file.size;
      queue.push({file: file, item: item});
    });
    updateOverall();
    run();
  }

  // Folders dropped on the page: walk the entries (readEntries returns batches).
  function walk(entry, path) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (f) { f.relPath = path + f.name; resolve([f]); }, function () { resolve([]); });
      } else if (entry.isDirectory) {
        var reader = entry.createReader(), all = [];
        var next = function () {
          reader.readEntries(function (entries) {
            if (!entries.length) {
              Promise.all(all).then(function (lists) { resolve([].concat.apply([], lists)); });
              return;
            }
            entries.forEach(function (e) { all.push(walk(e, path + entry.name + "/")); });
            next();
          }, function () { resolve([]); });
        };
        next();
      } else { resolve([]); }
    });
  }

  var zone = document.getElementById("dropzone");
  ["dragenter", "dragover"].forEach(function (ev) {
    zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("over"); });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (e) {
    e.preventDefault(); zone.classList.remove("over");
    var items = e.dataTransfer.items;
    if (items && items.length && items[0].webkitGetAsEntry) {
      var entries = [];
      for (var i = 0; i < items.length; i++) { var en = items[i].webkitGetAsEntry(); if (en) entries.push(en); }
      Promise.all(entries.map(function (en) { return walk(en, ""); })).then(function (lists) {
        add([].concat.apply([], lists));
      });
    } else { add(Array.prototype.slice.call(e.dataTransfer.files)); }
  });
  ["pick-files", "pick-folder"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", function (e) {
      add(Array.prototype.slice.call(e.target.files)); e.target.value = "";
    });
  });
})();
