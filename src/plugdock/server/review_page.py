"""The reviewer's web page: ``GET /review`` (with ``/review/app.js`` and ``/review/app.css``).

A reviewer signs in with their reviewer token (kept in the tab's ``sessionStorage`` and sent
as ``Authorization: Bearer``, never as a cookie, so no other site can act with it), sees the
queue, opens a version's report and diff, and approves or rejects it.

Everything shown comes from packages (names, descriptions, file names, SQL, code): the
script builds the page with ``textContent`` and ``createElement`` only, never ``innerHTML``,
and the page's Content-Security-Policy allows no inline script and no other origin, so a
package's text is shown as text, never run.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>plugdock review</title>
<link rel="stylesheet" href="/review/app.css">
<script src="/review/app.js" defer></script>
</head>
<body>
<header><h1>plugdock review</h1><span id="who"></span>
<button id="sign-out" type="button" hidden>Sign out</button></header>
<p id="message" role="status"></p>
<section id="sign-in-panel">
  <form id="sign-in-form">
    <label for="token">Reviewer token</label>
    <input id="token" name="token" type="password" autocomplete="off" required>
    <button id="sign-in" type="submit">Sign in</button>
  </form>
</section>
<section id="queue-panel" hidden>
  <h2>Queue</h2>
  <label for="status">Show</label>
  <select id="status">
    <option value="pending" selected>pending</option>
    <option value="approved">approved</option>
    <option value="rejected">rejected</option>
    <option value="all">all</option>
  </select>
  <table id="queue"><thead><tr><th>plugin</th><th>version</th><th>publisher</th>
  <th>uploaded</th><th>signature</th><th>status</th><th></th></tr></thead><tbody></tbody></table>
</section>
<section id="detail-panel" hidden></section>
</body></html>
"""

CSS = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 1.5rem auto; max-width: 72rem;
  padding: 0 1rem; }
header { display: flex; gap: 1rem; align-items: baseline; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
td, th { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
code { background: #f4f4f4; padding: 0 .2rem; }
.added { color: #116611; } .removed { color: #aa1111; }
.sev-HIGH { color: #aa1111; font-weight: bold; } .sev-MEDIUM { color: #aa6600; }
.import { font-weight: bold; color: #aa1111; }
#message:empty { display: none; }
#message { padding: .4rem .6rem; background: #eef; }
textarea { width: 100%; min-height: 4rem; }
.actions { display: flex; gap: 1rem; align-items: flex-start; margin: 1rem 0; }
"""

JS = r"""
"use strict";
// Every string from the server is data: build nodes, set textContent, never innerHTML.
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("plugdock-review-token");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function say(text) { $("message").textContent = text || ""; }

async function api(path, options) {
  const opts = options || {};
  const headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
  const response = await fetch(path, Object.assign({}, opts, { headers }));
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

async function signIn(event) {
  if (event) event.preventDefault();
  const typed = $("token").value.trim();
  if (typed) token = typed;
  if (!token) return;
  try {
    const me = await api("/api/v1/review/whoami");
    sessionStorage.setItem("plugdock-review-token", token);
    $("token").value = "";
    $("who").textContent = "signed in as " + me.name;
    $("sign-in-panel").hidden = true;
    $("queue-panel").hidden = false;
    $("sign-out").hidden = false;
    say("");
    await loadQueue();
  } catch (error) {
    token = null;
    sessionStorage.removeItem("plugdock-review-token");
    say("sign-in failed: " + error.message);
  }
}

function signOut() {
  token = null;
  sessionStorage.removeItem("plugdock-review-token");
  $("who").textContent = "";
  $("sign-in-panel").hidden = false;
  $("queue-panel").hidden = true;
  $("detail-panel").hidden = true;
  $("sign-out").hidden = true;
}

async function loadQueue() {
  const status = $("status").value;
  const data = await api("/api/v1/review/versions?status=" + encodeURIComponent(status));
  const body = $("queue").tBodies[0];
  body.replaceChildren();
  if (!data.versions.length) {
    body.append(el("tr", {}, el("td", { colspan: 7 }, "nothing " + status)));
  }
  for (const v of data.versions) {
    body.append(el("tr", { "data-plugin": v.id, "data-version": v.version },
      el("td", {}, el("code", {}, v.id)), el("td", {}, v.version), el("td", {}, v.publisher),
      el("td", {}, v.published), el("td", {}, v.signed ? "signed by " + v.signer : "unsigned"),
      el("td", {}, v.status || "published"),
      el("td", {}, el("button", { type: "button", onclick: () => openVersion(v.id, v.version) },
        "Open"))));
  }
}

function list(items) {
  if (!items || !items.length) return el("span", {}, "none");
  return el("ul", {}, items.map((item) => el("li", {}, el("code", {}, item))));
}

function changes(title, change) {
  if (!change) return null;
  const rows = [];
  for (const item of change.added || []) rows.push(el("li", { class: "added" }, "+ " + item));
  for (const item of change.removed || []) rows.push(el("li", { class: "removed" }, "- " + item));
  for (const item of change.changed || []) rows.push(el("li", {}, "~ " + item));
  return el("div", { "data-diff": title }, el("h4", {}, title),
    rows.length ? el("ul", {}, rows) : el("span", {}, "no change"));
}

function sqlDiff(entry) {
  const pre = el("pre", {});
  for (const line of entry.diff.split("\n")) {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "added"
      : line.startsWith("-") && !line.startsWith("---") ? "removed" : "";
    pre.append(el("span", cls ? { class: cls } : {}, line + "\n"));
  }
  return el("div", {}, el("h4", {}, entry.path + " (" + entry.status + ")"), pre,
    entry.truncated ? el("p", {}, "(diff truncated)") : null);
}

function scanSection(scan) {
  if (!scan) return el("p", {}, "no scan");
  const head = el("p", {}, scan.tool + ": " + scan.status + ", " + scan.files + " Python files, " +
    Object.entries(scan.counts || {}).map(([k, n]) => n + " " + k.toLowerCase()).join(", ") +
    (scan.detail ? " (" + scan.detail + ")" : ""));
  if (!scan.findings || !scan.findings.length) {
    return el("div", {}, head, el("p", {}, "no findings"));
  }
  const rows = scan.findings.map((f) => el("tr", { class: "finding" },
    el("td", { class: "sev-" + f.severity }, f.severity),
    el("td", { class: f.at_import ? "import" : "" }, f.at_import ? "at import" : "in a function"),
    el("td", {}, el("code", {}, f.file + ":" + f.line)),
    el("td", {}, f.test_id + " " + f.test_name), el("td", {}, f.text),
    el("td", {}, el("pre", {}, f.code))));
  return el("div", {}, head, el("table", { id: "findings" }, el("thead", {}, el("tr", {},
    ["severity", "runs", "where", "test", "issue", "code"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows)), scan.truncated ? el("p", {}, "(more findings not shown)") : null);
}

async function download(id, version) {
  const response = await fetch("/api/v1/review/versions/" + encodeURIComponent(id) + "/" +
    encodeURIComponent(version) + "/package", { headers: { Authorization: "Bearer " + token } });
  if (!response.ok) { say("download failed: HTTP " + response.status); return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: id + "_v" + version + ".zip" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function decide(id, version, verdict) {
  const path = "/api/v1/review/versions/" + encodeURIComponent(id) + "/" +
    encodeURIComponent(version) + "/" + verdict;
  const options = { method: "POST" };
  if (verdict === "reject") {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify({ reason: $("reject-reason").value });
  }
  try {
    const record = await api(path, options);
    say(id + " " + version + " " + record.status +
      (record.approved_by ? " by " + record.approved_by : ""));
    await loadQueue();
    await openVersion(id, version);
  } catch (error) {
    say(verdict + " failed: " + error.message);
  }
}

async function openVersion(id, version) {
  let data;
  try {
    data = await api("/api/v1/review/versions/" + encodeURIComponent(id) + "/" +
      encodeURIComponent(version));
  } catch (error) { say(error.message); return; }
  const r = data.record;
  const report = data.report;
  const panel = $("detail-panel");
  panel.replaceChildren();
  panel.hidden = false;
  panel.append(el("h2", { id: "detail-title" }, id + " " + version),
    el("p", {}, "status: ", el("strong", { id: "detail-status" }, r.status || "published"),
      r.reason ? " — reason: " + r.reason : "",
      r.approved_by ? " — approved by " + r.approved_by + " at " + r.approved : ""),
    el("p", {}, "publisher " + r.publisher + ", uploaded " + r.published + ", sha256 ",
      el("code", {}, r.sha256), ", " + r.size + " bytes, " +
      (r.signed ? "signed by " + r.signer : "unsigned")),
    el("button", { type: "button", onclick: () => download(id, version) }, "Download ZIP"));
  if (r.status === "pending") {
    panel.append(el("div", { class: "actions" },
      el("button", { id: "approve", type: "button", onclick: () => decide(id, version, "approve") },
        "Approve"),
      el("div", {},
        el("label", { for: "reject-reason" }, "Reason for rejecting (the publisher sees it)"),
        el("textarea", { id: "reject-reason" }),
        el("button", { id: "reject", type: "button", onclick: () => decide(id, version, "reject") },
          "Reject"))));
  }
  if (!report) {
    panel.append(el("p", {}, "no automated report (published with review off)"));
  } else {
    const d = report.declared;
    panel.append(el("h3", {}, "Summary"),
      el("p", { id: "summary" },
        report.name + ": " + report.description + " (by " + report.author + ")"),
      el("h3", {}, "Checks the hosts run"), list(report.checks.passed));
    const up = report.checks.upgrade;
    if (up) {
      panel.append(el("p", {}, "upgrade from " + up.from + ": " + (up.ok ? "ok" : "problems")),
        up.ok ? null : list(up.problems));
    }
    panel.append(el("h3", {}, "Declared"),
      el("h4", {}, "permissions"), list(d.permissions),
      el("h4", {}, "backend routes"), list(d.backend_routes),
      el("h4", {}, "pages"), list(d.frontend_routes),
      el("h4", {}, "tables"), list(d.tables),
      el("h4", {}, "dependencies"),
      list(Object.entries(d.dependencies).map(([k, v]) => k + " " + v)),
      el("h3", {}, "Security scan"), scanSection(report.scan));
    const diff = report.diff;
    panel.append(el("h3", {}, diff ? "Changes since " + diff.against : "Changes"));
    if (!diff) {
      panel.append(el("p", {}, "first version under review: nothing to compare"));
    } else {
      panel.append(el("section", { id: "diff" },
        changes("permissions", diff.permissions), changes("tables", diff.tables),
        changes("backend routes", diff.backend_routes), changes("pages", diff.frontend_routes),
        changes("dependencies", diff.dependencies), changes("files", diff.files),
        el("h4", {}, "SQL"),
        diff.sql.length ? diff.sql.map(sqlDiff) : el("p", {}, "no SQL change")));
    }
    panel.append(el("h3", {}, "Files"), el("table", {}, el("tbody", {},
      report.files.map((f) => el("tr", {}, el("td", {}, el("code", {}, f.path)),
        el("td", {}, String(f.size)), el("td", {}, el("code", {}, f.sha256.slice(0, 16))))))));
  }
  panel.append(el("h3", {}, "Audit"), list(data.audit.map((a) =>
    a.at + " " + a.action + " by " + a.who + " (" + a.role + ")" +
    (a.reason ? ": " + a.reason : ""))));
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("status").addEventListener("change", () => loadQueue().catch((e) => say(e.message)));
  if (token) signIn();
});
"""


# Static: the data comes from the API (plugdock.server.review_api).
router = APIRouter(include_in_schema=False)


@router.get("/review", response_class=HTMLResponse)
def review_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=_HEADERS)


@router.get("/review/app.js")
def review_script() -> Response:
    return Response(JS, media_type="text/javascript", headers=_HEADERS)


@router.get("/review/app.css")
def review_style() -> Response:
    return Response(CSS, media_type="text/css", headers=_HEADERS)


__all__ = ["CSP", "router"]
