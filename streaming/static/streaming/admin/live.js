// Live admin pages without a reload: change lists poll their live.json every 2 s and replace their
// rows (keeping what is ticked) and the counts around them. The load dashboard has dashboard.js.
"use strict";

(function () {
  const CHANGELIST_SECONDS = 2;

  function stamp(target) {
    let note = document.getElementById("streaming-live-stamp");
    if (!note) {
      note = document.createElement("p");
      note.id = "streaming-live-stamp";
      note.className = "help";
      target.parentNode.insertBefore(note, target);
    }
    note.textContent = "Live: updated " + new Date().toLocaleTimeString();
  }

  function rowKey(tr) {
    const box = tr.querySelector("input.action-select");
    return box ? box.value : tr.dataset.pk;
  }

  function applyRows(table, data) {
    const tbody = table.tBodies[0];
    const current = new Map(Array.from(tbody.rows, (tr) => [rowKey(tr), tr]));
    const rows = data.rows.map((row) => {
      const fresh = document.createElement("tr");
      fresh.innerHTML = row.cells.join("");
      fresh.dataset.pk = row.pk;
      const old = current.get(row.pk);
      if (!old) return fresh;
      // Keep the old checkbox cell (its listeners and tick); take every other cell from the server.
      Array.from(fresh.cells).slice(1).forEach((cell, i) => old.cells[i + 1].replaceWith(cell));
      return old;
    });
    tbody.replaceChildren(...rows);
    updateCounters(table, data);
  }

  // The counts around the table (paginator, "0 of N selected", "N results") follow its rows.
  function updateCounters(table, data) {
    const paginator = document.querySelector("#changelist .paginator");
    if (paginator && data.paginator) paginator.outerHTML = data.paginator;
    const counter = document.querySelector(".action-counter");
    if (counter) {
      const ticked = table.querySelectorAll("tbody input.action-select:checked").length;
      counter.dataset.actionsIcnt = String(data.rows.length);
      counter.textContent = ticked + " of " + data.rows.length + " selected";
    }
    const summary = document.querySelector("#changelist-search .quiet");
    const first = summary && summary.firstChild;
    if (first && first.nodeType === Node.TEXT_NODE) {
      first.textContent = data.count + (data.count === 1 ? " result (" : " results (");
    }
  }

  function pollChangelist(changelist) {
    const url = new URL("live.json", window.location.href);
    url.search = window.location.search;
    const tick = () => {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
        .then((data) => {
          const table = document.getElementById("result_list");
          if (table) {
            applyRows(table, data);
            stamp(changelist);
          } else if (data.rows.length) {
            window.location.reload(); // the list was empty: let the admin draw the table once
          }
        })
        .catch(() => {})
        .finally(() => window.setTimeout(tick, CHANGELIST_SECONDS * 1000));
    };
    window.setTimeout(tick, CHANGELIST_SECONDS * 1000);
  }

  function start() {
    const changelist = document.getElementById("changelist");
    if (changelist && /\/$/.test(window.location.pathname)) pollChangelist(changelist);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
