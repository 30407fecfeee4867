// The mini-program example page (clients/miniprogram/pages/index), run in Node with a
// stand-in `wx` (real sockets, real HTTP) against a real server whose WeChat sign-in
// talks to a local stand-in for jscode2session (tests/clients/conftest.py).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { closeAll, collectVoice, live, newUser, sleep, standInWx, uniqueName, until } from '../testlib/helpers.mjs';

after(closeAll);

/** Load the page module as the mini-program runtime would, and make one page. */
async function loadPage(wx, baseUrl) {
  let config = null;
  globalThis.wx = wx;
  globalThis.getApp = () => ({ globalData: { baseUrl } });
  globalThis.Page = (c) => {
    config = c;
  };
  await import('../../miniprogram/pages/index/index.js');
  const page = { ...config, data: JSON.parse(JSON.stringify(config.data)) };
  page.setData = (patch) => Object.assign(page.data, patch);
  return page;
}

/** 20 ms of a 440 Hz tone as PCM16 little-endian, `count` frames long. */
function tone(frames) {
  const samples = 320 * frames;
  const bytes = new Uint8Array(samples * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples; i++) view.setInt16(i * 2, Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), true);
  return bytes;
}

const tap = (dataset) => ({ currentTarget: { dataset } });

test('the mini-program page signs in with wx.login, joins, talks and listens', live, async () => {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('mp'), seat_count: 2 });
  await owner.join(room.id);
  owner.takeSeat(1);

  const wx = standInWx();
  wx.loginCode = `code-${uniqueName('openid')}`;
  const page = await loadPage(wx, process.env.VOICEROOM_TEST_URL);
  after(() => page.onUnload());
  await page.onLoad();
  assert.equal(page.data.signedIn, true, page.data.status);
  assert.ok(wx.requests[0].url.endsWith('/api/auth/wechat'));
  const listed = page.data.rooms.find((r) => r.id === room.id);
  assert.deepEqual(listed, { id: room.id, name: room.name, online: 1 });

  const joined = owner.once('participant.joined', { timeoutMs: 5000 });
  await page.join(tap({ id: room.id }));
  const me = (await joined).participant.user_id;
  assert.equal(page.data.room.name, room.name);
  assert.equal(wx.sockets[0].options.header.Authorization.startsWith('Token '), true);
  assert.deepEqual(
    (({ format, sampleRate, numberOfChannels }) => ({ format, sampleRate, numberOfChannels }))(wx.recorder.starts[0]),
    { format: 'PCM', sampleRate: 16000, numberOfChannels: 1 },
  );

  // Not seated yet: recorded audio is not sent. Then a seat, and 20 ms frames go out.
  const heard = collectVoice(owner);
  wx.recorder.frame(tone(2));
  await sleep(200);
  assert.equal(heard.length, 0);
  const seated = owner.once('seat.updated', { timeoutMs: 5000, where: (e) => e.seat.user_id === me });
  page.tapSeat(tap({ index: 0 }));
  await seated;
  await until(() => page.data.seats[0].mine && page.data.people.find((p) => p.user_id === me).note === 'seat 1', {
    what: 'the page sees its seat',
  });
  const pcm = tone(5); // 100 ms, recorded in uneven chunks as RecorderManager does
  wx.recorder.frame(pcm.subarray(0, 1024));
  wx.recorder.frame(pcm.subarray(1024, 2048));
  wx.recorder.frame(pcm.subarray(2048));
  await until(() => heard.length === 5, { what: 'five frames from the mini-program' });
  assert.deepEqual(heard.map((f) => [f.senderId, f.payload.length, f.payload[0]]), Array(5).fill([me, 641, 0x01]));
  const sent = new Uint8Array(heard.flatMap((f) => Array.from(f.payload.subarray(1))));
  assert.deepEqual(sent, pcm);

  // The owner talks: PCM16 frames are scheduled one after the other; Opus is skipped.
  for (let i = 0; i < 3; i++) owner.sendVoice(new Uint8Array([0x01, ...tone(1)]));
  owner.sendVoice(new Uint8Array([0x02, 1, 2, 3]));
  await until(() => wx.audio.played.length === 3, { what: 'three frames played' });
  await sleep(100);
  assert.equal(wx.audio.played.length, 3);
  const starts = wx.audio.played.map((p) => p.at);
  assert.ok(starts[0] > wx.audio.currentTime, 'scheduled ahead of now');
  assert.deepEqual(starts.map((t) => Math.round((t - starts[0]) * 1000)), [0, 20, 40]);
  assert.ok(wx.audio.played.every((p) => p.connected && p.samples.length === 320));
  page.render();
  assert.equal(page.data.people.find((p) => p.user_id === owner.user.id).speaking, true);
  assert.equal(page.data.seats[1].speaking, true);

  const chat = owner.once('chat', { timeoutMs: 5000 });
  page.onDraft({ detail: { value: 'hello from wx' } });
  page.sendChat();
  assert.equal((await chat).text, 'hello from wx');
  await until(() => page.data.messages.some((m) => m.text.endsWith('hello from wx')), { what: 'own chat' });

  // Muted: the server is told, and nothing more is sent.
  const muted = owner.once('participant.updated', { timeoutMs: 5000, where: (e) => e.participant.self_muted });
  page.toggleMute();
  await muted;
  wx.recorder.frame(tone(3));
  await sleep(300);
  assert.equal(heard.length, 5);

  const left = owner.once('participant.left', { timeoutMs: 5000 });
  await page.leave();
  assert.equal((await left).reason, 'left');
  assert.equal(page.data.room, null);
  assert.equal(wx.recorder.recording, false);
  assert.equal(wx.audio.closed, true);
});
