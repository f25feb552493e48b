/**
 * The widgets inventory as the page shows it: the pages of a `list` snapshot, then `widgets` events
 * applied in order as upserts keyed by id, ignoring an update older than the row it would replace.
 *
 * The first page's position is the snapshot's: later pages were read after it, so their rows are
 * at least that new; the events after it bring every row up to date. A row deleted by an event is
 * remembered, so a later page read before the deletion cannot bring it back.
 */

export class Inventory {
  constructor() {
    this.rows = new Map();
    this.deleted = new Set(); // ids deleted by an event since the first page
    this.position = null; // {epoch, seq} the snapshot is consistent with
    this.generation = 0; // bumped by every `load`: pages of an older snapshot are not added
    this.applied = []; // "epoch:seq" of every event applied since the page opened (for tests)
  }

  /** Start again from the first page of `request("widgets", "list")`. */
  load(first) {
    this.rows = new Map();
    this.deleted = new Set();
    this.position = { epoch: first.epoch, seq: first.seq };
    this.generation += 1;
    this.add(first);
  }

  /** Add a later page's rows (an upsert each, unless an event deleted the row or is newer). */
  add(page) {
    for (const widget of page.widgets.filter(isWidget)) {
      if (this.deleted.has(widget.id)) continue;
      const current = this.rows.get(widget.id);
      if (!current || instant(widget.updated_at) >= instant(current.updated_at)) {
        this.rows.set(widget.id, widget);
      }
    }
  }

  /** Apply one `event`; false when the snapshot already holds it or it is not a widget change. */
  apply(event) {
    const at = this.position;
    if (at && event.epoch === at.epoch && event.seq <= at.seq) return false;
    if (!ACTIONS.has(event.data?.action) || !isWidget(event.data.widget)) return false;
    this.applied.push(`${event.epoch}:${event.seq}`);
    const { action, widget } = event.data;
    const current = this.rows.get(widget.id);
    if (action === "deleted") {
      this.rows.delete(widget.id);
      this.deleted.add(widget.id);
    } else if (!current || instant(widget.updated_at) >= instant(current.updated_at)) {
      this.rows.set(widget.id, widget);
    }
    return true;
  }

  /** Rows in the server's order: by name, then id. */
  sorted() {
    return [...this.rows.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
  }
}

const ACTIONS = new Set(["created", "updated", "deleted"]);

/** Whether `widget` is a row the table can show: an id, texts, a quantity, and times or null. */
export function isWidget(widget) {
  if (typeof widget !== "object" || widget === null) return false;
  const { id, name, colour, quantity, updated_at: updated } = widget;
  return (
    Number.isSafeInteger(id) &&
    typeof name === "string" &&
    typeof colour === "string" &&
    typeof quantity === "number" &&
    Number.isFinite(quantity) &&
    (updated == null || (typeof updated === "string" && !Number.isNaN(Date.parse(updated))))
  );
}

/** Microseconds since the epoch of an ISO 8601 time (Date.parse keeps only milliseconds). */
export function instant(iso) {
  if (!iso) return -Infinity;
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? "";
  return Date.parse(iso) * 1000 + Number(fraction.padEnd(6, "0").slice(3, 6));
}
