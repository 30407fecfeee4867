// The mini-program example page (clients/miniprogram/pages/index), run in Node with a
// stand-in `wx` (real sockets, real HTTP) against a real server whose WeChat sign-in
// talks to a local stand-in for jscode2session (tests/clients/conftest.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import vm from 'node:vm';

import { OpusDecoder, OpusEncoder } from '../../miniprogram/lib/opus.js';
import { closeAll, collectVoice, live, newUser, sleep, standInWx, uniqueName, until } from '../testlib/helpers.mjs';

after(closeAll);

let loads = 0;
/** Load the page module as the mini-program runtime would (a fresh module instance each
 * time, as each test is a fresh mini-program), and make one page. */
async function loadPage(wx, baseUrl) {
  let config = null;
  globalThis.wx = wx;
  globalThis.getApp = () => ({ globalData: { baseUrl } });
  globalThis.Page = (c) => {
    config = c;
  };
  loads += 1;
  await import(`../../miniprogram/pages/index/index.js?load=${loads}`);
  const page = { ...config, data: JSON.parse(JSON.stringify(config.data)) };
  page.setData = (patch) => Object.assign(page.data, patch);
  return page;
}

/** A tone as PCM16 little-endian at 16 kHz, `frames` times 20 ms long. */
function tone(frames, hz = 440) {
  const samples = 320 * frames;
  const bytes = new Uint8Array(samples * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples; i++) view.setInt16(i * 2, Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / 16000)), true);
  return bytes;
}

/** Power of `hz` in `samples` (Goertzel), per sample. */
function power(samples, hz, rate = 16000) {
  const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s = x + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / samples.length;
}

const tap = (dataset) => ({ currentTarget: { dataset } });

test('the mini-program page signs in with wx.login, joins a PCM16 room, talks and listens', live, async () => {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('mp'), seat_count: 2, codec: 'pcm16' });
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
  assert.deepEqual(listed, { id: room.id, name: room.name, online: 1, locked: false, codec: 'pcm16' });

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

  // The owner talks: PCM16 frames are scheduled one after the other; an unknown codec is skipped.
  for (let i = 0; i < 3; i++) owner.sendVoice(new Uint8Array([0x01, ...tone(1)]));
  owner.sendVoice(new Uint8Array([0x07, 1, 2, 3]));
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

test('in an Opus room (the default) the page sends 20 ms Opus packets and plays decoded Opus', live, async () => {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('opus'), seat_count: 0 });
  assert.equal(room.codec, 'opus');
  await owner.join(room.id);

  const wx = standInWx();
  wx.loginCode = `code-${uniqueName('openid')}`;
  const page = await loadPage(wx, process.env.VOICEROOM_TEST_URL);
  after(() => page.onUnload());
  await page.onLoad();
  await page.join(tap({ id: room.id }));
  assert.equal(page.data.room.codec, 'Opus');

  // 1 s of 700 Hz goes out as fifty Opus packets, far smaller than PCM16's 640 bytes.
  const heard = collectVoice(owner);
  const pcm = tone(50, 700);
  for (let at = 0; at < pcm.length; at += 1024) wx.recorder.frame(pcm.subarray(at, at + 1024));
  await until(() => heard.length === 50, { what: 'fifty Opus frames from the mini-program' });
  assert.ok(heard.every((f) => f.payload[0] === 0x02 && f.payload.length > 10 && f.payload.length < 200));
  const decoder = new OpusDecoder();
  const decoded = heard.flatMap((f) => Array.from(decoder.decode(f.payload.subarray(1))));
  const tail = decoded.slice(3200); // past the codec's start-up
  assert.ok(power(tail, 700) > 100 * power(tail, 1200), 'the owner decodes the 700 Hz tone');

  // The owner sends 1200 Hz as Opus: the page decodes it and schedules 20 ms buffers.
  const encoder = new OpusEncoder();
  const theirs = tone(25, 1200);
  for (let at = 0; at < theirs.length; at += 640) {
    owner.sendVoice(new Uint8Array([0x02, ...encoder.encode(theirs.subarray(at, at + 640))]));
    // Paced as a speaker talks (the stand-in clock moves with it): the page drops what
    // would play more than 160 ms ahead.
    await sleep(20);
    if (wx.audio) wx.audio.currentTime += 0.02;
  }
  await until(() => wx.audio.played.length === 25, { what: 'twenty-five frames played' });
  assert.ok(wx.audio.played.every((p) => p.samples.length === 320));
  const played = wx.audio.played.slice(5).flatMap((p) => Array.from(p.samples));
  assert.ok(power(played, 1200) > 100 * power(played, 700), 'the page plays the 1200 Hz tone');
  encoder.destroy();
  decoder.destroy();
});

test('the jitter buffer drops silent frames when behind, and every frame 160 ms ahead', live, async () => {
  const owner = await newUser();
  const room = await owner.createRoom({ name: uniqueName('burst'), seat_count: 0, codec: 'pcm16' });
  await owner.join(room.id);
  const wx = standInWx();
  wx.loginCode = `code-${uniqueName('openid')}`;
  const page = await loadPage(wx, process.env.VOICEROOM_TEST_URL);
  after(() => page.onUnload());
  await page.onLoad();
  await page.join(tap({ id: room.id }));
  // A burst of 20 frames (400 ms) at once, as after a stall: the stand-in clock stands
  // still, so 60 ms ahead plus five frames reaches 160 ms and the rest are dropped.
  for (let i = 0; i < 20; i++) owner.sendVoice(new Uint8Array([0x01, ...tone(1)]));
  await until(() => wx.audio.played.length >= 6, { what: 'the burst scheduled' });
  await sleep(300);
  const ahead = wx.audio.played.map((p) => Math.round((p.at - wx.audio.currentTime) * 1000));
  assert.deepEqual(ahead, [60, 80, 100, 120, 140, 160]);

  // 100 ms ahead now: more than a frame over the 60 ms target, so a silent frame is
  // dropped (nobody hears it) and a voiced one is still played.
  wx.audio.currentTime += 0.08;
  owner.sendVoice(new Uint8Array([0x01, ...new Uint8Array(640)]));
  owner.sendVoice(new Uint8Array([0x01, ...tone(1)]));
  await until(() => wx.audio.played.length === 7, { what: 'the voiced frame' });
  await sleep(200);
  assert.equal(wx.audio.played.length, 7);
  assert.equal(Math.round((wx.audio.played[6].at - wx.audio.currentTime) * 1000), 100);
  assert.ok(wx.audio.played[6].samples.some((x) => x !== 0));
});

test("the vendored Opus codec runs without Node's globals, as in a mini-program", () => {
  // No process, require, Buffer, window or document: only what a mini-program's
  // JavaScript has, and CommonJS's module.exports (WeChat's module system gives it).
  const code = readFileSync(new URL('../../miniprogram/vendor/opusscript/opusscript_native_nasm.js', import.meta.url), 'utf8');
  const module = { exports: {} };
  const sandbox = vm.createContext({ module, exports: module.exports, console, setTimeout, clearTimeout });
  vm.runInContext(code, sandbox, { filename: 'opusscript_native_nasm.js' });
  const opus = module.exports();
  const encoder = new opus.OpusScriptHandler(16000, 1, 2048);
  const pcm = opus._malloc(640 * 2);
  const out = opus._malloc(4000);
  const frame = tone(1, 700);
  opus.HEAPU16.set(frame, pcm >> 1); // lib/opus.js's layout: one PCM byte per 16-bit slot
  const length = encoder._encode(pcm, frame.length, out, 320);
  assert.ok(length > 2 && length < 200, `an Opus packet of ${length} bytes`);
});

test('the page creates a private PCM16 room and is in it', live, async () => {
  const wx = standInWx();
  wx.loginCode = `code-${uniqueName('openid')}`;
  const page = await loadPage(wx, process.env.VOICEROOM_TEST_URL);
  after(() => page.onUnload());
  await page.onLoad();
  const name = uniqueName('made');
  const field = (name, value) => ({ currentTarget: { dataset: { field: name } }, detail: { value } });
  page.onNewRoom(field('name', name));
  page.onNewRoom(field('seats', '3'));
  page.onNewRoom(field('password', 'pw-for-the-room'));
  page.onNewRoom(field('pcm16', ['pcm16'])); // a checkbox-group's value: the checked boxes
  await page.createRoom();
  assert.equal(page.data.room.name, name);
  assert.equal(page.data.room.codec, 'PCM16');
  assert.deepEqual(page.data.newRoom, { name: '', seats: '8', password: '', pcm16: false });

  // Someone else sees it private, in PCM16, with its creator in it; the password works.
  const other = await newUser();
  const listed = (await other.listRooms({ status: 'open' })).results.find((r) => r.name === name);
  assert.deepEqual([listed.is_private, listed.codec, listed.seat_count, listed.online_count], [true, 'pcm16', 3, 1]);
  await assert.rejects(other.join(listed.id, { password: 'wrong-password' }), (err) => err.code === 'bad_password');
  await other.join(listed.id, { password: 'pw-for-the-room' });
  assert.equal(other.room.codec, 'pcm16');
});
