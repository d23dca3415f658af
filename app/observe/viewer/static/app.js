// The flow viewer: drive the seed scenario over the real HTTP API and draw each step's flow.
"use strict";

const $ = (selector) => document.querySelector(selector);

const state = {
  login: "",
  password: "", // random per login: the page registers with it, then logs in with it
  token: "", // the Bearer token from the "Log in" step; kept in memory only
  current: "", // the correlation id whose flow is drawn
  stepOf: new Map(), // correlation id -> step name, for the flows this page started
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

// Every per-user endpoint wants "Authorization: Bearer <token>"; before "Log in" there is none.
function authorization() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: authorization() });
  return response.ok ? response.json() : null;
}

// ---- steps -------------------------------------------------------------------------------------

async function runStep(item) {
  const name = item.dataset.step;
  const [method, path, body] = STEPS[name](state.login, state.password);
  const cid = `ui-${name}-${randomHex(12)}`;
  const result = item.querySelector(".result");
  state.stepOf.set(cid, name);
  result.textContent = "…";
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
  if (name === "login" && response.ok) state.token = reply.accessToken;
  result.textContent = `${response.status} · ${ms} ms · ${summarize(name, reply)}`;
  result.className = response.ok ? "result ok" : "result failed";
  item.classList.add("done");
  drawSoon();
  refreshSoon();
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

// ---- the diagram -------------------------------------------------------------------------------

let renders = 0;
let drawing = Promise.resolve();

function showFlow(cid) {
  state.current = cid;
  $("#flow-id").textContent = `${state.stepOf.get(cid) || ""} ${cid}`;
  $("#flow-outcome").textContent = "";
  const diagram = $("#diagram");
  diagram.innerHTML = '<p class="hint">Waiting for the first hop…</p>';
  diagram.dataset.cid = cid;
  diagram.dataset.hops = "0";
  drawSoon();
}

// Draws are chained, so an older, slower draw never overwrites a newer one.
function draw() {
  drawing = drawing.then(drawCurrent).catch((error) => console.error(error));
}

const drawSoon = debounce(draw, 40);

async function drawCurrent() {
  const cid = state.current;
  if (!cid) return;
  const base = `/flows/${encodeURIComponent(cid)}`;
  const [flow, text, seq] = await Promise.all([
    getJson(base),
    fetch(`${base}?format=mermaid`).then((r) => (r.ok ? r.text() : "")),
    fetch(`${base}?format=sequencediagram`).then((r) => (r.ok ? r.text() : "")),
  ]);
  if (cid !== state.current || !flow) return; // not recorded yet: the stream will say when it is
  const { svg } = await mermaid.render(`flow-svg-${++renders}`, text);
  const diagram = $("#diagram");
  diagram.innerHTML = svg;
  diagram.dataset.cid = cid;
  diagram.dataset.hops = String(flow.hops);
  $("#seq-text").textContent = seq;
  $("#flow-outcome").textContent =
    `${flow.kind} · ${flow.outcome} · ${Math.round(flow.duration * 1000)} ms · ${flow.hops} hops` +
    (flow.redeliveries ? ` · ${flow.redeliveries} redeliveries` : "");
}

// ---- balances, orders, notices -----------------------------------------------------------------

let refreshes = 0;

async function refresh() {
  const mine = ++refreshes;
  const login = encodeURIComponent(state.login);
  const [account, orders, notices, chaos] = await Promise.all([
    getJson(`/account/?login=${login}`),
    getJson(`/order/orders?login=${login}`),
    getJson(`/notice/notices/?login=${login}`),
    getJson("/flows/chaos"),
  ]);
  if (mine !== refreshes) return; // a newer refresh is on its way
  $("#balance").textContent = account ? money(account.balance) : "—";
  fillList(
    "#orders",
    (orders ? orders.orders : []).map(
      (o) => `${money(o.price)} · ${o.status}${o.reason ? ` (${o.reason})` : ""}`,
    ),
  );
  fillList(
    "#notices",
    (notices ? notices.messages : []).map((m) => `${m.type}: ${m.text}`),
  );
  showChaos(chaos);
}

const refreshSoon = debounce(refresh, 60);

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
  if (!chaos || !chaos.enabled) return;
  $("#chaos").hidden = false;
  $("#chaos-switch").checked = true;
  $("#chaos-spec").textContent = chaos.spec;
  const injected = Object.entries(chaos.injected || {}).filter(([, n]) => n > 0);
  $("#chaos-injected").textContent = injected.map(([fault, n]) => `${fault} ${n}`).join(", ");
}

// ---- live records ------------------------------------------------------------------------------

function listen() {
  const stream = new EventSource("/flows/stream");
  stream.addEventListener("record", (message) => {
    const record = JSON.parse(message.data);
    if (record.correlationId === state.current) drawSoon();
    if (record.subject === state.login || state.stepOf.has(record.correlationId)) refreshSoon();
  });
  // a reconnect may have missed records: draw the whole flow again
  stream.addEventListener("open", drawSoon);
}

// ---- start -------------------------------------------------------------------------------------

function newLogin() {
  state.login = `student-${randomHex(12)}`;
  state.password = randomHex(24);
  state.token = "";
  $("#login").textContent = state.login;
  for (const item of document.querySelectorAll("#steps li")) {
    item.classList.remove("done");
    item.querySelector(".result").textContent = "";
  }
  refresh();
}

function start() {
  mermaid.initialize({ startOnLoad: false, theme: "neutral", sequence: { mirrorActors: false } });
  for (const item of document.querySelectorAll("#steps li")) {
    item.querySelector("button").addEventListener("click", () => runStep(item));
    item.querySelector(".result").addEventListener("click", (event) => {
      if (event.target.dataset.cid) showFlow(event.target.dataset.cid);
    });
  }
  $("#new-login").addEventListener("click", newLogin);
  newLogin();
  listen();
}

start();
