// The mini-program example page (clients/miniprogram/pages/index) as one peer of
// tests/clients/test_mixed_room.py: the page's own code, run in Node with a stand-in `wx`
// whose RecorderManager is fed a generated tone in real time and whose WebAudioContext
// keeps what the page schedules, on a clock that runs with the wall clock.
//
// Driven by JSON lines on stdin ({"id", "cmd", ...}); answers one JSON line per command
// on stdout ({"id", "ok", ...} or {"id", "error"}). Times are epoch milliseconds
// (performance.timeOrigin + performance.now(), as the browser's are).
import { createInterface } from 'node:readline';

import { standInWx } from '../../clients/js/testlib/helpers.mjs';

const RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms
const SILENCE = 0.01;
const now = () => performance.timeOrigin + performance.now();

const wx = standInWx();
wx.loginCode = 'no-wechat-here'; // the node has no WeChat app: the page falls back to dev sign-in

// The sizes of the voice frames the page sends (binary socket messages).
const sentSizes = [];
const connectSocket = wx.connectSocket;
wx.connectSocket = (options) => {
  const task = connectSocket(options);
  const send = task.send;
  task.send = (message) => {
    if (message.data instanceof ArrayBuffer) sentSizes.push(message.data.byteLength);
    return send(message);
  };
  return task;
};

/** WebAudioContext on the wall clock: context time t is epoch ms t * 1000. */
wx.createWebAudioContext = () => {
  const audio = {
    get currentTime() {
      return now() / 1000;
    },
    destination: {},
    played: [],
    closed: false,
    createBuffer(channels, length, sampleRate) {
      const data = new Float32Array(length);
      return { numberOfChannels: channels, length, sampleRate, duration: length / sampleRate, getChannelData: () => data };
    },
    createBufferSource() {
      const source = {
        buffer: null,
        connect(node) {
          source.connected = node;
        },
        start(at) {
          const samples = source.buffer.getChannelData(0);
          audio.played.push({ at: at * 1000, arrived: now(), samples, rate: source.buffer.sampleRate, connected: source.connected === audio.destination });
        },
      };
      return source;
    },
    close() {
      audio.closed = true;
    },
  };
  wx.audio = audio;
  return audio;
};

// -- the microphone: a tone (or silence) fed in 20 ms frames, in real time --------------
const mic = { hz: 0, burstMs: 0, phase: 0, started: 0, fed: 0, onsets: [], wasQuiet: true, timer: null };

function micFrame() {
  const bytes = new Uint8Array(FRAME_SAMPLES * 2);
  const view = new DataView(bytes.buffer);
  const t = (mic.fed * FRAME_SAMPLES) / RATE; // seconds since the tone was set
  // Bursts (burstMs on, burstMs off) give onsets to time; 0 means a steady tone.
  const on = mic.hz > 0 && (!mic.burstMs || Math.floor((t * 1000) / mic.burstMs) % 2 === 0);
  for (let i = 0; i < FRAME_SAMPLES; i++) {
    const value = on ? Math.round(8000 * Math.sin(mic.phase)) : 0;
    mic.phase += (2 * Math.PI * mic.hz) / RATE;
    view.setInt16(i * 2, value, true);
  }
  return { bytes, on };
}

// How late the 5 ms feeding timer fires: the peer's event loop delay, which delays its
// sends and the handling of what it receives alike.
const lateMs = [];
let lastTick = 0;

function feedDue() {
  const tick = now();
  if (lastTick) lateMs.push(tick - lastTick - 5);
  lastTick = tick;
  if (!mic.started || !wx.recorder || !wx.recorder.recording) return;
  const due = Math.floor((now() - mic.started) / 20);
  while (mic.fed < due) {
    const { bytes, on } = micFrame();
    mic.fed += 1;
    // RecorderManager hands a frame over once it is recorded: its first sample was
    // captured 20 ms before this moment.
    if (on && mic.wasQuiet) mic.onsets.push(now() - 20);
    mic.wasQuiet = !on;
    wx.recorder.frame(bytes);
  }
}

// -- analysis of what the page played -----------------------------------------------
function goertzel(samples, hz, rate) {
  const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return samples.length ? (s1 * s1 + s2 * s2 - k * s1 * s2) / samples.length : 0;
}

function heard({ since, until = Infinity, hz = [] }) {
  const played = (wx.audio ? wx.audio.played : []).filter((p) => p.at >= since && p.at < until);
  const all = new Float32Array(played.reduce((n, p) => n + p.samples.length, 0));
  let offset = 0;
  for (const p of played) {
    all.set(p.samples, offset);
    offset += p.samples.length;
  }
  let energy = 0;
  for (const x of all) energy += x * x;
  const nonSilent = played.filter((p) => rms(p.samples) > SILENCE).length;
  return {
    frames: played.length,
    nonSilent,
    rms: all.length ? Math.sqrt(energy / all.length) : 0,
    power: Object.fromEntries(hz.map((f) => [f, goertzel(all, f, RATE)])),
  };
}

function rms(samples) {
  let e = 0;
  for (const x of samples) e += x * x;
  return samples.length ? Math.sqrt(e / samples.length) : 0;
}

/** Where played sound starts after silence: when it plays, and how long its frame waited
 * between arriving and playing (the jitter buffer's share). */
function playOnsets() {
  const out = [];
  let lastEnd = -Infinity;
  let quiet = true;
  for (const p of wx.audio ? wx.audio.played : []) {
    if (p.at - lastEnd > 30) quiet = true; // a gap in what was scheduled is silence
    lastEnd = p.at + (p.samples.length / p.rate) * 1000;
    const loud = p.samples.findIndex((x) => Math.abs(x) > SILENCE * 2);
    if (loud >= 0 && quiet) out.push({ at: p.at + (loud / p.rate) * 1000, waitedMs: p.at - p.arrived });
    quiet = rms(p.samples) <= SILENCE;
  }
  return out;
}

// -- the page ----------------------------------------------------------------------
let page = null;
const tap = (dataset) => ({ currentTarget: { dataset } });

async function load(baseUrl) {
  let config = null;
  globalThis.wx = wx;
  globalThis.getApp = () => ({ globalData: { baseUrl } });
  globalThis.Page = (c) => {
    config = c;
  };
  await import('../../clients/miniprogram/pages/index/index.js');
  page = { ...config, data: JSON.parse(JSON.stringify(config.data)) };
  page.setData = (patch) => Object.assign(page.data, patch);
}

const commands = {
  async login({ url, username, password }) {
    await load(url);
    await page.onLoad();
    const offered = page.data.devSignIn;
    if (offered) {
      page.onUsername({ detail: { value: username } });
      page.onPassword({ detail: { value: password } });
      await page.devSignIn();
    }
    return { signedIn: page.data.signedIn, devSignInOffered: offered, status: page.data.status };
  },
  async join({ room, password }) {
    await page.loadRooms();
    const listed = page.data.rooms.find((r) => r.id === room);
    await page.join(tap({ id: room }));
    const asked = Boolean(page.data.askPassword);
    if (asked) {
      page.onRoomPassword({ detail: { value: password } });
      await page.joinWithPassword();
    }
    return { listed, askedPassword: asked, room: page.data.room, toasts: wx.toasts };
  },
  seat({ index }) {
    page.tapSeat(tap({ index }));
    return {};
  },
  people() {
    page.render();
    return { people: page.data.people, seats: page.data.seats };
  },
  mic({ hz, burstMs = 0 }) {
    feedDue();
    Object.assign(mic, { hz, burstMs, started: now(), fed: 0, wasQuiet: true });
    if (!mic.timer) mic.timer = setInterval(feedDue, 5);
    return { at: now() };
  },
  mute() {
    page.toggleMute();
    return { muted: page.data.muted, at: now() };
  },
  heard,
  onsets() {
    return { capture: mic.onsets, play: playOnsets() };
  },
  now() {
    return { at: now() };
  },
  sent() {
    return { sizes: sentSizes };
  },
  lag() {
    const sorted = [...lateMs].sort((a, b) => a - b);
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] || 0;
    return { p50: at(0.5), p95: at(0.95), max: at(1) };
  },
  async leave() {
    clearInterval(mic.timer);
    mic.timer = null;
    await page.leave();
    return {};
  },
};

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const { id, cmd, ...args } = JSON.parse(line);
  try {
    const result = await commands[cmd](args);
    process.stdout.write(`${JSON.stringify({ id, ok: true, ...result })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ id, error: String((err && err.stack) || err) })}\n`);
  }
});
lines.on('close', () => {
  clearInterval(mic.timer);
  process.exit(0);
});
