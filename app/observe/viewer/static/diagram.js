// The flow viewer's diagram: one step's flow, or the whole scenario, drawn by Mermaid from the
// server's text, in either wording; the same text for sequencediagram.org. Needs app.js first.
"use strict";

let renders = 0;
let drawing = Promise.resolve();

function showFlow(cid) {
  state.current = cid;
  state.view = "step";
  showView();
  const diagram = $("#diagram");
  diagram.innerHTML = '<p class="hint">Waiting for the first hop…</p>';
  diagram.dataset.cid = cid;
  diagram.dataset.hops = "0";
  drawSoon();
  listSoon();
}

function showScenario() {
  state.view = "scenario";
  showView();
  drawSoon();
}

function showView() {
  const scenario = state.view === "scenario";
  $("#view-step").setAttribute("aria-pressed", String(!scenario));
  $("#view-scenario").setAttribute("aria-pressed", String(scenario));
  $("#flow-id").textContent = scenario
    ? `whole scenario: ${state.runs.length} steps`
    : `${state.stepOf.get(state.current) || ""} ${state.current}`;
  $("#flow-outcome").textContent = "";
}

// Draws are chained, so an older, slower draw never overwrites a newer one.
function draw() {
  drawing = drawing.then(drawCurrent).catch((error) => console.error(error));
}

const drawSoon = debounce(draw, 40);

async function getText(path, headers) {
  const response = await fetch(path, { headers });
  return response.ok ? response.text() : "";
}

// What is drawn: a draw that finds it changed once its answers are in throws them away.
function drawKey() {
  return `${state.view} ${state.labels} ${state.view === "scenario" ? state.runs.join(",") : state.current}`;
}

async function drawCurrent() {
  if (state.view === "step" && !state.current) return;
  const headers = flowsAuthorization();
  if (!headers.Authorization) {
    $("#diagram").innerHTML =
      '<p class="hint">Flows are each login\'s own: "Log in" to see this one.</p>';
    return;
  }
  if (state.view === "scenario") return drawScenario(headers);
  const key = drawKey();
  const cid = state.current;
  const base = `/flows/${encodeURIComponent(cid)}`;
  const [flow, text, seq] = await Promise.all([
    getJson(base, headers),
    getText(`${base}?format=mermaid&labels=${state.labels}`, headers),
    getText(`${base}?format=sequencediagram&labels=${state.labels}`, headers),
  ]);
  if (key !== drawKey() || !flow) return; // not recorded yet: the stream will say when it is
  await render(text, seq, cid, flow.hops);
  $("#flow-outcome").textContent =
    `${flow.kind} · ${flow.outcome} · ${Math.round(flow.duration * 1000)} ms · ${flow.hops} hops` +
    (flow.login ? ` · ${flow.login}` : "") +
    (flow.redeliveries ? ` · ${flow.redeliveries} redeliveries` : "");
}

// Every step this login ran, in order, as one diagram (GET /flows/scenario).
async function drawScenario(headers) {
  const diagram = $("#diagram");
  if (!state.runs.length) {
    diagram.innerHTML = '<p class="hint">Run a step: the whole scenario is the steps run so far.</p>';
    return;
  }
  const key = drawKey();
  const base = `/flows/scenario?ids=${encodeURIComponent(state.runs.join(","))}`;
  const [found, text, seq] = await Promise.all([
    getJson(`${base}&format=json`, headers),
    getText(`${base}&format=mermaid&labels=${state.labels}`, headers),
    getText(`${base}&format=sequencediagram&labels=${state.labels}`, headers),
  ]);
  if (key !== drawKey()) return;
  if (!found || !text) {
    diagram.innerHTML = '<p class="hint">This server does not draw the whole scenario.</p>';
    return;
  }
  await render(text, seq, "scenario", found.records.length);
  const missing = found.missing.length ? ` · ${found.missing.length} not recorded (yet)` : "";
  $("#flow-outcome").textContent = `${found.flows.length} flows · ${found.records.length} hops${missing}`;
}

async function render(text, seq, cid, hops) {
  const { svg } = await mermaid.render(`flow-svg-${++renders}`, text);
  const diagram = $("#diagram");
  diagram.innerHTML = svg;
  diagram.dataset.cid = cid;
  diagram.dataset.hops = String(hops);
  diagram.dataset.labels = state.labels;
  readable(diagram.querySelector("svg"));
  $("#seq-text").textContent = seq;
  $("#mermaid-text").textContent = text;
}

// Mermaid scales the picture down to the width; below 80% of its size the labels (16 px) would get
// smaller than ~13 px: a wider diagram scrolls sideways instead.
function readable(svg) {
  const natural = svg ? svg.viewBox.baseVal.width : 0;
  if (natural) svg.style.minWidth = `${Math.round(natural * 0.8)}px`;
}

async function copyText(button) {
  const text = $(button.dataset.copy).textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    getSelection().selectAllChildren($(button.dataset.copy)); // no clipboard: select it for Ctrl+C
    button.textContent = "Selected";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

function startDiagram() {
  $("#view-step").addEventListener("click", () => state.current && showFlow(state.current));
  $("#view-scenario").addEventListener("click", showScenario);
  for (const input of document.querySelectorAll('input[name="labels"]')) {
    input.addEventListener("change", () => {
      state.labels = input.value;
      drawSoon();
    });
  }
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => copyText(button));
  }
}
