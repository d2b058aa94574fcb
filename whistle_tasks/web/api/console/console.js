// The Whistle console: plain JavaScript over the REST API v1 (no build step).
// The key stays in this tab's sessionStorage and travels only in the Authorization header
// (never in a URL): the live stream is read with fetch(), not EventSource, for that reason.
"use strict";

const state = { key: sessionStorage.getItem("whistle-key") || "", account: null,
                deviceCursor: null, stream: null };
const $ = (id) => document.getElementById(id);
const text = (v) => (v === undefined || v === null ? "" : String(v));

function cell(row, value) {
  const td = document.createElement("td");
  td.textContent = text(value);
  row.appendChild(td);
  return td;
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers,
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch (e) { data = null; }
  }
  return { ok: resp.ok, status: resp.status, data };
}

const base = () => "/v1/accounts/" + state.account.id;

// API validation messages, shown next to the field they name
function showErrors(form, result) {
  form.querySelectorAll(".err").forEach((el) => { el.textContent = ""; });
  if (result.ok) return;
  const errors = (result.data && result.data.errors) || {};
  let placed = false;
  for (const where of Object.values(errors)) {
    for (const [field, reasons] of Object.entries(where)) {
      const el = form.querySelector(`.err[data-for="${field}"]`) ||
                 form.querySelector('.err[data-for="_schema"]') ||
                 form.querySelector('.err[data-for="query"]');
      if (el) { el.textContent = [].concat(reasons).join(" "); placed = true; }
    }
  }
  if (!placed) {
    const el = form.querySelector(".err");
    if (el) el.textContent = (result.data && result.data.message) || "error " + result.status;
  }
}

function message(id, ok, words) {
  const el = $(id);
  el.className = "msg " + (ok ? "good" : "bad");
  el.textContent = words;
}

// --- log in -------------------------------------------------------------------------------

async function login(event) {
  if (event) event.preventDefault();
  state.key = $("key").value.trim() || state.key;
  const result = await api("GET", "/v1/accounts");
  if (!result.ok) {
    $("login-err").textContent = (result.data && result.data.message) || "refused";
    return;
  }
  sessionStorage.setItem("whistle-key", state.key);
  const accounts = result.data.data;
  const select = $("account");
  if (accounts.length > 1 && !select.value) {
    select.innerHTML = "";
    for (const a of accounts) {
      const opt = document.createElement("option");
      opt.value = a.id;
      opt.textContent = `${a.name} (${a.realm})`;
      select.appendChild(opt);
    }
    $("account-pick").hidden = false;
    $("login-button").textContent = "Open account";
    return;
  }
  state.account = accounts.find((a) => a.id === select.value) || accounts[0];
  if (!state.account) { $("login-err").textContent = "no account to show"; return; }
  $("login").hidden = true;
  $("app").hidden = false;
  $("tabs").hidden = false;
  $("who").textContent = `${state.account.name} · ${state.account.realm}`;
  show("registrations");
  startStream();
}

// --- tabs ---------------------------------------------------------------------------------

const loaders = {
  registrations: loadRegistrations, calls: loadCalls, cdrs: loadCdrs,
  devices: () => loadDevices(true), numbers: loadNumbers, callflows: loadCallflows,
};

function show(tab) {
  document.querySelectorAll("nav button").forEach((b) =>
    b.classList.toggle("on", b.dataset.tab === tab));
  document.querySelectorAll("main section").forEach((s) =>
    s.classList.toggle("on", s.id === tab));
  loaders[tab]();
}

async function loadRegistrations() {
  const result = await api("GET", base() + "/registrations");
  const rows = $("reg-rows");
  rows.innerHTML = "";
  for (const r of (result.data && result.data.data) || []) {
    const tr = document.createElement("tr");
    tr.dataset.user = r.username;
    cell(tr, r.username); cell(tr, r.contact); cell(tr, r.user_agent);
    cell(tr, r.expires_in + " s");
    rows.appendChild(tr);
  }
}

async function loadCalls() {
  const result = await api("GET", base() + "/calls");
  const rows = $("call-rows");
  rows.innerHTML = "";
  for (const c of (result.data && result.data.data) || []) {
    const tr = document.createElement("tr");
    tr.dataset.call = c.call_id;
    cell(tr, c.call_id); cell(tr, c.state); cell(tr, c.direction);
    cell(tr, c.caller_id_number); cell(tr, c.callee_id_number || c.dialled_number);
    cell(tr, c.started ? new Date(c.started * 1000).toLocaleTimeString() : "");
    const button = document.createElement("button");
    button.textContent = "Hang up";
    button.onclick = async () => {
      const done = await api("DELETE", base() + "/calls/" + encodeURIComponent(c.call_id));
      message("call-msg", done.ok, done.ok ? `hung up ${c.call_id}`
                                           : (done.data && done.data.message) || "failed");
      loadCalls();
    };
    cell(tr, "").appendChild(button);
    rows.appendChild(tr);
  }
}

async function loadCdrs(event) {
  if (event) event.preventDefault();
  const form = $("cdr-form");
  const params = new URLSearchParams({ limit: "100" });
  for (const name of ["since", "until", "number"]) {
    const v = form.elements[name].value.trim();
    if (v) params.set(name, v);
  }
  const result = await api("GET", base() + "/cdrs?" + params);
  showErrors(form, result);
  const rows = $("cdr-rows");
  rows.innerHTML = "";
  for (const r of (result.data && result.data.data) || []) {
    const tr = document.createElement("tr");
    tr.dataset.cdr = r.id;
    cell(tr, new Date(r.end * 1000).toISOString().replace("T", " ").slice(0, 19));
    cell(tr, r.direction); cell(tr, r.caller_id_number);
    cell(tr, r.callee_id_number || r.dialled_number); cell(tr, r.billing_seconds);
    cell(tr, r.hangup_cause); cell(tr, r.hung_up_by);
    cell(tr, r.id + (r.partial ? " (partial)" : ""));
    rows.appendChild(tr);
  }
}

async function loadDevices(first) {
  if (first) { state.deviceCursor = null; $("device-rows").innerHTML = ""; }
  const params = new URLSearchParams({ limit: "100" });
  if (state.deviceCursor) params.set("cursor", state.deviceCursor);
  const result = await api("GET", base() + "/devices?" + params);
  if (!result.ok) return;
  for (const d of result.data.data) {
    const tr = document.createElement("tr");
    tr.dataset.device = d.username;
    cell(tr, d.username); cell(tr, d.name); cell(tr, d.auth);
    cell(tr, d.enabled ? "yes" : "no");
    const actions = cell(tr, "");
    const toggle = document.createElement("button");
    toggle.textContent = d.enabled ? "Disable" : "Enable";
    toggle.onclick = async () => {
      await api("PATCH", base() + "/devices/" + d.id, { enabled: !d.enabled });
      loadDevices(true);
    };
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.onclick = async () => { await api("DELETE", base() + "/devices/" + d.id);
                                   loadDevices(true); };
    actions.append(toggle, " ", remove);
    $("device-rows").appendChild(tr);
  }
  state.deviceCursor = result.data.next_cursor;
  $("device-more").hidden = !state.deviceCursor;
}

async function createDevice(event) {
  event.preventDefault();
  const form = $("device-form");
  const body = {};
  for (const name of ["username", "password", "name"]) {
    const v = form.elements[name].value.trim();
    if (v) body[name] = v;
  }
  const result = await api("POST", base() + "/devices", body);
  showErrors(form, result);
  if (result.ok) {
    message("device-msg", true, `device ${result.data.username} created`);
    form.reset();
    loadDevices(true);
  }
}

async function loadNumbers() {
  const result = await api("GET", base() + "/numbers");
  const rows = $("number-rows");
  rows.innerHTML = "";
  for (const n of (result.data && result.data.data) || []) {
    const tr = document.createElement("tr");
    const to = n.to || {};
    cell(tr, n.number);
    cell(tr, `${to.type}:${to.username || to.uri || to.host || to.name || to.code || ""}`);
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.onclick = async () => {
      await api("DELETE", base() + "/numbers/" + encodeURIComponent(n.number));
      loadNumbers();
    };
    cell(tr, "").appendChild(remove);
    rows.appendChild(tr);
  }
}

async function addNumber(event) {
  event.preventDefault();
  const form = $("number-form");
  const body = { number: form.elements.number.value.trim(), to: form.elements.to.value.trim() };
  const result = await api("POST", base() + "/numbers", body);
  showErrors(form, result);
  if (result.ok) { message("number-msg", true, `number ${result.data.number} added`);
                   form.reset(); loadNumbers(); }
}

// a callflow as a tree: each node's module and data, its children below it
function tree(node) {
  const li = document.createElement("li");
  const label = document.createElement("code");
  label.textContent = node.module || "?";
  li.appendChild(label);
  const data = node.data && Object.keys(node.data).length ? " " + JSON.stringify(node.data) : "";
  li.appendChild(document.createTextNode(data));
  const children = node.children || {};
  const keys = Object.keys(children);
  if (keys.length) {
    const ul = document.createElement("ul");
    for (const k of keys) {
      const child = tree(children[k]);
      if (k !== "_") child.prepend(document.createTextNode(`[${k}] `));
      ul.appendChild(child);
    }
    li.appendChild(ul);
  }
  return li;
}

async function loadCallflows() {
  const result = await api("GET", base() + "/callflows");
  const box = $("callflow-trees");
  box.innerHTML = "";
  if (!result.ok) {
    message("callflow-msg", false, result.status === 404
      ? "this server has no callflows endpoint yet" : (result.data && result.data.message));
    return;
  }
  message("callflow-msg", true, "");
  for (const cf of result.data.data || []) {
    const h = document.createElement("h3");
    h.textContent = `${(cf.numbers || []).join(", ")} ${cf.name || cf.id || ""}`;
    const ul = document.createElement("ul");
    ul.className = "tree";
    ul.appendChild(tree(cf.flow || {}));
    box.append(h, ul);
  }
}

// --- the live stream (SSE over fetch, so the key stays in a header) ------------------------

async function startStream() {
  const live = $("live");
  for (;;) {
    try {
      const resp = await fetch(base() + "/events",
                               { headers: { Authorization: "Bearer " + state.key } });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      live.className = "live"; live.textContent = "● live";
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          onFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (e) { /* reconnect below */ }
    live.className = "live off"; live.textContent = "○ reconnecting";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onFrame(frame) {
  let kind = "message", data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) kind = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data || (kind !== "call" && kind !== "registration")) return;
  const event = JSON.parse(data);
  const li = document.createElement("li");
  li.textContent = kind === "call"
    ? `${event.event} ${event.caller_id_number || ""} → ${event.callee_id_number || event.dialled_number || ""} (${event.call_id})`
    : `${event.event} ${event.username}@${event.realm}`;
  $("event-log").prepend(li);
  // the stream tells of a registration as the switch reports it, a moment before the
  // registrar has stored it: read the list again shortly after
  if (kind === "registration") { setTimeout(loadRegistrations, 500);
                                 setTimeout(loadRegistrations, 2000); }
  if (kind === "call") {
    // the index of calls in progress is updated by the cdr worker a moment after the event
    if ($("calls").classList.contains("on")) setTimeout(loadCalls, 300);
    if (event.event === "CHANNEL_HANGUP_COMPLETE" && $("cdrs").classList.contains("on")) {
      setTimeout(loadCdrs, 1500);   // the record is written within a batch's linger
    }
  }
}

// --- wiring -------------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("device-form").addEventListener("submit", createDevice);
$("number-form").addEventListener("submit", addNumber);
$("cdr-form").addEventListener("submit", loadCdrs);
$("device-more").addEventListener("click", () => loadDevices(false));
// calls and registrations: refreshed every 3 s as well, whatever the stream misses
setInterval(() => {
  if (!state.account) return;
  if ($("calls").classList.contains("on")) loadCalls();
  if ($("registrations").classList.contains("on")) loadRegistrations();
}, 3000);
document.querySelectorAll("nav button").forEach((b) =>
  b.addEventListener("click", () => show(b.dataset.tab)));
if (state.key) { $("key").value = ""; login(); }
