// The modelport dashboard: plain JavaScript and SVG, no build step, no third-party code.
// Reads /ui/api/models (models, versions, aliases, request charts) and, for models that log
// predictions, /v2/models/{name}/drift and /quality. Refreshes itself every few seconds.
"use strict";

const REFRESH_MS = 5000;
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

// A line chart of one or two series over time; `lines` is [{values, cls}]. Each point is
// also a dot, so a single point (or one between gaps) is visible.
function lineChart(name, title, times, lines, unit) {
  const box = el("div", { class: "chart", "data-chart": name });
  const values = lines[0].values;
  const last = values.length ? values[values.length - 1] : null;
  box.append(el("h3", {}, title, el("span", { class: "value" }, last == null ? "" : fmt(last) + unit)));
  const all = lines.flatMap((l) => l.values).filter((v) => v != null);
  if (!all.length) {
    box.append(el("div", { class: "empty" }, "collecting data…"));
    return box;
  }
  const top = Math.max(1e-9, ...all) * 1.1;
  box.dataset.max = String(Math.max(...all));
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => (t1 > t0 ? ((t - t0) / (t1 - t0)) * 296 + 2 : 150);
  const y = (v) => 88 - (v / top) * 84;
  const chart = svg("svg", { viewBox: "0 0 300 90", preserveAspectRatio: "none" });
  for (const line of lines) {
    let d = "";
    line.values.forEach((v, i) => {
      if (v == null) { d += " "; return; }
      d += (d.endsWith(" ") || !d ? " M" : " L") + x(times[i]).toFixed(1) + " " + y(v).toFixed(1);
      chart.append(svg("circle", { cx: x(times[i]).toFixed(1), cy: y(v).toFixed(1), r: 1.8, class: "dot " + line.cls }));
    });
    chart.append(svg("path", { d: d.trim(), class: "line " + line.cls }));
  }
  box.append(chart);
  return box;
}

// Reference and live proportions per bin, drawn over each other.
function featureCard(f) {
  const card = el("div", {
    class: "feature" + (f.drifted ? " drifted" : ""),
    "data-feature": f.feature,
    "data-drifted": String(f.drifted),
  });
  card.append(el("h4", {}, f.feature + " ", f.drifted ? el("span", { class: "badge" }, "drift") : null));
  card.append(el("div", { class: "stats" },
    `${f.test === "ks" ? "KS" : "χ²"} p=${f.p_value == null ? "–" : f.p_value.toExponential(1)} · PSI ${fmt(f.psi, 3)} · ${f.n_live} rows`));
  const n = f.bins.length;
  const top = Math.max(1e-9, ...f.reference, ...f.live);
  const chart = svg("svg", { viewBox: "0 0 300 90", preserveAspectRatio: "none", class: "bins" });
  const w = 300 / n;
  for (let i = 0; i < n; i++) {
    for (const [values, cls, pad] of [[f.reference, "ref", 0.1], [f.live, "live", 0.3]]) {
      const h = (values[i] / top) * 84;
      const rect = svg("rect", {
        x: (i * w + w * pad).toFixed(1), y: (88 - h).toFixed(1),
        width: (w * (1 - 2 * pad)).toFixed(1), height: h.toFixed(1), class: "bar " + cls,
      });
      const tip = svg("title", {});
      tip.textContent = `${f.bins[i]}: reference ${fmt(f.reference[i] * 100, 1)}%, live ${fmt(f.live[i] * 100, 1)}%`;
      rect.append(tip);
      chart.append(rect);
    }
  }
  card.append(chart);
  return card;
}

function driftSection(report) {
  const box = el("div", { class: "drift" }, el("h3", {}, "Data drift (last hour) "));
  box.append(el("span", { class: "legend" }, "grey: training reference · blue: live inputs"));
  if (!report.enough_data) {
    box.append(el("div", { class: "empty" }, report.reason || "not enough logged rows yet"));
    return box;
  }
  const list = el("div", { class: "features" });
  for (const f of report.features) list.append(featureCard(f)); // drifting first, by the API
  box.append(list);
  return box;
}

function qualitySection(report) {
  const box = el("div", { class: "quality", "data-task": report.task || "" });
  box.append(el("h3", {}, "Live quality from posted labels"));
  if (!report.n_labelled) {
    box.append(el("div", { class: "empty" }, "no labels posted yet (POST /v2/models/{name}/feedback)"));
    return box;
  }
  const metric = report.task === "regression" ? "rmse" : "accuracy";
  const summary = Object.entries(report.versions)
    .map(([v, s]) => `v${v}: ${metric} ${fmt(s[metric], 3)} (${s.n} labels)`).join(" · ");
  box.append(el("div", { class: "meta" }, summary));
  const series = report.series;
  const times = series.map((p) => Date.parse(p.start) / 1000);
  box.append(lineChart("quality", metric + " over time", times, [{ values: series.map((p) => p[metric]), cls: "" }], ""));
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
    meta.append(el("span", { "data-field": "versions" }, "versions: " + model.versions.map((v) => v.version + " (" + v.status + ")").join(", ")));
  }
  if (model.aliases) {
    const aliases = Object.entries(model.aliases).map(([a, v]) => a + " → " + v).join(", ");
    meta.append(el("span", { "data-field": "aliases" }, "aliases: " + (aliases || "none")));
  }
  section.append(meta);
  const s = model.series;
  const charts = el("div", { class: "charts" },
    lineChart("rate", "requests / s", s.t, [{ values: s.rate, cls: "" }], ""),
    lineChart("errors", "error rate", s.t, [{ values: s.error_rate.map((v) => v * 100), cls: "" }], " %"),
    lineChart("latency", "latency p50 / p99 (ms)", s.t, [{ values: s.p50, cls: "p50" }, { values: s.p99, cls: "p99" }], " ms"));
  section.append(charts);
  if (model.sample_rate > 0 && model.state === "ready") {
    const name = encodeURIComponent(model.name);
    const [drift, quality] = await Promise.all([
      api(`/v2/models/${name}/drift?window=1h`), api(`/v2/models/${name}/quality?window=1h`),
    ]);
    section.append(driftSection(drift), qualitySection(quality));
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
