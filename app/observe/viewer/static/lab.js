// The operator's lab panel: faults injected into the bus at run time (/admin/chaos), and modules
// paused and resumed (/admin/modules), each read again every second while the panel is open.
// Needs app.js first (state, $, bearer); shown with the operator's token only.
"use strict";

const LAB_EVERY_MS = 1000;
const CHAOS_FIELDS = ["seed", "duplicate", "delay", "reorder", "fail"];
let labFormFilled = false; // the form shows the server's chaos once, then is the operator's to edit

function labChanged() {
  $("#lab").hidden = !state.operator;
  labFormFilled = false;
  readLab();
}

function readLab() {
  if (!state.operator || !$("#lab").open || document.hidden) return;
  readChaos();
  readModules();
}

function operatorFetch(path, method = "GET", body = undefined) {
  return fetch(path, {
    method,
    headers: { "Content-Type": "application/json", ...bearer(state.operator) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// A problem's detail: a string, or FastAPI's list of field errors.
function problemText(status, answer) {
  const detail = answer.detail;
  if (typeof detail === "string") return `${status}: ${detail}`;
  if (Array.isArray(detail)) {
    return `${status}: ${detail.map((e) => `${(e.loc || []).slice(1).join(".")} ${e.msg}`).join("; ")}`;
  }
  return `${status}: ${answer.title || "refused"}`;
}

// ---- chaos -------------------------------------------------------------------------------------

async function readChaos() {
  const response = await operatorFetch("/admin/chaos");
  if (response.ok) showLabChaos(await response.json());
  else $("#lab-chaos-state").textContent = `(GET /admin/chaos: ${response.status})`;
}

function showLabChaos(found) {
  const chaos = found.chaos || {};
  const spec = Object.entries(chaos).map(([name, value]) => `${name} ${value}`);
  $("#lab-chaos-state").textContent = found.enabled ? `on: ${spec.join(", ")}` : "off";
  const injected = Object.entries(found.injected || {}).map(([fault, n]) => `${fault} ${n}`);
  $("#lab-injected").textContent = injected.join(", ") || "nothing";
  if (!labFormFilled) fillChaosForm(chaos);
  labFormFilled = true;
}

function fillChaosForm(chaos) {
  const form = $("#chaos-form");
  for (const name of CHAOS_FIELDS) form.elements[name].value = chaos[name] ?? "";
}

// The fields filled in, typed as the contract says: seed an int, delay text, the rest probabilities.
// A value that is not a number goes as typed: the server's 422 says what is wrong with it.
function chaosBody() {
  const form = $("#chaos-form");
  const body = {};
  for (const name of CHAOS_FIELDS) {
    const text = form.elements[name].value.trim();
    if (text === "") continue;
    const number = Number(text);
    body[name] = name === "delay" || Number.isNaN(number) ? text : number;
  }
  return body;
}

async function putChaos(body) {
  const response = await operatorFetch("/admin/chaos", "PUT", body);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("#chaos-error").textContent = problemText(response.status, answer);
    return;
  }
  $("#chaos-error").textContent = "";
  fillChaosForm(answer.chaos || {});
  showLabChaos(answer);
  refreshSoon(); // the header's chaos indicator (GET /flows/chaos)
}

// ---- modules -----------------------------------------------------------------------------------

async function readModules() {
  const response = await operatorFetch("/admin/modules");
  if (!response.ok) {
    $("#modules tbody").textContent = `GET /admin/modules: ${response.status}`;
    return;
  }
  const { modules } = await response.json();
  for (const [name, entry] of Object.entries(modules).sort()) showModule(name, entry);
}

// Rows are kept and updated in place: a button is never swapped under the pointer.
function showModule(name, entry) {
  let row = $(`#modules tr[data-module="${CSS.escape(name)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.module = name;
    row.innerHTML =
      '<td class="name"></td><td class="state"></td><td class="backlog"></td>' +
      '<td><button type="button" data-act="pause">Pause</button> ' +
      '<button type="button" data-act="resume">Resume</button></td>';
    row.querySelector(".name").textContent = name;
    for (const button of row.querySelectorAll("button")) {
      button.addEventListener("click", () => pauseOrResume(name, button.dataset.act));
    }
    $("#modules tbody").append(row);
  }
  const paused = entry.state === "paused";
  row.querySelector(".name").title = `consumes ${(entry.consumes || []).join(", ") || "nothing"}`;
  row.querySelector(".state").textContent = entry.state;
  row.querySelector(".state").className = `state ${entry.state}`;
  row.querySelector(".backlog").textContent = String(entry.backlog);
  row.querySelector('[data-act="pause"]').disabled = paused;
  row.querySelector('[data-act="resume"]').disabled = !paused;
}

async function pauseOrResume(name, act) {
  const response = await operatorFetch(`/admin/modules/${encodeURIComponent(name)}/${act}`, "POST");
  const answer = await response.json().catch(() => ({}));
  $("#modules-error").textContent = response.ok ? "" : problemText(response.status, answer);
  if (response.ok) showModule(name, answer);
}

function startLab() {
  $("#chaos-form").addEventListener("submit", (event) => {
    event.preventDefault();
    putChaos(chaosBody());
  });
  $("#chaos-off").addEventListener("click", () => putChaos({}));
  $("#lab").addEventListener("toggle", readLab);
  setInterval(readLab, LAB_EVERY_MS);
}
