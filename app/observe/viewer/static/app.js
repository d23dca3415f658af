// The flow viewer: drive the seed scenario over the real HTTP API and show what each step did. The
// drawing is diagram.js, the operator's lab panel lab.js; both are loaded after this file.
"use strict";

const $ = (selector) => document.querySelector(selector);
const OPERATOR_KEY = "eventcollab.operator";
const STATE_READ = "ui-state-"; // the correlation ids of the page's own reads of balance, orders, notices

const state = {
  login: "",
  password: "", // random per login: the page registers with it, then logs in with it
  token: "", // the Bearer token from the "Log in" step; kept in memory only
  operator: "", // the operator's token (from ?operator=), kept in sessionStorage: this tab only
  current: "", // the correlation id whose flow is drawn
  stepOf: new Map(), // correlation id -> step name, for the flows this page started
  runs: [], // the correlation ids of this login's steps, in the order run: the whole scenario
  view: "step", // "step": the current flow; "scenario": every step's flow, one after another
  labels: "events", // how the server words the arrows: "events" (types, paths) or "seed"
  pending: new Map(), // order id -> its step's result, for an order answered 202 (not settled yet)
};

// The seed's steps: each is one HTTP request, sent with its own X-Correlation-ID (and the Bearer
// token, once the "Log in" step has one).
const STEPS = {
  register: (login, password) => [
    "POST",
    "/person/register",
    { login, email: `${login}@example.com`, password },
  ],
  login: (login, password) => ["POST", "/person/login", { login, password }],
  deposit: (login) => ["PUT", "/account/operation", { login, operation: "deposit", sum: "1000.00" }],
  order: (login) => ["POST", "/order/createOrder", { login, price: 300 }],
  balance: (login) => ["GET", `/account/?login=${login}`],
  notices: (login) => ["GET", `/notice/notices/?login=${login}`],
  "big-order": (login) => ["POST", "/order/createOrder", { login, price: 5000 }],
  "notices-again": (login) => ["GET", `/notice/notices/?login=${login}`],
};

function randomHex(length) {
  const bytes = new Uint8Array(length / 2);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function money(value) {
  return Number(value).toFixed(2);
}

// Run `work` at most once per `wait` ms, after the last call: SSE records come in bursts.
function debounce(work, wait) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(work, wait);
  };
}

function bearer(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Every per-user endpoint wants the login's token; before "Log in" there is none.
function authorization() {
  return bearer(state.token);
}

// The flows are the login's own with its token, everyone's with the operator's.
function flowsAuthorization() {
  return bearer(state.operator || state.token);
}

async function getJson(path, headers = authorization()) {
  if (!headers.Authorization) return null; // nothing of anyone's is readable without a token
  const response = await fetch(path, { headers });
  return response.ok ? response.json() : null;
}

// ---- the operator's token ----------------------------------------------------------------------

// ?operator=<token> (the address the server logs at start): keep it in this tab's sessionStorage and
// take it out of the address bar at once, so it is not bookmarked, shared or sent as a Referer.
function takeOperatorToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("operator");
  if (given) {
    sessionStorage.setItem(OPERATOR_KEY, given);
    url.searchParams.delete("operator");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  state.operator = sessionStorage.getItem(OPERATOR_KEY) || "";
}

function showViewer() {
  $("#viewer-mode").textContent = state.operator
    ? "Operator: every login's flows."
    : state.token
      ? `Your flows only (${state.login}).`
      : "Log in to see your flows.";
  $("#leave-operator").hidden = !state.operator;
}

function leaveOperator() {
  sessionStorage.removeItem(OPERATOR_KEY);
  state.operator = "";
  viewerChanged();
}

function viewerChanged() {
  showViewer();
  labChanged(); // lab.js: the operator's panel, shown with the operator's token only
  listen();
  listSoon();
  drawSoon();
}

// ---- steps -------------------------------------------------------------------------------------

async function runStep(item) {
  const name = item.dataset.step;
  const [method, path, body] = STEPS[name](state.login, state.password);
  const cid = `ui-${name}-${randomHex(12)}`;
  const result = item.querySelector(".result");
  state.stepOf.set(cid, name);
  state.runs.push(cid);
  result.textContent = "…";
  result.className = "result";
  result.dataset.cid = cid;
  showFlow(cid);

  const started = performance.now();
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", "X-Correlation-ID": cid, ...authorization() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const ms = Math.round(performance.now() - started);
  const reply = await response.json().catch(() => ({}));
  if (name === "login" && response.ok) {
    state.token = reply.accessToken;
    viewerChanged();
  }
  result.textContent = `${response.status} · ${ms} ms · ${summarize(name, reply)}`;
  result.className = response.ok ? "result ok" : "result failed";
  if (response.status === 202) {
    // accepted, not settled: the order waits for billing; refresh() says when it settles
    state.pending.set(reply.id, result);
    result.textContent = `${response.status} · ${ms} ms · accepted, pending: billing has not answered`;
    result.className = "result pending";
  }
  item.classList.add("done");
  drawSoon();
  refreshSoon();
  listSoon();
}

function summarize(name, reply) {
  if (reply.accessToken) return `${reply.tokenType} token for ${reply.expiresIn} s`;
  if (reply.status && reply.isPaid !== undefined) {
    return reply.isPaid ? `paid` : `${reply.status} (${reply.reason})`;
  }
  if (reply.balance !== undefined) return `balance ${money(reply.balance)}`;
  if (reply.messages) return `${reply.messages.length} notices`;
  if (reply.login) return `registered ${reply.login}`;
  return reply.detail || reply.title || name;
}

// ---- recent flows: yours, or with the operator's token everyone's ------------------------------

let listings = 0;

async function listRecent() {
  const mine = ++listings;
  const found = await getJson("/flows?limit=100", flowsAuthorization());
  if (mine !== listings) return;
  const flows = (found ? found.flows : []).filter((f) => !f.correlationId.startsWith(STATE_READ));
  const list = $("#recent");
  list.replaceChildren(
    ...flows.slice(0, 15).map((flow) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.cid = flow.correlationId;
      button.textContent = `${flow.kind} · ${flow.login || "no login"} · ${flow.outcome} · ${flow.hops} hops`;
      button.className = flow.correlationId === state.current ? "current" : "";
      button.addEventListener("click", () => showFlow(flow.correlationId));
      li.append(button);
      return li;
    }),
  );
}

const listSoon = debounce(listRecent, 80);

// ---- balances, orders, notices -----------------------------------------------------------------

let refreshes = 0;

async function refresh() {
  const mine = ++refreshes;
  const login = encodeURIComponent(state.login);
  // the page's own reads for these panels are flows too: tagged, so the list of flows leaves them out
  const tagged = () => ({ ...authorization(), "X-Correlation-ID": `${STATE_READ}${randomHex(12)}` });
  const [account, orders, notices, chaos] = await Promise.all([
    getJson(`/account/?login=${login}`, tagged()),
    getJson(`/order/orders?login=${login}`, tagged()),
    getJson(`/notice/notices/?login=${login}`, tagged()),
    getJson("/flows/chaos", flowsAuthorization()),
  ]);
  if (mine !== refreshes) return; // a newer refresh is on its way
  $("#balance").textContent = account ? money(account.balance) : "—";
  const listed = orders ? orders.orders : [];
  fillList(
    "#orders",
    listed.map((o) => `${money(o.price)} · ${o.status}${o.reason ? ` (${o.reason})` : ""}`),
  );
  settled(listed);
  fillList(
    "#notices",
    (notices ? notices.messages : []).map((m) => `${m.type}: ${m.text}`),
  );
  showChaos(chaos);
}

const refreshSoon = debounce(refresh, 60);

// An order answered 202 settles later (billing paused, slow or failing): its step says so when it does.
function settled(orders) {
  for (const order of orders) {
    const result = state.pending.get(order.id);
    if (!result || order.status === "pending") continue;
    state.pending.delete(order.id);
    result.textContent += ` → then ${order.status}${order.reason ? ` (${order.reason})` : ""}`;
    result.className = order.status === "paid" ? "result ok" : "result failed";
  }
}

function fillList(selector, lines) {
  const list = $(selector);
  list.replaceChildren(
    ...lines.map((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      return li;
    }),
  );
}

function showChaos(chaos) {
  const on = Boolean(chaos && chaos.enabled);
  $("#chaos").hidden = !on;
  $("#chaos-switch").checked = on;
  if (!on) return;
  $("#chaos-spec").textContent =
    typeof chaos.spec === "string" ? chaos.spec : JSON.stringify(chaos.spec);
  const injected = Object.entries(chaos.injected || {}).filter(([, n]) => n > 0);
  $("#chaos-injected").textContent = injected.map(([fault, n]) => `${fault} ${n}`).join(", ");
}

// ---- live records ------------------------------------------------------------------------------

// EventSource cannot send an Authorization header, so the stream is read with fetch: a
// ReadableStream of Server-Sent Events, parsed here, reconnected when it ends (the server ends it
// after FLOWS_STREAM_SECONDS and when the token expires).
let listening = null;

function listen() {
  if (listening) listening.abort();
  listening = null;
  const headers = flowsAuthorization();
  if (!headers.Authorization) return;
  listening = new AbortController();
  follow(headers, listening.signal);
}

async function follow(headers, signal) {
  while (!signal.aborted) {
    try {
      const response = await fetch("/flows/stream", { headers, signal });
      if (response.status === 401) return; // the token expired or is wrong: a new login listens again
      if (response.ok) {
        drawSoon(); // a reconnect may have missed records: draw the whole flow again
        listSoon();
        await readEvents(response.body, onRecord);
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((resume) => setTimeout(resume, 1000));
  }
}

function onRecord(event, data) {
  if (event !== "record") return;
  const record = JSON.parse(data);
  const drawn =
    state.view === "scenario"
      ? state.runs.includes(record.correlationId)
      : record.correlationId === state.current;
  if (drawn) drawSoon();
  if (record.subject === state.login || state.stepOf.has(record.correlationId)) refreshSoon();
  listSoon();
}

// The text/event-stream format: "field: value" lines, an event ends at an empty line.
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // a "\r" at the end may be half of a "\r\n": keep it for the next chunk
    const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(cut);
    for (const line of lines) {
      if (line === "") {
        if (data.length) dispatch(event || "message", data.join("\n"));
        event = "";
        data = [];
      } else if (line.startsWith("event:")) {
        event = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
  }
}

// ---- start -------------------------------------------------------------------------------------

function newLogin() {
  state.login = `student-${randomHex(12)}`;
  state.password = randomHex(24);
  state.token = "";
  state.runs = [];
  state.pending.clear();
  $("#login").textContent = state.login;
  for (const item of document.querySelectorAll("#steps li")) {
    item.classList.remove("done");
    item.querySelector(".result").textContent = "";
  }
  viewerChanged();
  refresh();
}

function start() {
  takeOperatorToken();
  mermaid.initialize({ startOnLoad: false, theme: "neutral", sequence: { mirrorActors: false } });
  for (const item of document.querySelectorAll("#steps li")) {
    item.querySelector("button").addEventListener("click", () => runStep(item));
    item.querySelector(".result").addEventListener("click", (event) => {
      if (event.target.dataset.cid) showFlow(event.target.dataset.cid);
    });
  }
  $("#new-login").addEventListener("click", newLogin);
  $("#leave-operator").addEventListener("click", leaveOperator);
  startDiagram(); // diagram.js
  startLab(); // lab.js
  // an order answered 202 settles whenever billing gets to it: look again each second until it has
  setInterval(() => state.pending.size && refreshSoon(), 1000);
  newLogin();
}

// diagram.js and lab.js come after this file: every deferred script has run by DOMContentLoaded
document.addEventListener("DOMContentLoaded", start);
