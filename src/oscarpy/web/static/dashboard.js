// The dashboard's few behaviours, in plain JavaScript: live job lists and counts, following a
// job's log, uploads with per-file progress, synchronous invocation, confirmations. Every page
// also works without it (forms post to the server), only less live.
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";

  function showMessage(text, kind, where) {
    const box = document.getElementById(where || "messages");
    if (!box) return;
    const paragraph = document.createElement("p");
    paragraph.className = "message " + (kind || "error");
    paragraph.setAttribute("role", kind === "notice" ? "status" : "alert");
    paragraph.textContent = text;
    box.replaceChildren(paragraph);
  }

  // A readable message from a failed response: the JSON `detail`, else the status.
  async function problem(response) {
    let detail = "";
    try {
      const text = await response.text();
      try { detail = JSON.parse(text).detail || ""; } catch (_) { detail = text.slice(0, 300); }
    } catch (_) { /* no body */ }
    if (response.status === 401) return "Your session ended: sign in again.";
    return (detail || response.statusText || "request failed") + " (HTTP " + response.status + ")";
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
    if (!response.ok) throw new Error(await problem(response));
    return response.json();
  }

  function pad(number) { return String(number).padStart(2, "0"); }
  function formatTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (isNaN(date)) return iso;
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      element.textContent = formatTime(element.getAttribute("datetime"));
    });
  }

  // Replaces the element matching `selector` with the same element of a fresh copy of this
  // page, then gives the new content its behaviours: a part of the page renewed, no reload.
  async function renew(selector) {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) throw new Error(await problem(response));
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const replacement = fresh.querySelector(selector);
    const current = document.querySelector(selector);
    if (!replacement || !current) return;
    current.replaceWith(replacement);
    bind(replacement);
  }

  // Repeats `task` every `seconds` while the page is visible; stops when it returns false.
  function every(seconds, task) {
    let failures = 0;
    async function tick() {
      if (document.hidden) { setTimeout(tick, seconds * 1000); return; }
      let again = true;
      try { again = (await task()) !== false; failures = 0; }
      catch (error) {
        failures += 1;
        if (failures === 3) showMessage("Live updates stopped: " + error.message);
      }
      if (again) setTimeout(tick, seconds * 1000 * Math.min(1 + failures, 5));
    }
    setTimeout(tick, seconds * 1000);
  }

  function updateCounts(root, counts) {
    Object.keys(counts).forEach(function (status) {
      root.querySelectorAll('[data-count="' + status + '"]').forEach(function (element) {
        element.textContent = counts[status];
      });
    });
  }

  // -- services list: live counts -----------------------------------------------------------
  document.querySelectorAll("[data-live-counts]").forEach(function (table) {
    every(3, async function () {
      const data = await getJSON(table.dataset.liveCounts);
      table.querySelectorAll("tr[data-service]").forEach(function (row) {
        const counts = data.services[row.dataset.service];
        if (counts) updateCounts(row, counts);
      });
    });
  });

  // -- one service: live job list -------------------------------------------------------------
  function jobRow(job) {
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    function cell(content) {
      const td = document.createElement("td");
      if (typeof content === "string") td.textContent = content; else td.append(content);
      row.append(td);
      return td;
    }
    const link = document.createElement("a");
    link.href = job.url;
    const code = document.createElement("code");
    code.textContent = job.id.slice(0, 8);
    link.append(code);
    cell(link);
    const badge = document.createElement("span");
    badge.className = "badge " + job.status;
    badge.textContent = job.status_label;
    cell(badge);
    cell(job.input).className = "key";
    cell(formatTime(job.created_at)).className = "wide-only";
    cell(formatTime(job.started_at)).className = "wide-only";
    cell(formatTime(job.finished_at));
    cell(String(job.attempts));
    return row;
  }

  document.querySelectorAll("[data-live-jobs]").forEach(function (section) {
    const body = section.querySelector("[data-jobs-body]");
    const empty = section.querySelector("[data-jobs-empty]");
    const total = section.querySelector("[data-jobs-total]");
    every(2, async function () {
      const data = await getJSON(section.dataset.liveJobs);
      body.replaceChildren.apply(body, data.jobs.map(jobRow));
      if (empty) empty.hidden = data.jobs.length > 0;
      if (total) total.textContent = data.total;
      updateCounts(section, data.counts);
    });
  });

  // -- one job: follow the log ----------------------------------------------------------------
  document.querySelectorAll("[data-live-job]").forEach(function (section) {
    const log = section.querySelector("[data-log]");
    const follow = section.querySelector("[data-follow]");
    const state = section.querySelector("[data-log-state]");
    let offset = Number(section.dataset.offset || 0);
    if (follow && follow.checked) log.scrollTop = log.scrollHeight;
    if (section.dataset.finished === "true") return;
    every(1, async function () {
      const data = await getJSON(section.dataset.liveJob + "?offset=" + offset);
      if (data.reset) log.textContent = "";
      if (data.log) log.append(document.createTextNode(data.log));
      offset = data.offset;
      if (follow && follow.checked) log.scrollTop = log.scrollHeight;
      const badge = section.querySelector("[data-job-status]");
      badge.className = "badge " + data.job.status;
      badge.textContent = data.job.status_label;
      section.querySelector("[data-job-message]").textContent = data.job.message;
      section.querySelector("[data-job-attempts]").textContent = data.job.attempts;
      if (data.job.finished) {
        if (state) state.textContent = "The job has finished.";
        // Renew the page's job part once, for the exit code, run time and retry button.
        await renew("[data-job-page]");
        return false;
      }
      return true;
    });
  });

  // -- confirmations --------------------------------------------------------------------------
  function bind(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
    root.querySelectorAll("a[data-back]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
      });
    });
    localTimes(root);
  }

  // -- uploads with per-file progress ---------------------------------------------------------
  function uploadOne(url, key, file, list) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "waiting";
    item.append(label, bar, status);
    list.append(item);
    return new Promise(function (resolve) {
      const request = new XMLHttpRequest();
      request.open("PUT", url + "?key=" + encodeURIComponent(key));
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Accept", "application/json");
      if (file.type) request.setRequestHeader("Content-Type", file.type);
      request.upload.onprogress = function (event) {
        if (event.lengthComputable) {
          bar.value = Math.round((100 * event.loaded) / event.total);
          status.textContent = bar.value + "%";
        }
      };
      request.onload = function () {
        if (request.status >= 200 && request.status < 300) {
          bar.value = 100;
          status.textContent = "done";
          item.className = "done";
          resolve(true);
        } else {
          let detail = request.statusText;
          try { detail = JSON.parse(request.responseText).detail || detail; } catch (_) { /* text */ }
          status.textContent = "failed: " + detail;
          item.className = "failed";
          resolve(false);
        }
      };
      request.onerror = function () {
        status.textContent = "failed: the connection broke";
        item.className = "failed";
        resolve(false);
      };
      status.textContent = "0%";
      request.send(file);
    });
  }

  // Files uploaded into a service's input folder start jobs: say so, with a way to watch them.
  function announceJobs(services, count) {
    const names = (services || "").split(" ").filter(Boolean);
    if (!names.length) return;
    const box = document.getElementById("messages");
    const paragraph = document.createElement("p");
    paragraph.className = "message notice";
    paragraph.setAttribute("role", "status");
    paragraph.append(count + (count === 1 ? " file starts a job" : " files start jobs") + " of ");
    names.forEach(function (name, index) {
      const link = document.createElement("a");
      link.href = document.body.dataset.prefix + "/services/" + encodeURIComponent(name);
      link.textContent = name;
      if (index) paragraph.append(", ");
      paragraph.append(link);
    });
    paragraph.append(": follow them there.");
    box.replaceChildren(paragraph);
  }

  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    const input = form.querySelector('input[type="file"]');
    const list = form.parentElement.querySelector("[data-uploads]");
    const fallback = form.querySelector("[data-no-script]");
    if (fallback) fallback.hidden = true;
    async function send(files) {
      if (!files.length) return;
      const results = [];
      // Two at a time: per-file progress stays readable and the server is not swamped.
      const queue = Array.from(files);
      async function worker() {
        while (queue.length) {
          const file = queue.shift();
          results.push(await uploadOne(form.dataset.upload, form.dataset.prefix + file.name, file, list));
        }
      }
      await Promise.all([worker(), worker()]);
      const failed = results.filter(function (ok) { return !ok; }).length;
      if (failed) showMessage(failed + " of " + results.length + " uploads failed; see the list.");
      else announceJobs(form.dataset.triggers, results.length);
      await renew("[data-listing]");
    }
    input.addEventListener("change", function () { send(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.remove("over"); });
    });
    form.addEventListener("drop", function (event) { send(event.dataTransfer.files); });
  });

  // -- service form: more path rows, a script editor that takes Tab ---------------------------
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    button.addEventListener("click", function () {
      const rows = button.parentElement.querySelector(".path-rows");
      const last = rows.lastElementChild;
      const copy = last.cloneNode(true);
      const index = rows.children.length + 1;
      copy.querySelectorAll("input").forEach(function (input) {
        const id = input.id.replace(/-\d+$/, "-" + index);
        const label = copy.querySelector('label[for="' + input.id + '"]');
        if (label) {
          label.htmlFor = id;
          const words = label.querySelector(".visually-hidden") || label;
          words.textContent = words.textContent.replace(/\d+/, index);
        }
        input.id = id;
        input.value = input.name.endsWith("_provider") ? "minio.default" : "";
      });
      rows.append(copy);
      copy.querySelector("input").focus();
    });
  });

  document.querySelectorAll("textarea#script").forEach(function (area) {
    let trapTab = true;
    area.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { trapTab = false; return; }
      if (event.key === "Tab" && trapTab && !event.shiftKey) {
        event.preventDefault();
        area.setRangeText("\t", area.selectionStart, area.selectionEnd, "end");
      }
    });
    area.addEventListener("focus", function () { trapTab = true; });
  });

  // -- invoke: synchronously through the REST route /run/{service} ----------------------------
  // Raw bytes both ways (Content-Type and Accept application/octet-stream), so that neither
  // the input nor the answer goes through base64 and nothing is guessed.
  const BINARY = "application/octet-stream";

  document.querySelectorAll("form[data-invoke]").forEach(function (form) {
    const result = document.getElementById("invoke-result");
    const output = document.getElementById("invoke-output");
    const download = document.getElementById("invoke-download");
    const jobLink = document.getElementById("invoke-job");
    form.addEventListener("submit", async function (event) {
      if (!event.submitter || !event.submitter.hasAttribute("data-sync")) return;
      event.preventDefault();
      const button = event.submitter;
      const file = form.querySelector('input[type="file"]').files[0];
      const body = file || new Blob([form.querySelector("textarea").value]);
      button.disabled = true;
      document.getElementById("invoke-messages").replaceChildren();
      result.hidden = true;
      const label = button.textContent;
      button.textContent = "Running…";
      try {
        const response = await fetch("/run/" + encodeURIComponent(form.dataset.invoke), {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf, "Content-Type": BINARY, Accept: BINARY },
          body: body,
        });
        const jobId = response.headers.get("X-Oscar-Job-Id");
        if (jobLink) {
          jobLink.hidden = !jobId;
          if (jobId) jobLink.href = window.location.pathname + "/jobs/" + encodeURIComponent(jobId);
        }
        if (!response.ok) {
          let reason;
          if (response.status === 404 && !jobId) {
            reason = "Synchronous invocation is not available on this server: " + await problem(response);
          } else {
            const text = await response.text();
            let detail = text;
            let tail = "";
            try { const parsed = JSON.parse(text); detail = parsed.detail || text; tail = parsed.log_tail || ""; }
            catch (_) { /* plain text */ }
            reason = "The run failed: " + detail + " (HTTP " + response.status + ")";
            if (tail) { output.textContent = tail; result.hidden = false; download.hidden = true; }
          }
          showMessage(reason, "error", "invoke-messages");
          return;
        }
        const answer = new Uint8Array(await response.arrayBuffer());
        let text;
        try { text = new TextDecoder("utf-8", { fatal: true }).decode(answer); }
        catch (_) { text = "(" + answer.length + " bytes of binary output: download them)"; }
        output.textContent = text;
        if (download.href) URL.revokeObjectURL(download.href);
        download.href = URL.createObjectURL(new Blob([answer], { type: BINARY }));
        download.hidden = false;
        result.hidden = false;
        showMessage("The run finished.", "notice", "invoke-messages");
      } catch (error) {
        showMessage("The run could not reach the server: " + error.message, "error", "invoke-messages");
      } finally {
        button.disabled = false;
        button.textContent = label;
      }
    });
  });

  bind(document);
})();
