// The SDK without a server: frame parsing, the audio payload convention, state merging
// and the reconnect decisions, driven through a scripted transport.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  AUDIO_OPUS,
  AUDIO_PCM16,
  VoiceRoomClient,
  VoiceRoomError,
  decodeAudioPayload,
  encodeAudioPayload,
  float32ToPcm16,
  parseVoiceFrame,
  pcm16ToFloat32,
  roomAudioCodec,
  wxRequestFetch,
} from '../voiceroom.js';
import { P, ScriptedTransport, scriptedClient, serve, welcome } from '../testlib/scripted.mjs';

test('parseVoiceFrame reads the 9-byte big-endian header and keeps the payload', () => {
  const bytes = new Uint8Array([2, 0, 0, 1, 2, 0xff, 0, 0, 7, 9, 8, 7]);
  const frame = parseVoiceFrame(bytes.buffer);
  assert.deepEqual(
    { kind: frame.kind, senderId: frame.senderId, seq: frame.seq, payload: Array.from(frame.payload) },
    { kind: 2, senderId: 258, seq: 0xff000007, payload: [9, 8, 7] },
  );
  assert.equal(parseVoiceFrame(new Uint8Array(8)), null);
});

test('audio payloads carry their codec in the first byte', () => {
  const pcm = float32ToPcm16(new Float32Array([0, 0.5, -0.5, 1, -1]));
  const payload = encodeAudioPayload(AUDIO_PCM16, pcm);
  assert.equal(payload[0], 0x01);
  const { codec, data } = decodeAudioPayload(payload);
  assert.equal(codec, AUDIO_PCM16);
  const back = pcm16ToFloat32(data);
  assert.deepEqual(Array.from(back).map((x) => Math.round(x * 100) / 100), [0, 0.5, -0.5, 1, -1]);
  assert.equal(encodeAudioPayload(AUDIO_OPUS, new Uint8Array([1, 2]))[0], 0x02);
});

test("the room's codec picks the codec byte every client sends", () => {
  assert.equal(roomAudioCodec({ codec: 'opus' }), AUDIO_OPUS);
  assert.equal(roomAudioCodec({ codec: 'pcm16' }), AUDIO_PCM16);
  assert.equal(roomAudioCodec({}), AUDIO_OPUS); // a server older than v1.1
  assert.throws(() => roomAudioCodec({ codec: 'mp3' }), RangeError);
});

test('participants merge by user id through joined, updated, left and a second welcome', async () => {
  const { client, transport } = scriptedClient();
  const connected = client.connect(5, { ticket: 'first' });
  await Promise.resolve();
  assert.match(transport.last.url, /^ws:\/\/server\.invalid\/ws\/rooms\/5\/\?ticket=first$/);
  serve(transport.last, welcome());
  await connected;
  assert.deepEqual([...client.participants.keys()], [1, 2]);

  serve(transport.last, { type: 'participant.joined', participant: P(3) });
  serve(transport.last, { type: 'participant.joined', participant: P(3, { display_name: 'again' }) });
  serve(transport.last, { type: 'participant.updated', participant: P(2, { self_muted: true }) });
  serve(transport.last, { type: 'participant.updated', participant: P(1, { seat: 1 }) });
  serve(transport.last, { type: 'seat.updated', seat: { index: 1, user_id: 1, locked: false, muted: false } });
  assert.deepEqual([...client.participants.keys()], [1, 2, 3]);
  assert.equal(client.participants.get(3).display_name, 'again');
  assert.equal(client.participants.get(2).self_muted, true);
  assert.equal(client.you.seat, 1);
  assert.equal(client.seats[1].user_id, 1);

  serve(transport.last, { type: 'participant.left', user_id: 3, reason: 'left' });
  assert.deepEqual([...client.participants.keys()], [1, 2]);

  serve(transport.last, { type: 'room.updated', room: { id: 5, seat_count: 4 } });
  assert.equal(client.seats.length, 4);
  assert.equal(client.room.name, 'r');
  // Shrinking: the server frees the removed seats after room.updated; they stay removed.
  serve(transport.last, { type: 'room.updated', room: { id: 5, seat_count: 2 } });
  serve(transport.last, { type: 'seat.updated', seat: { index: 3, user_id: null, locked: false, muted: false } });
  assert.equal(client.seats.length, 2);

  // A network loss, then the resume: the welcome replaces the state, nobody is doubled.
  const resumed = client.once('welcome');
  transport.last.onclose({ code: 1006, reason: '' });
  await new Promise((r) => setTimeout(r, 20));
  assert.match(transport.last.url, /\?resume=tok$/);
  serve(transport.last, welcome({ resumed: true, participants: [P(2), P(1, { seat: 1 })] }));
  assert.equal((await resumed).resumed, true);
  assert.deepEqual([...client.participants.keys()].sort(), [1, 2]);
  client.disconnect();
});

test('each resume uses the token of the latest welcome: tokens are single use', async () => {
  const { client, transport, tickets } = scriptedClient();
  const connected = client.connect(5, { ticket: 'first' });
  serve(transport.last, welcome({ session: { resume_token: 'tok1', resume_window_s: 20 } }));
  await connected;
  const tokens = ['tok2', 'tok3', 'tok4'];
  for (const [i, next] of tokens.entries()) {
    const resumed = client.once('welcome');
    transport.last.onclose({ code: 1006, reason: '' });
    await new Promise((r) => setTimeout(r, 20));
    assert.match(transport.last.url, new RegExp(`\\?resume=tok${i + 1}$`));
    serve(transport.last, welcome({ resumed: true, session: { resume_token: next, resume_window_s: 20 } }));
    await resumed;
    assert.equal(client.session.resume_token, next);
  }
  assert.deepEqual(tickets, []); // never needed a ticket
  client.disconnect();
});

test('a refused resume falls back to a fresh ticket at once; final codes stop reconnecting', async () => {
  const { client, transport, tickets } = scriptedClient();
  const connected = client.connect(5, { ticket: 'first' });
  serve(transport.last, welcome());
  await connected;
  client.setVoiceTarget(2);

  const closes = [];
  client.on('close', (e) => closes.push(e));
  transport.last.onclose({ code: 1006, reason: '' });
  await new Promise((r) => setTimeout(r, 20));
  assert.match(transport.last.url, /\?resume=tok$/);
  transport.last.onclose({ code: 4001, reason: '' }); // resume refused
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(tickets, ['http://server.invalid/api/rooms/5/ticket']);
  assert.match(transport.last.url, /\?ticket=t1$/);
  serve(transport.last, welcome({ session: { resume_token: 'tok2', resume_window_s: 20 } }));
  assert.equal(client.state, 'open');
  // The voice target is re-applied on the new socket.
  assert.deepEqual(JSON.parse(transport.last.sent[0]), { type: 'voice.target', to: 2 });

  for (const code of [4000, 4003, 4010, 4011, 4012]) {
    const before = transport.opened.length;
    const c = client.connect(5, { ticket: 'x' });
    serve(transport.last, welcome());
    await c;
    transport.last.onclose({ code, reason: '' });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(transport.opened.length, before + 1, `no reconnect after ${code}`);
    assert.equal(client.state, 'closed');
  }
  assert.deepEqual(closes.map((e) => e.willReconnect), [true, false, false, false, false, false]);
});

test('the backoff doubles, is capped and jittered', async () => {
  const transport = new ScriptedTransport();
  const delays = [];
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    transport,
    heartbeatMs: 0,
    reconnect: { baseDelayMs: 4, maxDelayMs: 16, maxAttempts: 5 },
    random: () => 1,
    fetch: async () => ({ ok: false, status: 503, text: async () => '{"code":"database_unavailable","detail":"x"}' }),
  });
  client.on('reconnecting', (e) => delays.push(e.delayMs));
  const connected = client.connect(5, { ticket: 'first' });
  serve(transport.last, welcome());
  await connected;
  const closed = client.once('close', { where: (e) => !e.willReconnect });
  transport.last.onclose({ code: 1006, reason: '' });
  // Resume attempts fail with 1006; after the window the ticket call answers 503.
  const failer = setInterval(() => {
    const conn = transport.last;
    if (conn.onclose && !conn.failed) {
      conn.failed = true;
      conn.onclose({ code: 1006, reason: '' });
    }
  }, 1);
  await closed;
  clearInterval(failer);
  assert.deepEqual(delays, [4, 8, 16, 16, 16]);
  assert.equal(client.state, 'closed');
});

test('REST errors carry the contract code and status', async () => {
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid/',
    fetch: async (url, init) => {
      assert.equal(url, 'http://server.invalid/api/auth/login');
      assert.equal(init.headers['Content-Type'], 'application/json');
      return { ok: false, status: 400, text: async () => '{"code":"invalid_credentials","detail":"Wrong."}' };
    },
  });
  await assert.rejects(client.login({ username: 'a', password: 'b' }), (err) => {
    assert.ok(err instanceof VoiceRoomError);
    assert.equal(err.code, 'invalid_credentials');
    assert.equal(err.status, 400);
    return true;
  });
});

test('wxRequestFetch adapts wx.request to fetch', async () => {
  const calls = [];
  const wx = {
    request(options) {
      calls.push(options);
      options.success({ statusCode: 201, data: '{"token":"k","user":{"id":1}}' });
    },
  };
  const response = await wxRequestFetch(wx)('https://x/api/auth/register', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{"a":1}',
  });
  assert.equal(response.status, 201);
  assert.equal(response.ok, true);
  assert.deepEqual(await response.json(), { token: 'k', user: { id: 1 } });
  assert.equal(calls[0].method, 'POST');
  assert.equal(calls[0].header['Content-Type'], 'application/json');
  assert.equal(calls[0].data, '{"a":1}');
  const failing = { request: (options) => options.fail({ errMsg: 'request:fail timeout' }) };
  await assert.rejects(wxRequestFetch(failing)('https://x/'), /timeout/);
});

test('a new connect() or disconnect() ends a reconnect loop in progress', async () => {
  const transport = new ScriptedTransport();
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    transport,
    heartbeatMs: 0,
    reconnect: { baseDelayMs: 30, maxDelayMs: 30 },
  });
  let connected = client.connect(5, { ticket: 'a' });
  serve(transport.last, welcome());
  await connected;
  transport.last.onclose({ code: 1006, reason: '' }); // the loop now waits 15-30 ms
  connected = client.connect(5, { ticket: 'b' });
  serve(transport.last, welcome());
  await connected;
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(transport.opened.map((c) => c.url.split('?')[1]), ['ticket=a', 'ticket=b']);
  assert.equal(client.state, 'open');

  transport.last.onclose({ code: 1006, reason: '' });
  client.disconnect();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(transport.opened.length, 2);
  assert.equal(client.state, 'closed');
});

test('the client connects where ws_url says, and after a failed resume follows the room to its new node', async () => {
  const transport = new ScriptedTransport();
  const asked = [];
  let home = 'ws://one.example/node/a/ws/rooms/5/';
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    transport,
    heartbeatMs: 0,
    reconnect: { baseDelayMs: 1, maxDelayMs: 2 },
    fetch: async (url) => {
      asked.push(url);
      const body = { ticket: `t${asked.length}`, ticket_expires_in: 60, ws_url: home };
      return { ok: true, status: 200, text: async () => JSON.stringify(body) };
    },
  });
  const connected = client.connect(5); // asks a ticket: its ws_url is where to go
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(transport.last.url, 'ws://one.example/node/a/ws/rooms/5/?ticket=t1');
  serve(transport.last, welcome());
  await connected;

  // The node dies: the resume at the old place fails, the room moved meanwhile.
  home = 'wss://one.example/node/b/ws/rooms/5/';
  transport.last.onclose({ code: 1006, reason: '' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(transport.last.url, 'ws://one.example/node/a/ws/rooms/5/?resume=tok');
  transport.last.onclose({ code: 1006, reason: '' }); // refused connection: no welcome
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(asked.length, 2); // asked where the room lives
  assert.equal(transport.last.url, 'wss://one.example/node/b/ws/rooms/5/?resume=tok');
  serve(transport.last, welcome({ resumed: true, session: { resume_token: 'tok2', resume_window_s: 20 } }));
  assert.equal(client.state, 'open');

  // A path ws_url is relative to the REST origin (wsBaseUrl).
  home = '/ws/rooms/5/';
  transport.last.onclose({ code: 1006, reason: '' });
  await new Promise((r) => setTimeout(r, 20));
  transport.last.onclose({ code: 1006, reason: '' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(transport.last.url, 'ws://server.invalid/ws/rooms/5/?resume=tok2');
  client.disconnect();
});
