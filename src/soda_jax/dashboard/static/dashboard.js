// soda dashboard: live updates by polling the JSON API (no page reloads) and plotly charts.
"use strict";
const soda = (() => {
  const pollMs = Number(document.body.dataset.pollMs || 5000);
  const STATUSES = ["WAITING", "RUNNING", "SUCCESS", "FAILED", "DEP_FAILED", "UNKNOWN"];
  const TITLES = {loss: "training loss", validation_loss: "validation loss", tokens_per_second: "tokens / s",
                  lr: "learning rate", grad_norm: "gradient norm"};

  async function getJSON(url) {
    const r = await fetch(url, {cache: "no-store"});
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }
  function every(fn) {
    const run = () => fn().catch(e => console.warn(e));
    run();
    return setInterval(run, pollMs);
  }
  function badge(status) {
    const s = document.createElement("span");
    s.className = `badge status-${status}`; s.dataset.status = status;
    s.textContent = status.replace("_", "-").toLowerCase();
    return s;
  }
  function duration(s) {
    if (typeof s !== "number") return "";
    return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
  }
  function fillCounts(el, counts) {
    el.replaceChildren();
    for (const k of Object.keys(counts).sort()) { el.append(badge(k), `\u00a0${counts[k]} `); }
  }

  function experimentsPage() {
    const filter = document.getElementById("filter");
    const rows = () => document.querySelectorAll("#experiments tr[data-key]");
    filter.addEventListener("input", () => {
      const q = filter.value.toLowerCase();
      rows().forEach(r => { r.hidden = q && !r.dataset.search.includes(q); });
    });
    setInterval(async () => {
      const list = await getJSON("/api/experiments");
      for (const e of list) {
        const row = document.querySelector(`#experiments tr[data-key="${CSS.escape(e.key)}"]`);
        if (!row) continue;
        fillCounts(row.querySelector(".counts"), e.counts);
        row.querySelector(".wall").textContent = duration(e.wall_seconds);
      }
    }, pollMs);
  }

  function experimentPage(key) {
    setInterval(async () => {
      const e = await getJSON(`/api/experiment/${encodeURIComponent(key)}`);
      fillCounts(document.getElementById("counts"), e.counts);
      document.getElementById("wall").textContent = duration(e.wall_seconds);
      e.steps.forEach((s, i) => {
        const node = document.getElementById(`step-${i}`);
        if (node) {
          STATUSES.forEach(x => node.classList.remove(`status-${x}`));
          node.classList.add(`status-${s.status}`);
          const texts = node.querySelectorAll("text");
          if (texts.length > 1) texts[texts.length - 1].textContent = s.status.replace("_", "-").toLowerCase();
        }
        const row = document.getElementById(`row-${i}`);
        if (!row) return;
        row.querySelector(".status").replaceChildren(badge(s.status));
        row.querySelector(".duration").textContent = duration(s.duration_s);
        row.querySelector(".lease").textContent = s.status === "RUNNING" && s.lease_owner
          ? `${s.lease_owner}, ${duration(s.heartbeat_age_s)} ago${s.lease_stale ? " (stale)" : ""}` : "";
      });
    }, pollMs);
  }

  const layout = (title, xTitle, logY) => ({
    title: {text: title, font: {size: 14}}, margin: {l: 55, r: 15, t: 35, b: 40},
    xaxis: {title: {text: xTitle}}, yaxis: {type: logY ? "log" : "linear"}, showlegend: false,
  });

  function drawCurves(data) {
    document.getElementById("metrics-note").textContent =
      `${data.rows.toLocaleString()} rows in metrics.jsonl, ${data.kept.toLocaleString()} plotted` +
      (data.skipped ? `; ${data.skipped} unreadable line(s) skipped: ${data.errors.join("; ")}` : "");
    document.querySelectorAll(".chart[data-metric]").forEach(div => {
      const metric = div.dataset.metric;
      const ys = data.series[metric];
      if (!ys) {
        if (div.classList.contains("js-plotly-plot")) Plotly.purge(div);
        div.classList.add("empty"); div.textContent = `no ${TITLES[metric] || metric} logged yet`; div.dataset.points = "0";
        return;
      }
      if (div.classList.contains("empty")) { div.classList.remove("empty"); div.textContent = ""; }
      const xs = [], vs = [];
      ys.forEach((y, i) => { if (y !== null) { xs.push(data.step[i]); vs.push(y); } });
      div.dataset.points = String(vs.length);
      const logY = metric === "loss" || metric === "validation_loss";
      const look = layout(TITLES[metric] || metric, "step", logY);
      const lo = Math.min(...vs), hi = Math.max(...vs);
      if (!logY && lo === hi) {  // a constant (say a flat learning rate): centre it instead of plotly's +-1
        const pad = Math.abs(lo) * 0.1 || 1;
        look.yaxis.range = [lo - pad, hi + pad];
      }
      Plotly.react(div, [{x: xs, y: vs, mode: vs.length > 50 ? "lines" : "lines+markers", name: metric}],
                   look, {displaylogo: false, responsive: true});
    });
  }

  function stepPage(rel, hasMetrics) {
    if (hasMetrics) every(async () => drawCurves(await getJSON(`/api/metrics/${rel}`)));
    setInterval(async () => {
      const s = await getJSON(`/api/step/${rel}`);
      document.getElementById("status").replaceChildren(badge(s.status));
      document.getElementById("lease").textContent = s.status === "RUNNING" && s.lease_owner
        ? `running on ${s.lease_owner}, last heartbeat ${duration(s.heartbeat_age_s)} ago${s.lease_stale ? " (stale)" : ""}` : "";
    }, pollMs);
    const scaling = document.getElementById("scaling-data");
    if (scaling) drawScaling(JSON.parse(scaling.textContent));
  }

  function drawScaling(fits) {
    const runs = fits.runs || [];
    const budgets = ((fits.compute_optimal || {}).budgets) || [];
    const groups = {};
    runs.forEach(r => {
      const b = budgets.reduce((best, x) => best === null || Math.abs(Math.log(x.compute / r.train_flops)) <
        Math.abs(Math.log(best.compute / r.train_flops)) ? x : best, null);
      const key = b ? b.compute.toExponential(1) : r.train_flops.toExponential(1);
      (groups[key] = groups[key] || []).push(r);
    });
    const traces = Object.entries(groups).map(([key, rs]) => ({
      x: rs.map(r => r.params), y: rs.map(r => r.loss), text: rs.map(r => r.name), mode: "markers",
      name: `C = ${key}`, type: "scatter", legendgroup: key,
    }));
    budgets.forEach(b => {
      const p = b.params_parabola; if (!p) return;
      const xs = []; for (let i = 0; i <= 40; i++) xs.push(p.x_min - 1 + i / 20);
      traces.push({x: xs.map(x => 10 ** x), y: xs.map(x => p.curvature * (x - p.x_min) ** 2 + p.loss_min),
                   mode: "lines", line: {dash: "dot"}, name: `fit C = ${b.compute.toExponential(1)}`, legendgroup: b.compute.toExponential(1)});
    });
    Plotly.react("isoflop", traces, {title: {text: "isoFLOP curves"}, xaxis: {type: "log", title: {text: "parameters N"}},
      yaxis: {title: {text: "validation loss"}}}, {displaylogo: false});
    const co = fits.compute_optimal || {};
    const el = document.getElementById("compute-optimal");
    if (co.error || !budgets.length) { el.textContent = co.error ? `compute-optimal fit: ${co.error}` : "no budgets fitted"; return; }
    const cs = budgets.map(b => b.compute);
    const lo = Math.min(...cs) / 3, hi = Math.max(...cs) * 3;
    const grid = []; for (let i = 0; i <= 30; i++) grid.push(lo * (hi / lo) ** (i / 30));
    const law = (l) => grid.map(c => l.coefficient * c ** l.exponent);
    Plotly.react(el, [
      {x: cs, y: budgets.map(b => b.params_opt), mode: "markers", name: "N*"},
      {x: cs, y: budgets.map(b => b.tokens_opt), mode: "markers", name: "D*"},
      ...(co.params_law ? [{x: grid, y: law(co.params_law), mode: "lines", name: `N* ∝ C^${co.params_law.exponent.toFixed(2)}`}] : []),
      ...(co.tokens_law ? [{x: grid, y: law(co.tokens_law), mode: "lines", name: `D* ∝ C^${co.tokens_law.exponent.toFixed(2)}`}] : []),
    ], {title: {text: "compute-optimal N* and D*"}, xaxis: {type: "log", title: {text: "training FLOPs C"}},
        yaxis: {type: "log"}}, {displaylogo: false});
  }

  function comparePage(runs) {
    const axis = document.getElementById("x-axis");
    const params = new URLSearchParams(location.search);
    axis.value = params.get("x") || "step";
    let last = [];
    const draw = () => document.querySelectorAll(".chart[data-metric]").forEach(div => {
      const metric = div.dataset.metric, x = axis.value;
      const traces = last.map(run => {
        const xs = run[x] || run.step, ys = run.series[metric] || [];
        const pts = ys.map((y, i) => [xs[i], y]).filter(([a, b]) => a !== null && a !== undefined && b !== null);
        return {x: pts.map(p => p[0]), y: pts.map(p => p[1]), mode: "lines", name: run.name};
      });
      Plotly.react(div, traces, {...layout(TITLES[metric] || metric, {step: "step", tokens: "tokens", flops: "training FLOPs"}[x],
        metric.includes("loss")), showlegend: true, legend: {orientation: "h"}}, {displaylogo: false});
    });
    axis.addEventListener("change", draw);
    if (!runs.length) return;
    const query = runs.map(r => `run=${encodeURIComponent(r)}`).join("&");
    every(async () => { last = await getJSON(`/api/compare?${query}`); draw(); });
  }

  return {experimentsPage, experimentPage, stepPage, comparePage};
})();
