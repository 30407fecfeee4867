// Seat requests and mute all (docs/protocol.md section 4.5): the frames the socket calls
// send, the requests the REST calls make, and the queue the client keeps from events.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { VoiceRoomClient, VoiceRoomError } from '../voiceroom.js';
import { P, scriptedClient, serve, welcome } from '../testlib/scripted.mjs';

async function openClient() {
  const { client, transport } = scriptedClient();
  const connected = client.connect(5, { ticket: 'first' });
  serve(transport.last, welcome({ you: P(1, { role: 'owner' }) }));
  await connected;
  return { client, conn: transport.last };
}

const sentFrames = (conn) => conn.sent.map((data) => JSON.parse(data));

test('seat request calls send the seat.request frames', async () => {
  const { client, conn } = await openClient();
  client.requestSeat();
  client.requestSeat(2);
  client.requestSeat(null);
  client.cancelSeatRequest();
  client.acceptSeatRequest(7);
  client.acceptSeatRequest(7, 0);
  client.refuseSeatRequest(8);
  assert.deepEqual(sentFrames(conn), [
    { type: 'seat.request' },
    { type: 'seat.request', index: 2 },
    { type: 'seat.request' },
    { type: 'seat.request.cancel' },
    { type: 'seat.request.accept', user_id: 7 },
    { type: 'seat.request.accept', user_id: 7, index: 0 },
    { type: 'seat.request.refuse', user_id: 8 },
  ]);
  client.disconnect();
});

test('muteAll sends moderate mute_all / unmute_all, with no user_id', async () => {
  const { client, conn } = await openClient();
  client.muteAll(true);
  client.muteAll(false);
  client.moderate('mute', 2);
  assert.deepEqual(sentFrames(conn), [
    { type: 'moderate', action: 'mute_all' },
    { type: 'moderate', action: 'unmute_all' },
    { type: 'moderate', action: 'mute', user_id: 2 },
  ]);
  client.disconnect();
});

test('the socket calls refuse to send while not connected', () => {
  const { client } = scriptedClient();
  for (const call of [() => client.requestSeat(1), () => client.cancelSeatRequest(), () => client.muteAll(true)]) {
    assert.throws(call, (err) => err instanceof VoiceRoomError && err.code === 'not_connected');
  }
});

test('the REST calls for seat requests and mute all', async () => {
  const calls = [];
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    token: 'k',
    fetch: async (url, init) => {
      calls.push([init.method, url.replace('http://server.invalid', ''), init.body === undefined ? undefined : JSON.parse(init.body)]);
      assert.equal(init.headers.Authorization, 'Token k');
      return { ok: true, status: 200, text: async () => '[]' };
    },
  });
  await client.listSeatRequests(3);
  await client.createSeatRequest(3);
  await client.createSeatRequest(3, 1);
  await client.deleteSeatRequest(3);
  await client.resolveSeatRequest(3, 7, true);
  await client.resolveSeatRequest(3, 7, true, 2);
  await client.resolveSeatRequest(3, 8, false);
  await client.muteAllMembers(3, true);
  await client.muteAllMembers(3, false);
  assert.deepEqual(calls, [
    ['GET', '/api/rooms/3/seat-requests', undefined],
    ['POST', '/api/rooms/3/seat-requests', {}],
    ['POST', '/api/rooms/3/seat-requests', { index: 1 }],
    ['DELETE', '/api/rooms/3/seat-requests', undefined],
    ['POST', '/api/rooms/3/seat-requests/7/accept', {}],
    ['POST', '/api/rooms/3/seat-requests/7/accept', { index: 2 }],
    ['POST', '/api/rooms/3/seat-requests/8/refuse', undefined],
    ['POST', '/api/rooms/3/mute-all', { muted: true }],
    ['POST', '/api/rooms/3/mute-all', { muted: false }],
  ]);
});

test('reportMember posts the report with its reason', async () => {
  const calls = [];
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    token: 'k',
    fetch: async (url, init) => {
      calls.push([init.method, url.replace('http://server.invalid', ''), JSON.parse(init.body)]);
      return { ok: true, status: 201, text: async () => '{"id": 9, "evidence_seconds": 4.2}' };
    },
  });
  const report = await client.reportMember(3, 7, 'shouting');
  assert.deepEqual(calls, [['POST', '/api/rooms/3/reports', { user_id: 7, reason: 'shouting' }]]);
  assert.equal(report.evidence_seconds, 4.2);
});

test('the client keeps the seat-request queue from welcome and events', async () => {
  const { client, transport } = scriptedClient();
  const queues = [];
  client.on('seatRequests', ({ seatRequests }) => queues.push(seatRequests.map((r) => r.user_id)));
  const connected = client.connect(5, { ticket: 'first' });
  const pending = { user_id: 2, index: null, ts: '2026-11-28T10:01:13.515Z' };
  serve(transport.last, welcome({ seat_requests: [pending] }));
  await connected;
  assert.deepEqual(client.seatRequests, [pending]);

  serve(transport.last, { type: 'seat.requested', request: { user_id: 3, index: 1, ts: 't' } });
  serve(transport.last, { type: 'seat.requested', request: { user_id: 2, index: 0, ts: 't2' } }); // replaces 2's
  assert.deepEqual(client.seatRequests.map((r) => [r.user_id, r.index]), [[3, 1], [2, 0]]);
  serve(transport.last, { type: 'seat.request.resolved', user_id: 3, accepted: true, index: 1 });
  serve(transport.last, { type: 'seat.request.cancelled', user_id: 2, reason: 'cancelled' });
  assert.deepEqual(client.seatRequests, []);
  assert.deepEqual(queues, [[2], [2, 3], [3, 2], [2], []]);
  client.disconnect();
});

test('client.maySpeak() follows the events, and is false once the socket is closed', async () => {
  const { client, conn } = await openClient();
  assert.equal(client.maySpeak(), false); // seats in this room, not seated
  serve(conn, { type: 'participant.updated', participant: P(1, { role: 'owner', seat: 0 }) });
  assert.equal(client.maySpeak(), true);
  serve(conn, { type: 'seat.updated', seat: { index: 0, user_id: 1, locked: false, muted: true } });
  assert.equal(client.maySpeak(), false);
  serve(conn, { type: 'seat.updated', seat: { index: 0, user_id: 1, locked: false, muted: false } });
  assert.equal(client.maySpeak(), true);
  client.disconnect();
  assert.equal(client.maySpeak(), false);
});
