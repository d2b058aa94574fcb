// The Whistle console: plain JavaScript over the REST API v1 (no build step).
// The key stays in this tab's sessionStorage and travels only in the Authorization header
// (never in a URL): the live stream is read with fetch(), not EventSource, for that reason.
"use strict";

const state = { key: sessionStorage.getItem("whistle-key") || "", account: null,
                deviceCursor: null, stream: null, callflowId: null };
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
  devices: () => loadDevices(true), numbers: loadNumbers,
  callflows: () => { previewCallflow(); return loadCallflows(); }, users: loadUsers,
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

// a callflow as a tree: each node's module and data, its children below it; each item
// carries its path (flow, flow.children.1...) so a validation error can be shown on it
function tree(node, path) {
  path = path || "flow";
  const li = document.createElement("li");
  li.dataset.path = path;
  const label = document.createElement("code");
  const ok = node && typeof node === "object" && !Array.isArray(node);
  label.textContent = (ok && node.module) || "?";
  li.appendChild(label);
  const data = ok && node.data && typeof node.data === "object" && Object.keys(node.data).length
    ? " " + JSON.stringify(node.data) : "";
  li.appendChild(document.createTextNode(data));
  const children = (ok && node.children && typeof node.children === "object") ? node.children : {};
  const keys = Object.keys(children);
  if (keys.length) {
    const ul = document.createElement("ul");
    for (const k of keys) {
      const child = tree(children[k], `${path}.children.${k}`);
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
    message("callflow-msg", false, (result.data && result.data.message) || "failed");
    return;
  }
  const flows = result.data.data || [];
  message("callflow-msg", true, `${flows.length} callflow${flows.length === 1 ? "" : "s"}`);
  for (const cf of flows) {
    const h = document.createElement("h3");
    h.dataset.callflow = cf.id;
    h.textContent = `${(cf.numbers || []).join(", ")} ${cf.name || ""} `;
    const edit = document.createElement("button");
    edit.textContent = "Edit";
    edit.onclick = () => editCallflow(cf);
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.onclick = async () => {
      await api("DELETE", base() + "/callflows/" + encodeURIComponent(cf.id));
      loadCallflows();
    };
    h.append(edit, " ", remove);
    const ul = document.createElement("ul");
    ul.className = "tree";
    ul.appendChild(tree(cf.flow || {}));
    box.append(h, ul);
  }
}

// --- the callflow editor: JSON on the left, its tree and the API's errors on the right ----

function editCallflow(cf) {
  state.callflowId = cf ? cf.id : null;
  $("callflow-mode").textContent = cf ? `Editing ${cf.id}` : "New callflow";
  const shown = cf ? { name: cf.name || "", numbers: cf.numbers || [], patterns: cf.patterns || [],
                       flow: cf.flow } : { name: "", numbers: [], flow: { module: "device",
                       data: { username: "" }, children: {} } };
  if (cf && !(cf.patterns || []).length) delete shown.patterns;
  $("callflow-json").value = JSON.stringify(shown, null, 2);
  previewCallflow();
}

function previewCallflow() {
  const preview = $("callflow-preview");
  const errors = $("callflow-errors");
  preview.innerHTML = "";
  errors.innerHTML = "";
  let doc;
  try { doc = JSON.parse($("callflow-json").value); } catch (e) {
    const li = document.createElement("li");
    li.dataset.path = "_json";
    li.textContent = "not JSON: " + e.message;
    errors.appendChild(li);
    return null;
  }
  if (doc && typeof doc === "object" && doc.flow) preview.appendChild(tree(doc.flow));
  return doc;
}

function showCallflowErrors(result) {
  const errors = $("callflow-errors");
  errors.innerHTML = "";
  const found = (result.data && result.data.errors && result.data.errors.json) || {};
  const entries = Object.entries(found);
  if (!entries.length) {
    const li = document.createElement("li");
    li.textContent = (result.data && result.data.message) || "error " + result.status;
    errors.appendChild(li);
    return;
  }
  for (const [path, reasons] of entries) {
    const words = [].concat(reasons).map((r) => typeof r === "string" ? r : JSON.stringify(r));
    const li = document.createElement("li");
    li.dataset.path = path;
    li.textContent = `${path}: ${words.join(" ")}`;
    errors.appendChild(li);
    // mark the deepest node of the tree the path is inside of
    let node = null;
    for (const el of $("callflow-preview").querySelectorAll("li[data-path]")) {
      const p = el.dataset.path;
      if ((path === p || path.startsWith(p + ".")) &&
          (!node || p.length > node.dataset.path.length)) node = el;
    }
    if (node) {
      node.classList.add("bad");
      const why = document.createElement("span");
      why.className = "why";
      why.textContent = path.slice(node.dataset.path.length + 1) + ": " + words.join(" ");
      node.insertBefore(why, node.querySelector("ul"));
    }
  }
}

async function saveCallflow() {
  const doc = previewCallflow();
  if (doc === null) return;
  const result = state.callflowId
    ? await api("PUT", base() + "/callflows/" + encodeURIComponent(state.callflowId), doc)
    : await api("POST", base() + "/callflows", doc);
  if (!result.ok) { showCallflowErrors(result); return; }
  message("callflow-msg", true, `callflow ${result.data.id} saved`);
  editCallflow(result.data);
  const shown = $("callflow-msg").textContent;
  await loadCallflows();
  message("callflow-msg", true, shown);
}

// --- users --------------------------------------------------------------------------------

async function loadUsers() {
  const result = await api("GET", base() + "/users");
  const rows = $("user-rows");
  rows.innerHTML = "";
  for (const u of (result.data && result.data.data) || []) {
    const tr = document.createElement("tr");
    tr.dataset.user = u.username;
    cell(tr, u.username); cell(tr, u.name); cell(tr, (u.devices || []).join(", "));
    const dnd = document.createElement("button");
    dnd.className = "dnd";
    dnd.textContent = u.do_not_disturb ? "on (turn off)" : "off (turn on)";
    dnd.onclick = () => changeUser(u, { do_not_disturb: !u.do_not_disturb });
    cell(tr, "").appendChild(dnd);
    const fwd = cell(tr, "");
    const cf = u.call_forward || {};
    if (cf.enabled) {
      fwd.append(`to ${cf.number || cf.uri} `);
      const stop = document.createElement("button");
      stop.className = "fwd-off";
      stop.textContent = "Stop";
      stop.onclick = () => changeUser(u, { call_forward: { to: null } });
      fwd.appendChild(stop);
    } else {
      const to = document.createElement("input");
      to.className = "fwd-to";
      to.placeholder = "+14155550100";
      to.size = 14;
      const go = document.createElement("button");
      go.className = "fwd-on";
      go.textContent = "Forward";
      go.onclick = () => changeUser(u, { call_forward: { to: to.value.trim() } });
      fwd.append(to, " ", go);
    }
    const err = document.createElement("span");
    err.className = "err";
    err.dataset.for = "call_forward";
    fwd.appendChild(err);
    cell(tr, u.voicemail_box || "");
    rows.appendChild(tr);
  }
}

async function changeUser(user, body) {
  const result = await api("PATCH", base() + "/users/" + encodeURIComponent(user.username), body);
  if (!result.ok) {
    const row = document.querySelector(`#user-rows tr[data-user="${user.username}"]`);
    const err = row && row.querySelector(".err");
    const fields = (result.data && result.data.errors && result.data.errors.json) || {};
    const reasons = fields.call_forward || fields._schema;
    if (err) err.textContent = reasons ? JSON.stringify(reasons).replace(/[{}\[\]"]/g, " ").trim()
                                       : (result.data && result.data.message) || "refused";
    return;
  }
  message("user-msg", true, `user ${user.username} changed`);
  loadUsers();
}

async function createUser(event) {
  event.preventDefault();
  const form = $("user-form");
  const body = {};
  for (const name of ["username", "name"]) {
    const v = form.elements[name].value.trim();
    if (v) body[name] = v;
  }
  const result = await api("POST", base() + "/users", body);
  showErrors(form, result);
  if (result.ok) { message("user-msg", true, `user ${result.data.username} created`);
                   form.reset(); loadUsers(); }
}

// --- click-to-call ------------------------------------------------------------------------

async function clickToCall(event) {
  event.preventDefault();
  const form = $("c2c-form");
  const body = { from: form.elements.from.value.trim(), to: form.elements.to.value.trim() };
  message("c2c-msg", true, `ringing ${body.from}…`);
  const result = await api("POST", base() + "/click-to-call", body);
  showErrors(form, result);
  if (result.ok) message("c2c-msg", true, `call ${result.data.call_id} placed`);
  else message("c2c-msg", false, (result.data && result.data.message) || "failed");
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
$("user-form").addEventListener("submit", createUser);
$("c2c-form").addEventListener("submit", clickToCall);
$("callflow-json").addEventListener("input", previewCallflow);
$("callflow-save").addEventListener("click", saveCallflow);
$("callflow-new").addEventListener("click", () => editCallflow(null));
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
