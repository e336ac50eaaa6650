// The banmesh dashboard: asks /ui/session who it is, then reads /v1
// (decisions, counts, status, peers, explain) every few seconds and, for
// tokens that may write, bans, allows and releases with the session's
// CSRF token. Data goes into the page as text, never as HTML.
"use strict";

// The mesh and the first page of decisions every 5 s; counts and recent
// activity (full scans on the node) every 30 s and after each write.
const REFRESH_MS = 5000;
const SLOW_EVERY = 6;
let ticks = 0;
let me = null; // {name, role, may_write, csrf}
let cursor = null; // next_cursor of the last page shown
let pages = 1;
let rows = []; // decisions shown

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c ?? "";
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, trs) {
  tbody.replaceChildren(...trs);
}

function when(rfc3339) {
  if (!rfc3339) return "never";
  const d = new Date(rfc3339);
  return isNaN(d) ? rfc3339 : d.toLocaleString();
}

function short(key) {
  return key && key.length > 16 ? key.slice(0, 12) + "…" : key || "";
}

function originName(o) {
  return o.name || short(o.key);
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = me ? me.csrf : "";
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { showLogin(); throw new Error("logged out"); }
  const json = r.status === 204 ? {} : await r.json();
  if (!r.ok) throw new Error((json.error && json.error.message) || ("HTTP " + r.status));
  return json;
}

function problem(error) {
  const p = $("problem");
  p.textContent = error ? String(error.message || error) : "";
  p.hidden = !error;
}

function showLogin() {
  me = null;
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("token").focus();
}

async function start() {
  const r = await fetch("/ui/session", { credentials: "same-origin" });
  if (r.status !== 200) { showLogin(); return; }
  me = await r.json();
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = me.name + " (" + me.role + ")";
  $("write").hidden = !me.may_write;
  await refresh();
  setInterval(() => { if (me) refresh(++ticks % SLOW_EVERY === 0); }, REFRESH_MS);
}

async function refresh(all = true) {
  try {
    const slow = all ? [loadCounts(), loadRecent()] : [];
    await Promise.all([loadMesh(), pages === 1 ? loadDecisions(false) : null, ...slow]);
    problem(null);
  } catch (e) {
    if (me) problem(e);
  }
}

async function loadMesh() {
  const [status, peers] = await Promise.all([api("GET", "/v1/status"), api("GET", "/v1/peers")]);
  const dl = $("node-status");
  const facts = [
    ["Node", (status.name || "(no certificate)") + " · " + short(status.peer_id)],
    ["Clock offset (peers' median)", status.clock_offset_ms == null ? "unknown" : status.clock_offset_ms + " ms"],
    ["Records", Object.entries(status.record_counts || {}).map(([k, v]) => k + " " + v).join(", ")],
    ["Sync", status.sync ? (status.sync.running.length + " running, " + status.sync.initiated + " opened, "
      + status.sync.answered + " answered") : ""],
    ["State digest", short(status.digest)],
    ["Warnings", (status.warnings || []).join(" · ") || "none"],
  ];
  dl.replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const peerRows = peers.peers.map((p) => row([
    short(p.peer_id), p.name || "?", p.state, when(p.last_sync),
    p.clock_offset_ms == null ? "" : p.clock_offset_ms + " ms", (p.addrs || []).join(" "),
  ]));
  fill($("peers").tBodies[0], peerRows.length ? peerRows : [row(["no peers known yet"])]);
  const gone = status.unreachable || [];
  $("unreachable").hidden = gone.length === 0;
  $("unreachable").textContent = "Unreachable: " + gone.map((u) =>
    (u.name || short(u.peer_id)) + " (last seen " + (u.last_seen_ms ? new Date(u.last_seen_ms).toLocaleString() : "never") + ")"
  ).join(", ");
}

async function loadCounts() {
  const c = await api("GET", "/v1/counts");
  $("total").textContent = c.total.bans + " bans, " + c.total.allows + " allows in force (counted "
    + new Date(c.counted_at).toLocaleTimeString() + ")";
  const other = (t) => (t.bans + t.allows > 0 ? [row(["(others)", t.bans, t.allows])] : []);
  fill($("by-jail").tBodies[0], c.jails.map((j) => row([j.jail || "(none)", j.bans, j.allows])).concat(other(c.other_jails)));
  fill($("by-origin").tBodies[0], c.origins.map((o) => row([o.name || short(o.key), o.bans, o.allows])).concat(other(c.other_origins)));
}

function filterQuery() {
  const q = new URLSearchParams({ limit: "200", state: $("f-state").value });
  if ($("f-kind").value) q.set("kind", $("f-kind").value);
  if ($("f-jail").value.trim()) q.set("jail", $("f-jail").value.trim());
  if ($("f-origin").value.trim()) q.set("origin", $("f-origin").value.trim());
  return q;
}

async function loadDecisions(more) {
  const q = filterQuery();
  if (more && cursor) q.set("cursor", cursor);
  const page = await api("GET", "/v1/decisions?" + q);
  rows = more ? rows.concat(page.decisions) : page.decisions;
  pages = more ? pages + 1 : 1;
  cursor = page.next_cursor;
  $("more").hidden = !cursor;
  showDecisions();
}

function showDecisions() {
  const needle = $("search").value.trim().toLowerCase();
  const shown = rows.filter((d) => !needle || [d.key, d.jail, d.reason, d.origin.name || "", d.origin.key, d.source]
    .some((f) => f.toLowerCase().includes(needle)));
  fill($("decision-table").tBodies[0], shown.map((d) => {
    const actions = el("span");
    const explain = el("button", "explain", "explain");
    explain.type = "button";
    explain.onclick = () => { $("explain-ip").value = d.key.split("/")[0]; explainNow(); };
    if (!d.network) actions.appendChild(explain);
    if (me && me.may_write && d.state === "live") {
      const release = el("button", "release", "release");
      release.type = "button";
      release.onclick = () => release_(d);
      actions.appendChild(release);
    }
    const tr = row([d.key, d.kind, d.state, d.jail, originName(d.origin), when(d.issued_at),
      d.expires_at ? when(d.expires_at) : "never", d.reason, actions]);
    tr.dataset.key = d.key;
    tr.dataset.kind = d.kind;
    tr.className = d.kind;
    return tr;
  }));
  $("shown").textContent = shown.length + " shown" + (cursor ? ", more to load" : "");
}

async function loadRecent() {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  const query = new URLSearchParams({ state: "all", since, order: "newest", limit: "20" });
  const recent = (await api("GET", "/v1/decisions?" + query)).decisions.slice(0, 20);
  $("recent").replaceChildren(...recent.map((d) => el("li",
    when(d.issued_at) + ": " + d.kind + " " + d.key + (d.jail ? " [" + d.jail + "]" : "")
    + " by " + originName(d.origin) + " (" + d.source + "), now " + d.state)));
}

async function write(kind) {
  const body = { key: $("write-key").value.trim() };
  for (const [field, id] of [["duration", "write-duration"], ["jail", "write-jail"], ["reason", "write-reason"]]) {
    const v = $(id).value.trim();
    if (v && !(field === "jail" && kind === "allows")) body[field] = v;
  }
  try {
    const r = await api("POST", "/v1/" + kind, body);
    $("write-result").textContent = (kind === "bans" ? "Banned " : "Allowed ") + r.decision.key
      + (r.notes.length ? ": " + r.notes.join(" ") : "");
    await refresh();
  } catch (e) {
    $("write-result").textContent = "Refused: " + e.message;
  }
}

async function release_(d) {
  const kind = d.kind === "ban" ? "bans" : "allows";
  try {
    const r = await api("DELETE", "/v1/" + kind + "/" + encodeURIComponent(d.key));
    $("write-result").textContent = "Released " + r.lifted + (r.notes.length ? ": " + r.notes.join(" ") : "");
    await refresh();
  } catch (e) {
    problem(e);
  }
}

async function explainNow() {
  const out = $("explanation");
  const ip = $("explain-ip").value.trim();
  try {
    const x = await api("GET", "/v1/explain/" + encodeURIComponent(ip));
    const head = el("p", x.address + ": " + x.verdict, "verdict " + x.verdict);
    head.id = "explain-verdict";
    const table = el("table");
    table.appendChild(row(["Key", "Kind", "State", "Decides", "Origin", "Jail", "Reason"]));
    for (const r of x.records) {
      table.appendChild(row([r.key, r.kind, r.state, r.decides ? "yes" : "", originName(r.origin), r.jail, r.reason]));
    }
    const enf = x.enforcement;
    const held = el("p", "Enforcement: " + (enf.enforce ? "" : "observing only; ")
      + (enf.held.length ? "holds " + enf.held.join(", ") : "holds nothing for it")
      + enf.left_out.map((l) => "; " + l.key + " left out: " + l.why).join("")
      + enf.backends.map((b) => "; " + b.name + ": " + (b.holds.join(", ") || "nothing")
        + (b.problems.length ? " (" + b.problems.join("; ") + ")" : "")).join(""));
    out.replaceChildren(head, el("p", x.decision + (x.until ? " until " + when(x.until) : "")), table, held);
  } catch (e) {
    out.replaceChildren(el("p", e.message, "error"));
  }
}

async function logout() {
  try { await api("POST", "/ui/logout"); } catch (e) { /* the cookie is gone either way */ }
  showLogin();
}

document.addEventListener("DOMContentLoaded", () => {
  $("logout").onclick = logout;
  $("write-form").onsubmit = (ev) => { ev.preventDefault(); write(ev.submitter ? ev.submitter.value : "bans"); };
  $("filters").onsubmit = (ev) => { ev.preventDefault(); loadDecisions(false).catch(problem); };
  $("search").oninput = showDecisions;
  $("more").onclick = () => loadDecisions(true).catch(problem);
  $("explain-form").onsubmit = (ev) => { ev.preventDefault(); explainNow(); };
  start().catch(showLogin);
});
