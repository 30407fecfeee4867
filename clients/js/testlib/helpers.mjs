// Shared by the live tests: the server under test comes from the environment
// (tests/clients/test_sdk_node.py starts a daphne node and sets these).
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
