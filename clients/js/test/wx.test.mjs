// The mini-program path: WxSocketTransport and wxRequestFetch driven through a stand-in
// `wx` object whose connectSocket is a real `ws` WebSocket (so the Authorization header
// really goes over the handshake) and whose request is Node's fetch.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { VoiceRoomClient, WxSocketTransport, wxRequestFetch } from '../voiceroom.js';
import { BASE, PASSWORD, closeAll, collectVoice, live, newUser, standInWx, uniqueName, until } from '../testlib/helpers.mjs';

after(closeAll);

test('a mini-program client over wx: sign-in, join, voice both ways, resume, fallback', live, async () => {
  const wx = standInWx();
  const client = new VoiceRoomClient({
    baseUrl: BASE,
    fetch: wxRequestFetch(wx),
    transport: new WxSocketTransport({ wx }),
    reconnect: { baseDelayMs: 50, maxDelayMs: 400 },
    heartbeatMs: 0,
  });
  after(() => client.disconnect());
  const username = uniqueName('wx');
  await client.register({ username, password: PASSWORD });
  assert.equal(wx.requests[0].method, 'POST');

  const browser = await newUser();
  const room = await browser.createRoom({ name: uniqueName('room'), seat_count: 0 });
  await browser.join(room.id);
  const joined = browser.once('participant.joined', { timeoutMs: 5000 });
  const welcome = await client.join(room.id);
  await joined;
  assert.equal(welcome.you.user_id, client.user.id);
  const first = wx.sockets[0].options;
  assert.match(first.url, /\/ws\/rooms\/\d+\/\?ticket=/);
  assert.equal(first.header.Authorization, `Token ${client.token}`);

  // Voice both ways: ArrayBuffers out, parsed frames in.
  const heardByBrowser = collectVoice(browser);
  const heardByWx = collectVoice(client);
  const pcm = new Uint8Array(641).fill(3);
  pcm[0] = 0x01;
  client.sendVoice(pcm);
  browser.sendVoice(new Uint8Array([0x02, 9, 9]));
  await until(() => heardByBrowser.length === 1 && heardByWx.length === 1, { what: 'voice both ways' });
  assert.deepEqual([heardByBrowser[0].senderId, heardByBrowser[0].payload.length], [client.user.id, 641]);
  assert.deepEqual([heardByWx[0].senderId, Array.from(heardByWx[0].payload)], [browser.user.id, [2, 9, 9]]);

  const chat = client.once('chat', { timeoutMs: 5000 });
  browser.chat('hi wx');
  assert.equal((await chat).text, 'hi wx');

  // Network loss: the socket task dies; the client resumes with its token and header.
  let resumed = client.once('welcome', { timeoutMs: 8000 });
  client.connection.raw.ws.terminate();
  assert.equal((await resumed).resumed, true);
  assert.match(wx.sockets[1].options.url, /\?resume=/);
  assert.equal(wx.sockets[1].options.header.Authorization, `Token ${client.token}`);

  // A refused resume token: a fresh ticket through wx.request, then a new socket.
  client.session.resume_token = 'stale';
  resumed = client.once('welcome', { timeoutMs: 8000 });
  client.connection.raw.ws.terminate();
  assert.equal((await resumed).resumed, false);
  const urls = wx.sockets.map((s) => s.options.url.replace(/=.*$/, '='));
  assert.deepEqual(urls.slice(2).map((u) => u.split('?')[1]), ['resume=', 'ticket=']);
  assert.ok(wx.requests.some((r) => r.url.endsWith(`/api/rooms/${room.id}/ticket`)));
  await until(() => browser.participants.get(client.user.id)?.connected, { what: 'back' });
  assert.equal(browser.participants.size, 2);
  assert.equal(client.participants.size, 2);

  // The Token header alone is enough credentials for a member.
  const headerOnly = new VoiceRoomClient({ baseUrl: BASE, fetch: wxRequestFetch(wx), transport: new WxSocketTransport({ wx }), token: client.token, heartbeatMs: 0 });
  after(() => headerOnly.disconnect());
  const replaced = client.once('close', { timeoutMs: 5000 });
  await headerOnly.connect(room.id);
  assert.match(wx.sockets[wx.sockets.length - 1].options.url, /\/ws\/rooms\/\d+\/$/);
  assert.equal((await replaced).code, 4012);
});
