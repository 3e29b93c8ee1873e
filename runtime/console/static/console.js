// The pipeline server's page: plain JavaScript, no build step, no dependency.
// Every piece of data comes from this server's JSON endpoints; the API key (when the server has
// GP_API_KEYS) is entered once, kept in this tab's sessionStorage and sent as a bearer header.
"use strict";

const KEY_STORE = "grove-pipelines-api-key";
const POLL_MS = 2000;
const WINDOW_MS = 30000;   // the graph's colours and rates cover the last 30 s of polls
const SLOW_S = 1.0;
const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 170, NODE_H = 46, GAP_X = 60, GAP_Y = 22;

let listing = [];          // GET /v1/pipelines: names, stages, input schemas
let history = [];          // states read over the last WINDOW_MS, oldest first: the window's baseline
let selectedRequest = null;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function notice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const headers = Object.assign({}, (options && options.headers) || {});
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers["Authorization"] = "Bearer " + key;
  const response = await fetch(path, Object.assign({}, options || {}, { headers, cache: "no-store" }));
  if (response.status === 401) notice("This server needs an API key: enter it above.");
  return response;
}

function errorText(body, status) {
  const message = body && body.error && body.error.message;
  return "HTTP " + status + (message ? ": " + message : "");
}

// -- the graph -------------------------------------------------------------------------------
function layers(graph) {
  const depth = {};
  for (const node of graph.nodes) depth[node.name] = 0;
  // longest path from the entry; the graph is acyclic, so |nodes| rounds settle it
  for (let round = 0; round < graph.nodes.length; round++) {
    for (const [from, to] of graph.edges) depth[to] = Math.max(depth[to], depth[from] + 1);
  }
  return depth;
}

function drawGraph(graph) {
  const depth = layers(graph);
  const columns = {};
  for (const node of graph.nodes) (columns[depth[node.name]] = columns[depth[node.name]] || []).push(node);
  const place = {};
  let width = 0, height = 0;
  for (const [column, nodes] of Object.entries(columns)) {
    nodes.forEach((node, row) => {
      const x = 10 + Number(column) * (NODE_W + GAP_X), y = 10 + row * (NODE_H + GAP_Y);
      place[node.name] = { x, y };
      width = Math.max(width, x + NODE_W + 10);
      height = Math.max(height, y + NODE_H + 10);
    });
  }
  const root = svg("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, "data-pipeline": graph.name });
  root.style.maxWidth = width + "px";
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a949e" }));
  defs.appendChild(marker);
  root.appendChild(defs);
  for (const [from, to] of graph.edges) {
    const a = place[from], b = place[to];
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    root.appendChild(svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }
  for (const node of graph.nodes) {
    const { x, y } = place[node.name];
    const group = svg("g", { class: `node ${node.kind} idle`, "data-stage": node.name, "data-kind": node.kind });
    const title = node.kind === "entry" ? "the pipeline body" : node.kind === "llm" ? "LLM stage" : "Python stage";
    group.appendChild(svg("title", {}, `${node.name} (${title})`));
    group.appendChild(svg("rect", { x, y, width: NODE_W, height: NODE_H }));
    group.appendChild(svg("text", { class: "name", x: x + NODE_W / 2, y: y + 18 }, node.name));
    group.appendChild(svg("text", { class: "numbers", x: x + NODE_W / 2, y: y + 36 }, node.kind === "entry" ? "entry" : "no calls yet"));
    root.appendChild(group);
  }
  return root;
}

function health(now, before, seconds) {
  const calls = now.seconds_count - (before ? before.seconds_count : 0);
  const failed = now.failed - (before ? before.failed : 0);
  if (calls <= 0) return { health: "idle", text: `${now.seconds_count} calls, ${now.failed} failed` };
  const mean = (now.seconds_sum - (before ? before.seconds_sum : 0)) / calls;
  const rate = calls / seconds;
  const text = `${rate.toFixed(2)}/s · ${(mean * 1000).toFixed(0)} ms · ${failed} failed`;
  return { health: failed > 0 ? "failing" : mean > SLOW_S ? "slow" : "ok", text };
}

function colourStages(state, at) {
  const baseline = history.length ? history[0] : null;
  const seconds = baseline ? Math.max((at - baseline.at) / 1000, 0.001) : 1;
  for (const group of document.querySelectorAll("svg.graph g.node")) {
    const name = group.getAttribute("data-stage");
    if (group.getAttribute("data-kind") === "entry") continue;
    const now = state.stages[name];
    if (!now) continue;
    const before = baseline ? baseline.state.stages[name] : null;
    const seen = health(now, before, seconds);
    group.setAttribute("class", `node ${group.getAttribute("data-kind")} ${seen.health}`);
    group.setAttribute("data-health", seen.health);
    group.querySelector("text.numbers").textContent = seen.text;
  }
}

// -- recent requests and waterfalls ------------------------------------------------------------
function ms(seconds) { return seconds === null || seconds === undefined ? "running" : (seconds * 1000).toFixed(1) + " ms"; }

function showRequests(requests) {
  const body = $("requests").querySelector("tbody");
  body.replaceChildren();
  for (const request of requests) {
    const row = el("tr", { "data-request-id": request.request_id });
    if (request.request_id === selectedRequest) row.classList.add("selected");
    row.appendChild(el("td", {}, request.request_id));
    row.appendChild(el("td", {}, request.pipeline));
    row.appendChild(el("td", {}, new Date(request.started_at * 1000).toLocaleTimeString()));
    const status = el("td", {}, request.status === null ? "running" : request.status);
    if (request.status !== null && request.status !== "200") status.classList.add("bad");
    row.appendChild(status);
    row.appendChild(el("td", {}, ms(request.duration_s)));
    row.appendChild(el("td", {}, String(request.calls)));
    row.addEventListener("click", () => openWaterfall(request.request_id));
    body.appendChild(row);
  }
}

function waterfallRow(label, start, duration, total, kind, title) {
  const row = el("div", { class: "wf-row" });
  row.appendChild(el("div", { class: "wf-label", title }, label));
  const track = el("div", { class: "wf-track" });
  const bar = el("div", { class: "wf-bar " + kind, title });
  bar.style.left = (100 * start / total).toFixed(3) + "%";
  bar.style.width = (100 * duration / total).toFixed(3) + "%";
  track.appendChild(bar);
  row.appendChild(track);
  row.appendChild(el("div", { class: "wf-ms" }, ms(duration)));
  return row;
}

async function openWaterfall(requestId) {
  selectedRequest = requestId;
  for (const row of $("requests").querySelectorAll("tbody tr")) {
    row.classList.toggle("selected", row.getAttribute("data-request-id") === requestId);
  }
  const response = await api("/v1/console/requests/" + encodeURIComponent(requestId));
  const body = await response.json().catch(() => null);
  const box = $("waterfall");
  box.replaceChildren();
  $("waterfall-section").hidden = false;
  if (!response.ok) { $("waterfall-title").textContent = errorText(body, response.status); return; }
  const request = body.request;
  $("waterfall-title").textContent = `${request.pipeline} · ${request.request_id} · ${request.status === null ? "running" : "status " + request.status}`;
  box.setAttribute("data-request-id", request.request_id);
  const ends = body.calls.map((c) => c.start_s + c.duration_s);
  const total = Math.max(request.duration_s || 0, ...ends, 1e-6);
  box.appendChild(waterfallRow("request", 0, request.duration_s || total, total, "request", "the whole request"));
  const calls = body.calls.slice().sort((a, b) => a.start_s - b.start_s);
  for (const call of calls) {
    const row = waterfallRow(`${call.stage} ← ${call.caller}`, call.start_s, call.duration_s, total, call.outcome,
      `${call.stage} called by ${call.caller}: ${call.outcome}, retries included`);
    row.setAttribute("data-stage", call.stage);
    row.setAttribute("data-outcome", call.outcome);
    box.appendChild(row);
  }
  if (body.dropped) box.appendChild(el("p", {}, `${body.dropped} more calls not kept`));
}

// -- the form from the input schema -----------------------------------------------------------
function resolve(schema, root) {
  if (schema && schema.$ref && root.$defs) return root.$defs[schema.$ref.split("/").pop()] || schema;
  if (schema && schema.anyOf) return schema.anyOf.find((s) => s.type !== "null") || schema;
  return schema || {};
}

function buildFields(pipeline) {
  const box = $("fields");
  box.replaceChildren();
  const schema = pipeline.input_schema || {};
  const required = new Set(schema.required || []);
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    if (name === "stream") continue;
    const field = resolve(raw, schema);
    const id = "field-" + name;
    const label = el("label", { for: id }, name + (required.has(name) ? " *" : ""));
    const hint = field.type && ["string", "integer", "number", "boolean"].includes(field.type) ? field.type : "JSON";
    label.appendChild(el("span", { class: "hint" }, " " + hint));
    box.appendChild(label);
    let input;
    if (field.type === "boolean") {
      input = el("input", { id, type: "checkbox" });
      if (raw.default === true) input.checked = true;
    } else if (field.type === "integer" || field.type === "number") {
      input = el("input", { id, type: "number", step: field.type === "integer" ? "1" : "any" });
      if (raw.default !== undefined && raw.default !== null) input.value = String(raw.default);
    } else if (field.type === "string") {
      input = el("textarea", { id, rows: "2" });
      if (typeof raw.default === "string") input.value = raw.default;
    } else {
      input = el("textarea", { id, rows: "3", placeholder: "JSON" });
      if (raw.default !== undefined) input.value = JSON.stringify(raw.default);
    }
    input.setAttribute("data-field", name);
    input.setAttribute("data-type", field.type || "json");
    if (required.has(name)) input.setAttribute("data-required", "true");
    box.appendChild(input);
  }
}

function readFields() {
  const data = {};
  for (const input of $("fields").querySelectorAll("[data-field]")) {
    const name = input.getAttribute("data-field"), type = input.getAttribute("data-type");
    if (type === "boolean") { data[name] = input.checked; continue; }
    if (input.value === "" && !input.getAttribute("data-required")) continue;
    if (type === "integer" || type === "number") data[name] = Number(input.value);
    else if (type === "string") data[name] = input.value;
    else data[name] = JSON.parse(input.value);  // a bad value: the form says so
  }
  return data;
}

async function run(event) {
  event.preventDefault();
  const name = $("pipeline-select").value;
  const out = $("run-result");
  let data;
  try { data = readFields(); } catch (err) { out.textContent = "not JSON: " + err.message; return; }
  out.textContent = "running...";
  const response = await api("/v1/pipelines/" + encodeURIComponent(name), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
  });
  const body = await response.json().catch(() => null);
  const requestId = response.headers.get("x-request-id");
  out.setAttribute("data-request-id", requestId || "");
  out.setAttribute("data-status", String(response.status));
  out.textContent = response.ok ? JSON.stringify(body, null, 2) : errorText(body, response.status);
  await poll();
  if (requestId) await openWaterfall(requestId);
}

// -- start and poll ---------------------------------------------------------------------------
async function loadListing() {
  const response = await api("/v1/pipelines");
  if (!response.ok) { return false; }
  listing = (await response.json()).data;
  const select = $("pipeline-select");
  select.replaceChildren(...listing.map((p) => el("option", { value: p.name }, p.name)));
  $("title").textContent = listing.map((p) => p.name).join(", ");
  if (listing.length) buildFields(listing[0]);
  return true;
}

async function poll() {
  const response = await api("/v1/console/state");
  if (!response.ok) return;
  const state = await response.json();
  const at = Date.now();
  const graphs = $("graphs");
  if (!graphs.childElementCount) for (const graph of state.pipelines) graphs.appendChild(drawGraph(graph));
  colourStages(state, at);
  showRequests(state.requests);
  history.push({ state, at });
  while (history.length > 1 && at - history[0].at > WINDOW_MS) history.shift();
}

async function start() {
  notice("");
  if (await loadListing()) await poll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
    $("api-key").value = "";
    start();
  });
  $("pipeline-select").addEventListener("change", () => {
    const chosen = listing.find((p) => p.name === $("pipeline-select").value);
    if (chosen) buildFields(chosen);
  });
  $("run-form").addEventListener("submit", run);
  start();
  setInterval(() => { if (listing.length) poll(); }, POLL_MS);
});
