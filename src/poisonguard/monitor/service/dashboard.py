"""The dashboard: one self-contained page (inline CSS, JS and SVG; no CDN) that reads the JSON endpoints.

It draws, per model, the PSI of every feature batch by batch (with the 0.1 and 0.25 lines; drifted batches in
red), trigger hits per batch, accuracy once labels arrive, and the latest alerts. It refreshes every 15 seconds.
When reads are protected it asks for the token and keeps it in the browser's session storage.
"""

DASHBOARD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>poisonguard monitor</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg:#1d2430; --muted:#6b7380; --line:#d9dde3; --bg:#f6f7f9; --warn:#c77700; --crit:#c62828; --ok:#2e7d32; --accent:#2f5fb3; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:16px; align-items:center; padding:12px 20px; background:#fff; border-bottom:1px solid var(--line); }
  header h1 { font-size:17px; margin:0; }
  header .status { margin-left:auto; color:var(--muted); font-size:12px; }
  main { padding:16px 20px; max-width:1400px; }
  section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 16px; margin-bottom:16px; }
  section h2 { font-size:15px; margin:0 0 10px; }
  .cards { display:flex; gap:12px; flex-wrap:wrap; }
  .card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width:140px; }
  .card b { display:block; font-size:20px; }
  .card span { color:var(--muted); font-size:12px; }
  .grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(320px, 1fr)); gap:12px; }
  .chart-box h3 { font-size:13px; margin:0 0 4px; font-weight:600; }
  svg.chart { width:100%; height:150px; background:#fbfcfd; border:1px solid var(--line); border-radius:4px; }
  svg text { font-size:10px; fill:var(--muted); }
  table { border-collapse:collapse; width:100%; font-size:13px; }
  th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--muted); font-weight:600; }
  .critical { color:var(--crit); font-weight:600; }
  .warning { color:var(--warn); font-weight:600; }
  .empty { color:var(--muted); }
  #token-box { display:none; }
  select, input, button { font:inherit; padding:3px 6px; }
</style>
</head>
<body>
<header>
  <h1>poisonguard monitor</h1>
  <label>model <select id="model"></select></label>
  <span id="token-box"><input id="token" type="password" placeholder="token" size="24"> <button id="token-save">use token</button></span>
  <span class="status" id="status">loading</span>
</header>
<main>
  <div class="cards" id="cards"></div>
  <section><h2>Drift per feature (PSI per batch; dashed: 0.1 and 0.25; red: drift alert)</h2><div class="grid" id="features"></div></section>
  <section><h2>Trigger hits per batch (rows carrying a discovered trigger, and counterfactual flips)</h2><div class="grid" id="triggers"></div></section>
  <section><h2>Accuracy on delayed labels</h2><div class="grid" id="accuracy"></div></section>
  <section><h2>Alerts (latest 100)</h2><div id="alerts"></div></section>
</main>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const W = 320, H = 150, PAD = {l: 34, r: 8, t: 8, b: 18};
let current = null;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
function headers() {
  const t = sessionStorage.getItem("pg-token");
  return t ? {"Authorization": "Bearer " + t} : {};
}
async function getJSON(url) {
  const r = await fetch(url, {headers: headers()});
  if (r.status === 401 || r.status === 403) {
    document.getElementById("token-box").style.display = "inline";
    throw new Error("reads need a token");
  }
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}
function fmt(x, d) { return (x === null || x === undefined) ? "-" : Number(x).toFixed(d); }

function chart(values, opts) {
  // values: [{x, y, bad}] ; opts: {ymax, lines: [..], bars: bool, color}
  const s = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img"});
  const n = Math.max(values.length, 1);
  const ymax = Math.max(opts.ymax || 0, ...values.map(v => v.y || 0)) || 1;
  const x = i => PAD.l + (n === 1 ? (W - PAD.l - PAD.r) / 2 : i * (W - PAD.l - PAD.r) / (n - 1));
  const y = v => H - PAD.b - (v / ymax) * (H - PAD.t - PAD.b);
  s.appendChild(svgEl("line", {x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, stroke: "#c5cad3"}));
  s.appendChild(svgEl("line", {x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, stroke: "#c5cad3"}));
  for (const t of [0, ymax / 2, ymax]) {
    const lab = svgEl("text", {x: PAD.l - 4, y: y(t) + 3, "text-anchor": "end"});
    lab.textContent = opts.pct ? Math.round(t * 100) + "%" : (ymax < 1 ? t.toFixed(2) : t.toFixed(t >= 10 ? 0 : 1));
    s.appendChild(lab);
  }
  for (const [v, color] of (opts.lines || [])) {
    if (v <= ymax) s.appendChild(svgEl("line", {x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), stroke: color, "stroke-dasharray": "4 3"}));
  }
  const first = svgEl("text", {x: PAD.l, y: H - 4}); first.textContent = values.length ? values[0].label : "no batches";
  s.appendChild(first);
  if (values.length > 1) {
    const last = svgEl("text", {x: W - PAD.r, y: H - 4, "text-anchor": "end"}); last.textContent = values[values.length - 1].label;
    s.appendChild(last);
  }
  if (opts.bars) {
    const bw = Math.max(1, (W - PAD.l - PAD.r) / n - 1);
    values.forEach((v, i) => {
      const h = (H - PAD.b) - y(v.y || 0);
      const r = svgEl("rect", {x: PAD.l + i * (W - PAD.l - PAD.r) / n, y: y(v.y || 0), width: bw, height: Math.max(h, 0), fill: v.bad ? "#c62828" : "#2f5fb3"});
      const tip = svgEl("title", {}); tip.textContent = `batch ${v.label}: ${v.y}`; r.appendChild(tip);
      s.appendChild(r);
    });
    return s;
  }
  const pts = values.filter(v => v.y !== null && v.y !== undefined).map((v, i) => [x(values.indexOf(v)), y(v.y)]);
  if (pts.length) s.appendChild(svgEl("polyline", {points: pts.map(p => p.join(",")).join(" "), fill: "none", stroke: opts.color || "#2f5fb3", "stroke-width": 1.5}));
  values.forEach((v, i) => {
    if (v.y === null || v.y === undefined) return;
    const c = svgEl("circle", {cx: x(i), cy: y(v.y), r: v.bad ? 3.5 : 2, fill: v.bad ? "#c62828" : (opts.color || "#2f5fb3")});
    const tip = svgEl("title", {}); tip.textContent = `batch ${v.label}: ${fmt(v.y, 3)}`; c.appendChild(tip);
    s.appendChild(c);
  });
  return s;
}

function card(value, label) {
  const c = el("div", {class: "card"});
  c.appendChild(el("b", {}, String(value)));
  c.appendChild(el("span", {}, label));
  return c;
}

function render(model, info, reports, alerts) {
  const cards = document.getElementById("cards");
  cards.replaceChildren(
    card(info.batches, "batches"), card(info.rows, "rows"),
    card(alerts.filter(a => a.severity === "critical").length, "critical alerts (latest 100)"),
    card(reports.reduce((s, r) => s + r.trigger_hits, 0), "trigger hits (shown batches)"),
    card(Object.keys(info.columns).length, "monitored columns"));
  const feats = document.getElementById("features");
  feats.replaceChildren();
  const names = Object.keys(info.columns);
  const series = names.map(f => [f, reports.map(r => ({label: r.batch_id, y: r.features[f] ? r.features[f].psi : null, bad: r.features[f] && r.features[f].drifted}))]);
  if (reports.some(r => r.prediction)) {
    series.push(["prediction", reports.map(r => ({label: r.batch_id, y: r.prediction ? r.prediction.psi : null, bad: r.prediction && r.prediction.drifted}))]);
  }
  for (const [f, vals] of series) {
    const box = el("div", {class: "chart-box", "data-feature": f});
    box.appendChild(el("h3", {}, f + (f === "prediction" ? "" : " (" + info.columns[f] + ")")));
    box.appendChild(chart(vals, {ymax: 0.3, lines: [[0.1, "#c77700"], [0.25, "#c62828"]]}));
    feats.appendChild(box);
  }
  const trig = document.getElementById("triggers");
  trig.replaceChildren(chart(reports.map(r => ({label: r.batch_id, y: r.trigger_hits, bad: r.trigger_hits > 0})), {bars: true, ymax: 1}));
  if (!info.triggers.length) trig.appendChild(el("p", {class: "empty"}, "No discovered triggers registered with the reference (POST a reference with \\"triggers\\")."));
  const acc = document.getElementById("accuracy");
  const withAcc = reports.filter(r => r.accuracy !== null && r.accuracy !== undefined);
  acc.replaceChildren(withAcc.length
    ? chart(withAcc.map(r => ({label: r.batch_id, y: r.accuracy})), {ymax: 1, pct: true, color: "#2e7d32",
        lines: info.reference_accuracy === null ? [] : [[info.reference_accuracy, "#6b7380"]]})
    : el("p", {class: "empty"}, "No labels yet (POST /v1/models/" + model + "/labels)."));
  const box = document.getElementById("alerts");
  if (!alerts.length) { box.replaceChildren(el("p", {class: "empty"}, "No alerts.")); return; }
  const t = el("table", {id: "alert-table"});
  const head = el("tr"); for (const h of ["time", "batch", "severity", "kind", "subject", "message"]) head.appendChild(el("th", {}, h));
  t.appendChild(head);
  for (const a of alerts) {
    const tr = el("tr");
    tr.appendChild(el("td", {}, new Date(a.created_at * 1000).toISOString().replace("T", " ").slice(0, 19)));
    tr.appendChild(el("td", {}, a.batch_id));
    tr.appendChild(el("td", {class: a.severity}, a.severity));
    tr.appendChild(el("td", {}, a.kind));
    tr.appendChild(el("td", {}, a.subject));
    tr.appendChild(el("td", {}, a.message));
    t.appendChild(tr);
  }
  box.replaceChildren(t);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const {models} = await getJSON("/v1/models");
    const sel = document.getElementById("model");
    const names = models.map(m => m.name);
    if (sel.options.length !== names.length || names.some((n, i) => sel.options[i].value !== n)) {
      sel.replaceChildren(...names.map(n => el("option", {value: n}, n)));
    }
    if (!names.length) { status.textContent = "no models registered yet"; return; }
    current = names.includes(current) ? current : names[0];
    sel.value = current;
    const base = "/v1/models/" + encodeURIComponent(current);
    const [info, rep, al] = await Promise.all([getJSON(base), getJSON(base + "/reports?limit=200"), getJSON(base + "/alerts?limit=100")]);
    render(current, info, rep.reports, al.alerts);
    document.body.dataset.ready = "1";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = String(e.message || e);
  }
}
document.getElementById("model").addEventListener("change", e => { current = e.target.value; refresh(); });
document.getElementById("token-save").addEventListener("click", () => {
  sessionStorage.setItem("pg-token", document.getElementById("token").value);
  document.getElementById("token-box").style.display = "none";
  refresh();
});
refresh();
setInterval(refresh, 15000);
</script>
</body>
</html>
"""
