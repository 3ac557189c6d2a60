"""The search page at ``/``: plain HTML and JavaScript (fetch to /search), no build step.

With "side by side" ticked, one query goes to /compare and each system the server offers (BM25, the
student, the re-ranker, the teacher) gets a column with its own latency; unticked, the page shows the
single /search list as before; "hybrid" asks /search for ``mode: "hybrid"`` (BM25 and the student fused,
on a server started with --bm25)."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>retrodistill search</title>
<link rel="icon" href="data:,">
<style>
  body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; }
  #q { flex: 1 1 20rem; font-size: 1.1rem; padding: .4rem; }
  input, button { font-size: 1rem; padding: .4rem; }
  #k { width: 4rem; }
  #status { color: #555; margin: .8rem 0; min-height: 1.2rem; }
  #status.error { color: #b00020; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; vertical-align: top; padding: .4rem; border-bottom: 1px solid #ddd; }
  td.score, td.rank { white-space: nowrap; font-variant-numeric: tabular-nums; }
  .title { font-weight: 600; }
  .docid { color: #666; font-family: monospace; }
  .snippet { color: #333; font-size: .92rem; }
  body.wide { max-width: none; }
  #columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 1rem; }
  #columns[hidden] { display: none; }
  .column h2 { font-size: 1.05rem; margin: 0 0 .2rem; }
  .column .latency { color: #555; margin: 0 0 .5rem; font-variant-numeric: tabular-nums; }
  .column ol { padding-left: 1.6rem; margin: 0; }
  .column li { padding: .3rem 0; border-bottom: 1px solid #ddd; }
  .column .score { color: #555; font-size: .85rem; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>retrodistill search</h1>
<form id="search-form">
  <input id="q" name="q" type="search" placeholder="Type a query" autocomplete="off" required autofocus>
  <label>k <input id="k" name="k" type="number" min="1" value="10"></label>
  <label><input id="rerank" type="checkbox"> re-rank</label>
  <label><input id="hybrid" type="checkbox"> hybrid</label>
  <label><input id="compare" type="checkbox"> side by side</label>
  <input id="key" type="password" placeholder="API key (if needed)" autocomplete="off">
  <button id="go" type="submit">Search</button>
</form>
<div id="status" role="status"></div>
<table id="results" hidden>
  <thead><tr><th>#</th><th>document</th><th>score</th></tr></thead>
  <tbody></tbody>
</table>
<div id="columns" hidden></div>
<script>
const form = document.getElementById("search-form");
const statusBox = document.getElementById("status");
const table = document.getElementById("results");
const body = table.querySelector("tbody");
const columnsBox = document.getElementById("columns");
const keyBox = document.getElementById("key");
keyBox.value = sessionStorage.getItem("retrodistill-key") || "";

function cell(row, className, text) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function block(className, text) {
  const div = document.createElement("div");
  div.className = className;
  div.textContent = text;
  return div;
}

function showColumns(data, roundTrip) {
  columnsBox.replaceChildren();
  for (const column of data.columns) {
    const section = document.createElement("section");
    section.className = "column";
    section.dataset.system = column.system;
    const heading = document.createElement("h2");
    heading.textContent = column.label;
    const latency = block("latency", column.latency_ms.toFixed(1) + " ms");
    latency.dataset.latencyMs = String(column.latency_ms);
    const list = document.createElement("ol");
    for (const hit of column.hits) {
      const item = document.createElement("li");
      item.className = "result";
      item.dataset.docId = hit.doc_id;
      item.append(block("title", hit.title || "(untitled)"), block("docid", hit.doc_id),
        block("score", "score " + hit.score.toFixed(4)));
      list.appendChild(item);
    }
    section.append(heading, latency, list);
    columnsBox.appendChild(section);
  }
  document.body.classList.add("wide");
  table.hidden = true; columnsBox.hidden = false;
  statusBox.textContent = data.columns.length + " systems in " + data.latency_ms.toFixed(1) + " ms (server), "
    + roundTrip.toFixed(1) + " ms round trip";
  statusBox.dataset.latencyMs = String(data.latency_ms);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = document.getElementById("q").value;
  const k = parseInt(document.getElementById("k").value, 10) || 10;
  const rerank = document.getElementById("rerank").checked;
  const compare = document.getElementById("compare").checked;
  const hybrid = document.getElementById("hybrid").checked;
  const headers = {"Content-Type": "application/json"};
  if (keyBox.value) { headers["X-API-Key"] = keyBox.value; sessionStorage.setItem("retrodistill-key", keyBox.value); }
  statusBox.className = ""; statusBox.textContent = "searching…"; delete statusBox.dataset.mode;
  const started = performance.now();
  const single = hybrid ? {query, k, rerank, mode: "hybrid"} : {query, k, rerank};
  const [path, payload] = compare ? ["/compare", {query, k}] : ["/search", single];
  let response, data;
  try {
    response = await fetch(path, {method: "POST", headers, body: JSON.stringify(payload)});
    data = await response.json();
  } catch (err) {
    statusBox.className = "error"; statusBox.textContent = "request failed: " + err; return;
  }
  const roundTrip = performance.now() - started;
  if (!response.ok) {
    statusBox.className = "error";
    statusBox.textContent = "error " + response.status + ": " + (data.error || JSON.stringify(data));
    table.hidden = true; columnsBox.hidden = true; return;
  }
  if (compare) { showColumns(data, roundTrip); return; }
  document.body.classList.remove("wide");
  columnsBox.hidden = true;
  body.replaceChildren();
  const hits = data.results[0].hits;
  for (const hit of hits) {
    const row = document.createElement("tr");
    row.className = "result";
    row.dataset.docId = hit.doc_id;
    cell(row, "rank", String(hit.rank));
    const doc = cell(row, "doc", "");
    doc.append(block("title", hit.title || "(untitled)"), block("docid", hit.doc_id), block("snippet", hit.snippet));
    cell(row, "score", hit.score.toFixed(4));
    body.appendChild(row);
  }
  table.hidden = false;
  statusBox.textContent = hits.length + " results in " + data.latency_ms.toFixed(1) + " ms (server), "
    + roundTrip.toFixed(1) + " ms round trip" + (hybrid ? ", hybrid" : "") + (data.reranked ? ", re-ranked" : "");
  statusBox.dataset.mode = hybrid ? "hybrid" : "dense";
  statusBox.dataset.latencyMs = String(data.latency_ms);
});
</script>
</body>
</html>
"""
