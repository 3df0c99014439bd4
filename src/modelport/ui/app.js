// The modelport dashboard: plain JavaScript and SVG, no build step, no third-party code.
// Reads /ui/api/models (models, versions, aliases, request charts) and, for models that log
// predictions, /v2/models/{name}/drift and /quality. Refreshes itself every few seconds.
"use strict";

const REFRESH_MS = 5000;
const QUALITY_BUCKETS = 12;
const SVG = "http://www.w3.org/2000/svg";
let apiKey = sessionStorage.getItem("modelport-key") || "";

async function api(path) {
  const headers = apiKey ? { Authorization: "Bearer " + apiKey } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401 || response.status === 403) {
    const error = new Error(response.status === 401 ? "an API key is needed" : "this key may not read");
    error.status = response.status;
    throw error;
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fmt(value, digits) {
  if (value == null || Number.isNaN(value)) return "–";
  return Number(value).toFixed(digits == null ? 2 : digits);
}

// A number short enough for a tick or a legend: 3 significant digits, no exponent above 1e-3.
function short(value) {
  if (value == null || Number.isNaN(value)) return "–";
  const v = Number(value);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(1);
  return String(Math.abs(v) >= 1000 ? Math.round(v) : Number(v.toPrecision(3)));
}

function svgText(x, y, text, cls, anchor) {
  const node = svg("text", { x: x.toFixed(1), y: y.toFixed(1), class: cls, "text-anchor": anchor || "start" });
  node.textContent = text;
  return node;
}

function withTitle(node, text) {
  const tip = svg("title", {});
  tip.textContent = text;
  node.append(tip);
  return node;
}

// 0 and a few round values up to at least `max` (1, 2, 2.5 or 5 times a power of ten apart).
function valueTicks(max, count) {
  const top = max > 0 ? max : 1;
  const raw = top / (count || 4);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw * (1 - 1e-9)) * magnitude;
  const ticks = [];
  for (let i = 0; i * step < top + step * 0.999; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

// A clock time in the browser's time zone, 24-hour, with seconds when the axis needs them.
function clock(t, seconds) {
  const d = new Date(t * 1000);
  const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  return seconds ? hm + ":" + pad2(d.getSeconds()) : hm;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];

// Round clock times inside [t0, t1], at most `most` of them.
function timeTicks(t0, t1, most) {
  const span = t1 - t0;
  if (!(span > 0)) return { ticks: [t0], seconds: true };
  const step = TIME_STEPS.find((s) => span / s <= most) || TIME_STEPS[TIME_STEPS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  if (!ticks.length) ticks.push(t0);
  return { ticks, seconds: step < 60 || ticks.some((t) => t % 60 !== 0) };
}

const PALETTE = ["#2d6cdf", "#d9822b", "#2f9e66", "#8e5bd0", "#c23030", "#6b7280"];

// A line chart over time: `series` is [{label, values}], one value per time (null: no data).
// Axes: clock times below, the value with its unit at the left; the latest value of each
// series at the top (with a legend when there are several). Each point is also a dot, so a
// single point (or one between gaps) is visible, and says its time and value on hover.
function lineChart(name, title, times, series, unit) {
  const box = el("div", { class: "chart", "data-chart": name });
  box.append(el("h3", {}, title));
  const all = series.flatMap((s) => s.values).filter((v) => v != null && !Number.isNaN(v));
  if (!all.length || !times.length) {
    box.append(el("div", { class: "empty" }, "collecting data…"));
    return box;
  }
  box.dataset.max = String(Math.max(...all));
  const W = 400, H = 175, L = 46, R = 26, T = 30, B = 22;
  const ticks = valueTicks(Math.max(...all));
  const top = ticks[ticks.length - 1];
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => (t1 > t0 ? L + ((t - t0) / (t1 - t0)) * (W - L - R) : (L + W - R) / 2);
  const y = (v) => H - B - (v / top) * (H - T - B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img", "aria-label": title });
  for (const v of ticks) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v).toFixed(1), y2: y(v).toFixed(1), class: v ? "grid" : "axis" }));
    chart.append(svgText(L - 5, y(v) + 3.5, short(v), "tick", "end"));
  }
  chart.append(svgText(4, 12, unit, "unit"));
  const clockTicks = timeTicks(t0, t1, 4);
  for (const t of clockTicks.ticks) {
    chart.append(svg("line", { x1: x(t).toFixed(1), x2: x(t).toFixed(1), y1: H - B, y2: H - B + 4, class: "axis" }));
    chart.append(svgText(x(t), H - 6, clock(t, clockTicks.seconds), "tick time", "middle"));
  }
  const radius = times.length > 60 ? 1.1 : 2; // an hour of points: the line, not a bead string
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    let d = "";
    let gap = true;
    s.values.forEach((v, i) => {
      if (v == null || Number.isNaN(v)) { gap = true; return; }
      const px = x(times[i]).toFixed(1), py = y(v).toFixed(1);
      d += (gap ? " M" : " L") + px + " " + py;
      gap = false;
      chart.append(withTitle(svg("circle", { cx: px, cy: py, r: radius, class: "dot", fill: color }),
        `${clock(times[i], true)}: ${s.label ? s.label + " " : ""}${short(v)} ${unit}`));
    });
    chart.append(svg("path", { d: d.trim(), class: "line", stroke: color }));
  });
  // The top row: each series' latest value (its last point with data), with its colour.
  const latest = (s) => [...s.values].reverse().find((v) => v != null && !Number.isNaN(v));
  if (series.length === 1) {
    const value = latest(series[0]);
    chart.append(svgText(W - R, 13, `latest ${short(value)} ${unit}`, "current", "end"));
  } else {
    let at = L;
    series.forEach((s, k) => {
      const color = PALETTE[k % PALETTE.length];
      const text = `${s.label} ${short(latest(s))} ${unit}`;
      const item = svg("g", { class: "legend-item" });
      item.append(svg("line", { x1: at, x2: at + 14, y1: 9, y2: 9, stroke: color, class: "swatch" }));
      item.append(svgText(at + 18, 13, text, "current"));
      chart.append(item);
      at += 30 + text.length * 6.2;
    });
  }
  box.append(chart);
  return box;
}

// Numeric bins are labelled "(lo, hi]"; categorical and discrete ones by their value.
const INTERVAL = /^\((\S+), (\S+)\]$/;

// Reference and live proportions per bin, side by side, with the bins named below.
function binChart(f) {
  const n = f.bins.length;
  const intervals = n > 0 && f.bins.every((b) => INTERVAL.test(b));
  const W = 320, L = 34, R = 10, T = 26;
  const w = (W - L - R) / Math.max(n, 1);
  const longest = Math.max(0, ...f.bins.map((b) => b.length));
  const slanted = !intervals && longest * 6 > w - 2;
  const B = slanted ? 14 + Math.min(longest, 12) * 5.2 : 20;
  const H = 120 + B;
  const ticks = valueTicks(Math.max(1e-9, ...f.reference, ...f.live) * 100, 3);
  const top = ticks[ticks.length - 1];
  const y = (p) => H - B - ((p * 100) / top) * (H - T - B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot bins", role: "img", "aria-label": f.feature });
  for (const v of ticks) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v / 100).toFixed(1), y2: y(v / 100).toFixed(1), class: v ? "grid" : "axis" }));
    chart.append(svgText(L - 4, y(v / 100) + 3.5, short(v), "tick", "end"));
  }
  chart.append(svgText(2, 12, "% of rows", "unit"));
  let at = W - R;
  for (const [label, cls] of [["live", "live"], ["reference", "ref"]]) {
    at -= label.length * 6 + 4;
    chart.append(svgText(at, 12, label, "legend-text"));
    at -= 12;
    chart.append(svg("rect", { x: at, y: 4, width: 9, height: 9, class: "bar " + cls }));
    at -= 10;
  }
  for (let i = 0; i < n; i++) {
    for (const [values, cls, pad] of [[f.reference, "ref", 0.08], [f.live, "live", 0.5]]) {
      const h = H - B - y(values[i]);
      const rect = svg("rect", {
        x: (L + i * w + w * pad).toFixed(1), y: (H - B - h).toFixed(1),
        width: (w * 0.42).toFixed(1), height: Math.max(h, 0).toFixed(1), class: "bar " + cls,
      });
      chart.append(withTitle(rect,
        `${f.bins[i]}: reference ${fmt(f.reference[i] * 100, 1)}%, live ${fmt(f.live[i] * 100, 1)}%`));
    }
  }
  if (intervals) {
    // The edges between bins, a few of them so that they do not overlap.
    const edges = f.bins.slice(0, -1).map((b) => b.match(INTERVAL)[2]);
    const every = Math.ceil(edges.length / 5);
    edges.forEach((edge, i) => {
      if (i % every) return;
      const ex = L + (i + 1) * w;
      chart.append(svg("line", { x1: ex.toFixed(1), x2: ex.toFixed(1), y1: H - B, y2: H - B + 3, class: "axis" }));
      chart.append(svgText(ex, H - 6, short(Number(edge)), "tick", "middle"));
    });
  } else {
    const keep = slanted ? 12 : Math.max(1, Math.floor((w - 2) / 6));
    f.bins.forEach((bin, i) => {
      const text = bin.length > keep ? bin.slice(0, keep - 1) + "…" : bin;
      const cx = L + (i + 0.5) * w;
      const label = slanted
        ? svgText(cx, H - B + 10, text, "tick category", "end")
        : svgText(cx, H - 6, text, "tick category", "middle");
      if (slanted) label.setAttribute("transform", `rotate(-55 ${cx.toFixed(1)} ${(H - B + 10).toFixed(1)})`);
      const group = svg("g", {});
      group.append(label);
      chart.append(text === bin ? group : withTitle(group, bin)); // the whole name on hover
    });
  }
  return chart;
}

function featureCard(f) {
  const card = el("div", {
    class: "feature" + (f.drifted ? " drifted" : ""),
    "data-feature": f.feature,
    "data-drifted": String(f.drifted),
  });
  card.append(el("h4", {}, f.feature + " ", f.drifted ? el("span", { class: "badge" }, "drift") : null));
  card.append(el("div", { class: "stats" },
    `${f.test === "ks" ? "KS" : "χ²"} p=${f.p_value == null ? "–" : f.p_value ? f.p_value.toExponential(1) : "0"} · PSI ${fmt(f.psi, 3)} · ${f.n_live} rows`));
  if (f.bins.length) card.append(binChart(f));
  return card;
}

// Which models' folded features the user opened: kept across refreshes, which redraw all.
const openFolds = new Set();

function driftSection(model, report) {
  const box = el("div", { class: "drift" }, el("h3", {}, "Data drift (last hour) "));
  if (!report.enough_data) {
    box.append(el("div", { class: "empty" }, report.reason || "not enough logged rows yet"));
    return box;
  }
  const drifting = report.features.filter((f) => f.drifted); // drifting first, by the API
  const steady = report.features.filter((f) => !f.drifted);
  const thresholds = report.thresholds || {};
  box.append(el("div", { class: "legend" },
    `${drifting.length} of ${report.features.length} features drift (p < ${thresholds.alpha} and PSI > ${thresholds.psi}) · ${report.n_live} logged rows`));
  if (drifting.length) {
    box.append(el("div", { class: "features", "data-list": "drifting" }, ...drifting.map(featureCard)));
  }
  if (steady.length) {
    const fold = el("details", { class: "fold", "data-fold": "steady", open: openFolds.has(model) },
      el("summary", {}, `${steady.length} feature${steady.length === 1 ? "" : "s"} without drift`),
      el("div", { class: "features" }, ...steady.map(featureCard)));
    fold.addEventListener("toggle", () => {
      if (fold.open) openFolds.add(model);
      else openFolds.delete(model);
    });
    box.append(fold);
  }
  return box;
}

function qualitySection(report, drift) {
  const box = el("div", { class: "quality", "data-task": report.task || "" });
  box.append(el("h3", {}, "Live quality from posted labels (last hour)"));
  // How many logged rows have a label: of the served version's, as the drift report counts them.
  const served = drift.version == null ? null : report.versions[String(drift.version)];
  const labelled = served ? served.n : report.n_labelled;
  const counts = drift.version == null
    ? `${labelled} labelled rows`
    : `version ${drift.version}: ${labelled} of ${drift.n_live} logged rows labelled`;
  box.append(el("div", { class: "meta", "data-field": "labels" }, counts +
    (report.unpaired ? ` · ${report.unpaired} requests' labels do not match their rows` : "")));
  if (!report.n_labelled) {
    box.append(el("div", { class: "empty" }, "no labels posted yet (POST /v2/models/{name}/feedback)"));
    return box;
  }
  const regression = report.task === "regression";
  const metric = regression ? "rmse" : "accuracy";
  const summary = Object.entries(report.versions)
    .map(([v, s]) => `v${v}: ${metric} ${fmt(s[metric], 3)} (${s.n} labels)`).join(" · ");
  box.append(el("div", { class: "meta" }, summary));
  // One series per version, a point per bucket of the window, drawn at the bucket's end.
  const step = report.window_seconds / QUALITY_BUCKETS;
  const end = (p) => Date.parse(p.start) / 1000 + step;
  const times = [...new Set(report.series.map(end))].sort((a, b) => a - b);
  const versions = [...new Set(report.series.map((p) => p.version))];
  const series = versions.map((v) => ({
    label: v == null ? "unversioned" : "v" + v,
    values: times.map((t) => {
      const point = report.series.find((p) => p.version === v && end(p) === t);
      if (!point || point[metric] == null) return null;
      return regression ? point[metric] : point[metric] * 100;
    }),
  }));
  const title = `${regression ? "RMSE" : "Accuracy"} per ${short(step / 60)} minutes`;
  box.append(el("div", { class: "charts" }, lineChart("quality", title, times, series, regression ? "(label units)" : "%")));
  return box;
}

async function modelSection(model) {
  const section = el("section", { class: "model", "data-model": model.name });
  const version = model.version == null ? "–" : model.version;
  section.append(el("h2", {}, model.name));
  const meta = el("div", { class: "meta" },
    el("span", {}, "state: " + model.state),
    el("span", { "data-field": "version" }, "serving version " + version),
    el("span", {}, "ref " + model.ref));
  if (model.versions) {
    const list = el("span", { "data-field": "versions" }, "versions: ");
    model.versions.forEach((v, i) => {
      const status = v.status === "verifying" ? "checking files…" : v.status;
      const item = el("span", { class: "version " + v.status, "data-version": String(v.version), "data-status": v.status },
        `${v.version} (${status})`);
      if (v.error) item.title = v.error;
      list.append(i ? ", " : "", item);
    });
    meta.append(list);
  }
  if (model.aliases) {
    const aliases = Object.entries(model.aliases).map(([a, v]) => a + " → " + v).join(", ");
    meta.append(el("span", { "data-field": "aliases" }, "aliases: " + (aliases || "none")));
  }
  section.append(meta);
  const problems = [];
  if (model.error) problems.push(model.error);
  if (model.registry_error) problems.push("registry: " + model.registry_error);
  for (const v of model.versions || []) {
    if (v.status === "corrupted") problems.push(`version ${v.version} is corrupted: ${v.error}`);
    else if (v.error) problems.push(`version ${v.version} ${v.status}: ${v.error}`);
  }
  if (problems.length) section.append(el("ul", { class: "problems" }, ...problems.map((p) => el("li", {}, p))));
  const s = model.series;
  const charts = el("div", { class: "charts" },
    lineChart("rate", "Requests per second", s.t, [{ values: s.rate }], "req/s"),
    lineChart("errors", "Error rate (responses other than 2xx)", s.t, [{ values: s.error_rate.map((v) => v * 100) }], "%"),
    lineChart("latency", "Latency", s.t, [{ label: "p50", values: s.p50 }, { label: "p99", values: s.p99 }], "ms"));
  section.append(charts);
  if (model.sample_rate > 0 && model.state === "ready") {
    const name = encodeURIComponent(model.name);
    const [drift, quality] = await Promise.all([
      api(`/v2/models/${name}/drift?window=1h`), api(`/v2/models/${name}/quality?window=1h&buckets=${QUALITY_BUCKETS}`),
    ]);
    section.append(driftSection(model.name, drift), qualitySection(quality, drift));
  } else {
    section.append(el("div", { class: "empty" }, "prediction logging is off for this model (log_sample_rate)"));
  }
  return section;
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const data = await api("/ui/api/models");
    const sections = await Promise.all(data.models.map(modelSection));
    document.getElementById("models").replaceChildren(...sections);
    document.getElementById("login").hidden = true;
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.dataset.updated = String(Date.now());
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      document.getElementById("login").hidden = false;
      document.getElementById("login-error").textContent = apiKey ? error.message : "";
      status.textContent = "API key needed";
    } else {
      status.textContent = "update failed: " + error.message;
    }
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey = document.getElementById("key").value.trim();
  sessionStorage.setItem("modelport-key", apiKey);
  refresh();
});

async function start() {
  // Ask for a key before the first call when the server needs one: no request is refused.
  const config = await (await fetch("/ui/api/config")).json();
  if (config.auth && !apiKey) {
    document.getElementById("login").hidden = false;
    document.getElementById("status").textContent = "API key needed";
  } else {
    refresh();
  }
  setInterval(() => { if (apiKey || !config.auth) refresh(); }, REFRESH_MS);
}

start();
