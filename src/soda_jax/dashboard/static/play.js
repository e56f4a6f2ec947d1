// soda dashboard /play: show the inputs of the chosen task, fill its sampling defaults (prompts.TASK_DEFAULTS),
// submit the form, poll the job until it is done and show its result.
"use strict";
(() => {
  const form = document.getElementById("play-form");
  const defaults = JSON.parse(form.dataset.defaults);
  const fields = JSON.parse(form.dataset.fields);
  const errorBox = document.getElementById("play-error");
  const statusBox = document.getElementById("job-status");
  const resultBox = document.getElementById("play-result");
  const SAMPLING = ["temperature", "top_p", "top_k", "max_new_tokens"];
  const POLL_MS = 500;

  const task = () => form.querySelector("input[name=task]:checked").value;
  const defaultsKey = () => (task() === "asr" && Number(form.elements.shots.value) > 0 ? "asr_nshot" : task());

  function showTask() {
    const t = task();
    form.querySelectorAll("[data-field]").forEach(el => { el.hidden = !fields[t].includes(el.dataset.field); });
    form.querySelectorAll("[data-task]").forEach(el => { el.hidden = el.dataset.task !== t; });
    fillDefaults();
  }
  function fillDefaults() {
    const key = defaultsKey();
    for (const name of SAMPLING) form.elements[name].value = defaults[key][name];
    document.getElementById("defaults-note").textContent = `(defaults of ${key})`;
  }
  form.querySelectorAll("input[name=task]").forEach(el => el.addEventListener("change", showTask));
  form.elements.shots.addEventListener("change", fillDefaults);

  function showError(message) {
    errorBox.textContent = `⚠ ${message}`;
    errorBox.hidden = false;
  }
  function elapsed(job) {
    return typeof job.elapsed_s === "number" ? ` (${job.elapsed_s.toFixed(1)} s)` : "";
  }
  function showStatus(job) {
    statusBox.hidden = false;
    statusBox.dataset.state = job.state;
    statusBox.textContent = job.state === "queued"
      ? `job ${job.id}: queued, ${job.ahead} ahead`
      : `job ${job.id}: ${job.state}${elapsed(job)}`;
  }
  function showResult(row) {
    const card = document.createElement("div");
    card.className = "play-result-card";
    card.dataset.id = row.id;
    if (row.wav) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = "/raw/" + encodeURI(row.wav);
      card.append(audio, ` ${(row.seconds || 0).toFixed(2)} s, ${row.finish_reason}`);
    } else if (row.transcript !== null && row.transcript !== undefined) {
      const text = document.createElement("span");
      text.className = "transcript";
      text.textContent = row.transcript || "(empty transcript)";
      card.append(text, ` (${row.finish_reason})`);
    } else {
      card.append(`no whole audio frame generated (${row.finish_reason})`);
    }
    const link = document.createElement("a");
    link.href = "/files/" + encodeURI(row.json);
    link.textContent = "json";
    card.append(" ", link);
    resultBox.replaceChildren(card);
  }
  async function refreshResults() {
    const r = await fetch("/play/results", {cache: "no-store"});
    if (r.ok) document.getElementById("play-results").innerHTML = await r.text();
  }
  async function poll(id) {
    for (;;) {
      const r = await fetch(`/api/play/job/${encodeURIComponent(id)}`, {cache: "no-store"});
      const job = await r.json();
      if (!r.ok) throw new Error(job.error || `HTTP ${r.status}`);
      showStatus(job);
      if (job.state === "done") { showResult(job.result); await refreshResults(); return; }
      if (job.state === "failed") { showError(job.error); return; }
      await new Promise(resolve => setTimeout(resolve, POLL_MS));
    }
  }

  form.addEventListener("submit", async event => {
    event.preventDefault();
    errorBox.hidden = true;
    resultBox.replaceChildren();
    const data = new FormData();
    const t = task();
    data.append("task", t);
    for (const name of ["checkpoint", "seed", ...SAMPLING]) data.append(name, form.elements[name].value);
    for (const name of fields[t]) {
      const el = form.elements[name];
      if (el.type === "file") { if (el.files.length) data.append(name, el.files[0]); } else data.append(name, el.value);
    }
    if (t === "asr") { data.append("shots", form.elements.shots.value); data.append("shot_set", form.elements.shot_set.value); }
    if (t === "continuation") data.append("prompt_seconds", form.elements.prompt_seconds.value);
    const button = document.getElementById("generate");
    button.disabled = true;
    try {
      const r = await fetch("/api/play", {method: "POST", body: data});
      const answer = await r.json();
      if (!r.ok) { showError(answer.error || `HTTP ${r.status}`); return; }
      showStatus(answer);
      await poll(answer.id);
    } catch (e) {
      showError(String(e));
    } finally {
      button.disabled = false;
    }
  });
  showTask();
})();
