// Shared by the unit tests: a client on a transport the test drives by hand (no server,
// no dependency).
import { VoiceRoomClient } from '../voiceroom.js';

/** A transport whose sockets the test opens, feeds and closes by hand. */
export class ScriptedTransport {
  constructor() {
    this.sendsHeaders = false;
    this.opened = [];
  }
  open(url, { headers }) {
    const conn = {
      url,
      headers,
      sent: [],
      send(data) {
        this.sent.push(data);
      },
      close() {},
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    this.opened.push(conn);
    return conn;
  }
  get last() {
    return this.opened[this.opened.length - 1];
  }
}

export const P = (id, extra = {}) => ({
  user_id: id,
  username: `u${id}`,
  display_name: '',
  role: 'member',
  muted: false,
  self_muted: false,
  seat: null,
  connected: true,
  ...extra,
});

export function welcome(extra = {}) {
  return {
    type: 'welcome',
    room: { id: 5, name: 'r', seat_count: 2 },
    you: P(1),
    participants: [P(1), P(2)],
    seats: [
      { index: 0, user_id: null, locked: false, muted: false },
      { index: 1, user_id: null, locked: false, muted: false },
    ],
    session: { resume_token: 'tok', resume_window_s: 20 },
    resumed: false,
    ...extra,
  };
}

export function scriptedClient() {
  const transport = new ScriptedTransport();
  const tickets = [];
  const client = new VoiceRoomClient({
    baseUrl: 'http://server.invalid',
    transport,
    heartbeatMs: 0,
    reconnect: { baseDelayMs: 1, maxDelayMs: 2 },
    fetch: async (url, init) => {
      tickets.push(url);
      return { ok: true, status: 200, text: async () => JSON.stringify({ ticket: `t${tickets.length}`, ticket_expires_in: 60 }) };
    },
  });
  return { client, transport, tickets };
}

export const serve = (conn, message) => conn.onmessage(JSON.stringify(message));
