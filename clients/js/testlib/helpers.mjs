// Shared by the live tests: the server under test comes from the environment
// (tests/clients/test_sdk_node.py starts a daphne node and sets these).
import assert from 'node:assert/strict';

import WebSocket from 'ws';

import { VoiceRoomClient, WebSocketTransport } from '../voiceroom.js';

export const BASE = process.env.VOICEROOM_TEST_URL || '';
export const RESUME_WINDOW_S = Number(process.env.VOICEROOM_TEST_RESUME_WINDOW_S || 20);
/** Options for `test()`: skipped, with the reason shown, when no server is given. */
export const live = BASE ? {} : { skip: 'VOICEROOM_TEST_URL is not set (run tests/clients/test_sdk_node.py)' };
export const PASSWORD = 'a-Long-pass-123';

const open = new Set();

/** A client on the `ws` WebSocket, with quick reconnects for tests. */
export function makeClient(options = {}) {
  const client = new VoiceRoomClient({
    baseUrl: BASE,
    transport: new WebSocketTransport({ WebSocket }),
    reconnect: { baseDelayMs: 50, maxDelayMs: 400 },
    heartbeatMs: 0,
    ...options,
  });
  open.add(client);
  return client;
}

let counter = 0;
export function uniqueName(prefix = 'n') {
  counter += 1;
  return `${prefix}${process.pid}x${counter}x${Math.floor(Math.random() * 1e6)}`;
}

/** A signed-in client. */
export async function newUser(options = {}) {
  const client = makeClient(options);
  const username = uniqueName();
  await client.register({ username, password: PASSWORD, display_name: `User ${username}` });
  return client;
}

/** Close every client a test made, so the test process can exit. */
export function closeAll() {
  for (const client of open) client.disconnect();
  open.clear();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it returns a truthy value. */
export async function until(check, { timeoutMs = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Collect voice frames a client receives. */
export function collectVoice(client) {
  const frames = [];
  client.on('voice', (frame) => frames.push(frame));
  return frames;
}

/** Collect server events of one type. */
export function collect(client, type) {
  const events = [];
  client.on(type, (event) => events.push(event));
  return events;
}

/** Just enough of the mini-program `wx` API, recording what the SDK asked of it. */
export function standInWx() {
  const wx = {
    sockets: [],
    requests: [],
    request(options) {
      wx.requests.push(options);
      fetch(options.url, { method: options.method, headers: options.header, body: options.data })
        .then(async (res) => options.success({ statusCode: res.status, data: await res.text(), header: {} }))
        .catch((err) => options.fail({ errMsg: `request:fail ${err.message}` }));
    },
    connectSocket(options) {
      const ws = new WebSocket(options.url, { headers: options.header });
      ws.binaryType = 'arraybuffer';
      const task = {
        options,
        ws,
        onOpen: (fn) => ws.on('open', () => fn({ header: {} })),
        // wx hands text frames as strings and binary frames as ArrayBuffers.
        onMessage: (fn) => ws.on('message', (data, isBinary) => fn({ data: isBinary ? data : data.toString() })),
        onClose: (fn) => ws.on('close', (code, reason) => fn({ code, reason: reason.toString() })),
        onError: (fn) => ws.on('error', (err) => fn({ errMsg: err.message })),
        send: ({ data, success }) => {
          assert.ok(typeof data === 'string' || data instanceof ArrayBuffer, 'wx sends strings or ArrayBuffers');
          ws.send(data);
          if (success) success();
        },
        close: ({ code, reason }) => ws.close(code, reason),
      };
      wx.sockets.push(task);
      return task;
    },
    // -- what the mini-program example page uses besides the SDK --
    loginCode: 'code-openid-test',
    login(options) {
      options.success({ code: wx.loginCode, errMsg: 'login:ok' });
    },
    authorize(options) {
      options.success({ errMsg: 'authorize:ok' });
    },
    toasts: [],
    showToast(options) {
      wx.toasts.push(options.title);
    },
    stopPullDownRefresh() {},
    recorder: null,
    getRecorderManager() {
      if (!wx.recorder) wx.recorder = standInRecorder();
      return wx.recorder;
    },
    audio: null,
    createWebAudioContext() {
      wx.audio = standInAudio();
      return wx.audio;
    },
  };
  return wx;
}

/** RecorderManager: the test plays the microphone by calling `frame(bytes)`. */
function standInRecorder() {
  const handlers = {};
  return {
    starts: [],
    recording: false,
    start(options) {
      this.starts.push(options);
      this.recording = true;
    },
    stop() {
      this.recording = false;
    },
    onFrameRecorded: (fn) => (handlers.frame = fn),
    onError: (fn) => (handlers.error = fn),
    onStop: (fn) => (handlers.stop = fn),
    frame(bytes) {
      const copy = new Uint8Array(bytes);
      handlers.frame({ frameBuffer: copy.buffer, isLastFrame: false });
    },
  };
}

/** WebAudioContext: records what was scheduled, when, with which samples. */
function standInAudio() {
  const audio = {
    currentTime: 1,
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
          audio.played.push({ at, samples: source.buffer.getChannelData(0), connected: source.connected === audio.destination });
        },
      };
      return source;
    },
    close() {
      audio.closed = true;
    },
  };
  return audio;
}
