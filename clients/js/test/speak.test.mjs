// The speak rule (maySpeak) against the table of cases the server's rule is also checked
// against (tests/clients/speak_cases.json, read by tests/clients/test_speak_rule.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { maySpeak } from '../voiceroom.js';

const TABLE = JSON.parse(readFileSync(new URL('../../../tests/clients/speak_cases.json', import.meta.url), 'utf8'));

/** The case as the client holds it after a welcome: you, room, seats. */
function view(c) {
  const seats = [];
  for (let index = 0; index < c.seat_count; index++) {
    seats.push({ index, user_id: index === c.seat ? 1 : null, locked: false, muted: c.muted_seats.includes(index) });
  }
  return {
    you: { user_id: 1, role: 'member', muted: c.muted, self_muted: c.self_muted, seat: c.seat, connected: true },
    room: { id: 1, seat_count: c.seat_count },
    seats,
  };
}

test('maySpeak answers every case of the shared table', () => {
  assert.ok(TABLE.cases.length >= 10);
  const wrong = TABLE.cases.filter((c) => maySpeak(view(c)) !== c.may_speak).map((c) => c.name);
  assert.deepEqual(wrong, []);
});

test('maySpeak says no before the welcome (no you, no room)', () => {
  assert.equal(maySpeak({ you: null, room: null, seats: [] }), false);
  assert.equal(maySpeak({ you: view(TABLE.cases[0]).you, room: null, seats: [] }), false);
});
