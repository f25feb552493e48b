// The demo page's inventory rules: snapshot, then events in order as upserts keyed by id.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Inventory, instant } from "./inventory.js";

const T0 = "2026-11-28T01:00:00.100000+00:00";
const T1 = "2026-11-28T01:00:00.100500+00:00"; // 0.5 ms later: same millisecond for Date.parse
const widget = (id, name, quantity, updated_at = T0) => ({ id, name, colour: "blue", quantity, updated_at });
const event = (seq, action, data, epoch = "e1") => ({
  type: "event",
  epoch,
  seq,
  data: { action, widget: data },
});

function loaded() {
  const inventory = new Inventory();
  inventory.load({ epoch: "e1", seq: 4, widgets: [widget(1, "Sprocket", 12), widget(2, "Gizmo", 5)] });
  return inventory;
}

test("events after the snapshot are applied in order as upserts keyed by id", () => {
  const inventory = loaded();
  assert.equal(inventory.apply(event(5, "updated", widget(2, "Gizmo", 6, T1))), true);
  assert.equal(inventory.apply(event(6, "created", widget(3, "Doohickey", 0, T1))), true);
  assert.equal(inventory.apply(event(7, "deleted", widget(1, "Sprocket", 12, T1))), true);
  assert.deepEqual(inventory.sorted().map((w) => [w.name, w.quantity]), [["Doohickey", 0], ["Gizmo", 6]]);
  assert.deepEqual(inventory.applied, ["e1:5", "e1:6", "e1:7"]);
});

test("events the snapshot already holds are skipped", () => {
  const inventory = loaded();
  assert.equal(inventory.apply(event(4, "updated", widget(2, "Gizmo", 99, T1))), false);
  assert.equal(inventory.rows.get(2).quantity, 5);
  assert.deepEqual(inventory.applied, []);
});

test("an update older than the row's updated_at is ignored, to the microsecond", () => {
  const inventory = loaded();
  inventory.apply(event(5, "updated", widget(2, "Gizmo", 7, T1)));
  inventory.apply(event(6, "updated", widget(2, "Gizmo", 1, T0)));
  assert.equal(inventory.rows.get(2).quantity, 7);
  assert.ok(instant(T1) > instant(T0));
  assert.ok(instant("2026-11-28T01:00:01+00:00") > instant(T1)); // isoformat drops a zero fraction
});

test("another epoch is applied (the page refetches the snapshot on the reset it comes with)", () => {
  const inventory = loaded();
  assert.equal(inventory.apply(event(1, "updated", widget(1, "Sprocket", 3, T1), "e2")), true);
  assert.equal(inventory.rows.get(1).quantity, 3);
});

test("events the table cannot show are ignored and leave the rows as they were", () => {
  const inventory = loaded();
  const before = inventory.sorted();
  const broken = [
    { action: "updated", widget: { id: 2, name: null, updated_at: "2999-01-01T00:00:00Z" } },
    { action: "updated", widget: { ...widget(2, "Gizmo", 6), updated_at: "not a time" } },
    { action: "updated", widget: { ...widget(2, "Gizmo", 6), id: "2" } },
    { action: "renamed", widget: widget(2, "Gizmo", 6) },
    { action: "created" },
    "zzz",
    null,
  ];
  broken.forEach((data, i) => {
    assert.equal(inventory.apply({ type: "event", epoch: "e1", seq: 5 + i, data }), false);
  });
  assert.deepEqual(inventory.sorted(), before);
  assert.deepEqual(inventory.applied, []);
});

test("a snapshot row the table cannot show is left out", () => {
  const inventory = new Inventory();
  inventory.load({ epoch: "e1", seq: 1, widgets: [widget(1, "Sprocket", 12), { id: 2, name: null }] });
  assert.deepEqual(inventory.sorted().map((w) => w.id), [1]);
});

test("later pages add rows; events applied meanwhile are kept, deletions are not undone", () => {
  const inventory = loaded();
  inventory.apply(event(5, "updated", widget(600, "Late", 9, T1)));
  inventory.apply(event(6, "deleted", widget(601, "Gone", 1, T1)));
  inventory.add({ epoch: "e1", seq: 5, widgets: [widget(600, "Late", 8), widget(601, "Gone", 1), widget(602, "New", 2)] });
  assert.equal(inventory.rows.get(600).quantity, 9); // the page row is older than the event
  assert.equal(inventory.rows.has(601), false); // read before its deletion
  assert.equal(inventory.rows.get(602).quantity, 2);
  assert.deepEqual(inventory.position, { epoch: "e1", seq: 4 }); // the first page's position
});

test("a new first page starts a new snapshot generation", () => {
  const inventory = loaded();
  const before = inventory.generation;
  inventory.apply(event(5, "deleted", widget(2, "Gizmo", 5, T1)));
  inventory.load({ epoch: "e2", seq: 1, widgets: [widget(2, "Gizmo", 5)], next: null });
  assert.equal(inventory.generation, before + 1);
  assert.equal(inventory.rows.get(2).quantity, 5); // the new snapshot is the truth
});
