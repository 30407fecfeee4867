/**
 * voiceroom.js: the JavaScript client of the voiceroom public contract v1.
 *
 * One ES module, no dependencies. It runs in browsers, in WeChat mini-programs (through
 * `WxSocketTransport` and `wxRequestFetch`) and in Node 20+ (give it a WebSocket class,
 * e.g. the `ws` package's).
 *
 *   const client = new VoiceRoomClient({ baseUrl: 'https://voice.example.com' });
 *   await client.login({ username, password });
 *   client.on('voice', (frame) => play(frame.senderId, frame.payload));
 *   await client.join(roomId);            // REST join, then the socket with the ticket
 *   client.sendVoice(encodedFrame);
 *
 * The client keeps its own view of the room (`participants`, `seats`, `room`, `you`),
 * merged by user id from every event, and reconnects by itself after a network loss:
 * first with the resume token of the last `welcome` (same seat, same state), then, if
 * the server refuses it (close 4001) or the resume window has passed, with a fresh
 * ticket. It never reconnects after a clean leave or a close that says "don't"
 * (see FINAL_CLOSE_CODES).
 *
 * @module voiceroom
 */

// --- contract constants ---------------------------------------------------------------

/** WebSocket close codes of the contract (plus the standard ones the client meets). */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  LEFT: 4000,
  AUTH_FAILED: 4001,
  FORBIDDEN: 4003,
  UNKNOWN_ROOM: 4004,
  POLICY: 4008,
  ROOM_FULL: 4009,
  KICKED: 4010,
  ROOM_CLOSED: 4011,
  REPLACED: 4012,
  DRAINING: 4013,
  TOO_SLOW: 4014,
  TOO_MANY_SOCKETS: 4029,
  UNAVAILABLE: 4503,
});

/**
 * Close codes after which reconnecting cannot help, so the client stops: left through
 * REST, banned, unknown room, room full, kicked, room closed, replaced by a newer socket,
 * too many sockets for this user or address. (4013 node draining, 4014 too slow and 4503
 * server dependency down are not final: the client resumes, with backoff.)
 */
export const FINAL_CLOSE_CODES = Object.freeze([4000, 4003, 4004, 4009, 4010, 4011, 4012, 4029]);
const FINAL = new Set(FINAL_CLOSE_CODES);

/** Voice frame kinds (byte 0 of the server's 9-byte header). */
export const VOICE_ROOM = 1;
export const VOICE_WHISPER = 2;
export const VOICE_HEADER_BYTES = 9;
export const MAX_VOICE_BYTES = 4096;

/**
 * Audio payload convention shared by the demo page and the mini-program example (the
 * server never looks inside a payload): the first byte names the codec.
 * - AUDIO_PCM16 (0x01): then little-endian signed 16-bit PCM, 16 kHz, mono (20 ms = 640 bytes).
 * - AUDIO_OPUS  (0x02): then one raw Opus packet, 48 kHz, mono (20 ms).
 */
export const AUDIO_PCM16 = 0x01;
export const AUDIO_OPUS = 0x02;

// --- types -----------------------------------------------------------------------------

/**
 * @typedef {Object} User
 * @property {number} id
 * @property {string} username
 * @property {string} display_name
 */

/**
 * @typedef {Object} Room
 * @property {number} id
 * @property {string} name
 * @property {string} topic
 * @property {User} owner
 * @property {'open'|'closed'} status
 * @property {number} capacity
 * @property {number} seat_count
 * @property {boolean} is_private
 * @property {number} online_count
 * @property {string} created_at
 * @property {Participant[]} [participants] only from getRoom()
 */

/**
 * @typedef {Object} Member
 * @property {User} user
 * @property {'owner'|'admin'|'member'} role
 * @property {boolean} muted
 * @property {boolean} banned
 * @property {boolean} online
 * @property {number|null} seat
 * @property {string} joined_at
 */

/**
 * @typedef {Object} Participant
 * @property {number} user_id
 * @property {string} username
 * @property {string} display_name
 * @property {'owner'|'admin'|'member'} role
 * @property {boolean} muted       muted by a moderator
 * @property {boolean} self_muted
 * @property {number|null} seat
 * @property {boolean} connected   false while inside the resume window
 */

/**
 * @typedef {Object} Seat
 * @property {number} index
 * @property {number|null} user_id
 * @property {boolean} locked
 * @property {boolean} muted
 */

/**
 * @typedef {Object} Page
 * @property {number} count
 * @property {string|null} next
 * @property {string|null} previous
 * @property {Room[]} results
 */

/**
 * @typedef {Object} AuthResult
 * @property {User} user
 * @property {string} token
 */

/**
 * @typedef {Object} JoinResult
 * @property {Room} room
 * @property {Member} member
 * @property {string} ws_url
 * @property {string} ticket
 * @property {number} ticket_expires_in
 */

/**
 * @typedef {Object} WelcomeEvent
 * @property {'welcome'} type
 * @property {Room} room
 * @property {Participant} you
 * @property {Participant[]} participants
 * @property {Seat[]} seats
 * @property {{resume_token: string, resume_window_s: number}} session
 * @property {boolean} resumed
 */

/** @typedef {{type: 'participant.joined', participant: Participant}} ParticipantJoinedEvent */
/** @typedef {{type: 'participant.left', user_id: number, reason: 'left'|'timeout'|'kicked'|'banned'}} ParticipantLeftEvent */
/** @typedef {{type: 'participant.updated', participant: Participant}} ParticipantUpdatedEvent */
/** @typedef {{type: 'seat.updated', seat: Seat}} SeatUpdatedEvent */
/** @typedef {{type: 'room.updated', room: Room}} RoomUpdatedEvent */
/** @typedef {{type: 'room.closed'}} RoomClosedEvent */
/** @typedef {{type: 'chat', from: number, text: string, ts: string}} ChatEvent */
/** @typedef {{type: 'whisper', from: number, to: number, text: string, ts: string}} WhisperEvent */
/** @typedef {{type: 'error', code: string, detail: string}} ErrorEvent */
/** @typedef {{type: 'pong', ts: string}} PongEvent */

/**
 * A voice frame from the server, header parsed.
 * @typedef {Object} VoiceFrame
 * @property {1|2} kind          VOICE_ROOM or VOICE_WHISPER
 * @property {number} senderId
 * @property {number} seq         per sender, +1 per relayed frame
 * @property {Uint8Array} payload the sender's bytes, unchanged
 */

/**
 * @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'} ConnectionState
 */

/**
 * @typedef {Object} CloseEvent
 * @property {number} code
 * @property {string} reason
 * @property {boolean} willReconnect
 */

/**
 * Every event `on()` accepts, with what the listener receives. Server frames are passed
 * as received (after the client has merged them into its state); the rest are the
 * client's own.
 * @typedef {Object} VoiceRoomEventMap
 * @property {WelcomeEvent} welcome
 * @property {ParticipantJoinedEvent} participant.joined
 * @property {ParticipantLeftEvent} participant.left
 * @property {ParticipantUpdatedEvent} participant.updated
 * @property {SeatUpdatedEvent} seat.updated
 * @property {RoomUpdatedEvent} room.updated
 * @property {RoomClosedEvent} room.closed
 * @property {ChatEvent} chat
 * @property {WhisperEvent} whisper
 * @property {ErrorEvent} error              a client frame was refused (socket stays open)
 * @property {PongEvent} pong
 * @property {VoiceFrame} voice
 * @property {{participants: Participant[]}} participants  the participant map changed
 * @property {{seats: Seat[]}} seats                       the seat list changed
 * @property {{state: ConnectionState, previous: ConnectionState}} state
 * @property {CloseEvent} close                            the socket closed
 * @property {{attempt: number, delayMs: number}} reconnecting
 * @property {{type: string} & Record<string, any>} message every server text frame
 */

// --- small helpers ---------------------------------------------------------------------

/** An error a caller can act on: REST errors carry the contract's `code`. */
export class VoiceRoomError extends Error {
  /**
   * @param {string} code     the contract's snake_case code, or the client's own
   *                          (`network`, `not_connected`, `closed`, `bad_response`)
   * @param {string} detail
   * @param {{status?: number, fields?: Object, closeCode?: number}} [extra]
   */
  constructor(code, detail, extra = {}) {
    super(detail || code);
    this.name = 'VoiceRoomError';
    this.code = code;
    this.detail = detail || code;
    /** HTTP status for REST errors, else 0. */
    this.status = extra.status || 0;
    /** Per-field messages of a 400 `invalid`. */
    this.fields = extra.fields;
    /** The socket close code, for errors of `connect()`. */
    this.closeCode = extra.closeCode;
  }
}

/**
 * Parse a server voice frame: 9-byte header, then the payload.
 * @param {ArrayBuffer|ArrayBufferView} data
 * @returns {VoiceFrame|null} null if shorter than the header
 */
export function parseVoiceFrame(data) {
  const bytes = toBytes(data);
  if (bytes.byteLength < VOICE_HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    kind: /** @type {1|2} */ (view.getUint8(0)),
    senderId: view.getUint32(1, false),
    seq: view.getUint32(5, false),
    payload: bytes.subarray(VOICE_HEADER_BYTES),
  };
}

/**
 * Build a payload of the audio convention: one codec byte, then the codec's bytes.
 * @param {number} codec AUDIO_PCM16 or AUDIO_OPUS
 * @param {ArrayBuffer|ArrayBufferView} data
 * @returns {Uint8Array}
 */
export function encodeAudioPayload(codec, data) {
  const body = toBytes(data);
  const out = new Uint8Array(body.byteLength + 1);
  out[0] = codec;
  out.set(body, 1);
  return out;
}

/**
 * Split a payload of the audio convention.
 * @param {Uint8Array} payload
 * @returns {{codec: number, data: Uint8Array}}
 */
export function decodeAudioPayload(payload) {
  return { codec: payload.length ? payload[0] : 0, data: payload.subarray(1) };
}

/**
 * PCM16 bytes (little-endian) to floats in [-1, 1).
 * @param {Uint8Array} data
 * @returns {Float32Array}
 */
export function pcm16ToFloat32(data) {
  const n = data.byteLength >> 1;
  const view = new DataView(data.buffer, data.byteOffset, n * 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

/**
 * Floats in [-1, 1] to PCM16 bytes (little-endian).
 * @param {Float32Array} samples
 * @returns {Uint8Array}
 */
export function float32ToPcm16(samples) {
  const out = new Uint8Array(samples.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? s * 32768 : s * 32767, true);
  }
  return out;
}

/** @param {ArrayBuffer|ArrayBufferView} data @returns {Uint8Array} */
function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** @param {Record<string, any>} params */
function queryString(params) {
  const parts = [];
  for (const key of Object.keys(params)) {
    const value = params[key];
    if (value === undefined || value === null || value === '') continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function defaultBaseUrl() {
  const loc = /** @type {any} */ (globalThis).location;
  return loc && loc.origin && loc.origin !== 'null' ? loc.origin : '';
}

/** @param {string} url */
function httpToWs(url) {
  return url.replace(/^http(s?):/i, 'ws$1:');
}

// --- transports ------------------------------------------------------------------------

/**
 * One open socket, as a transport hands it to the client. The client sets the `on*`
 * handlers right after `open()`; `onmessage` receives a string (text frame) or an
 * ArrayBuffer (binary frame).
 * @typedef {Object} Connection
 * @property {(data: string|ArrayBuffer|ArrayBufferView) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {(() => void)|null} onopen
 * @property {((data: string|ArrayBuffer) => void)|null} onmessage
 * @property {((event: {code: number, reason: string}) => void)|null} onclose
 * @property {((error: any) => void)|null} onerror
 * @property {any} [raw] the underlying socket object (diagnostics and tests)
 */

/**
 * The seam between the client and a socket implementation.
 * @typedef {Object} Transport
 * @property {boolean} sendsHeaders true if `open()` can send an Authorization header
 * @property {(url: string, options: {headers: Record<string, string>}) => Connection} open
 */

/**
 * A connection object whose handlers fire at most once for open and close.
 * @returns {Connection & {_opened: boolean, _fireOpen: () => void, _fireClose: (code: number, reason: string) => void}}
 */
function makeConnection() {
  let opened = false;
  let closed = false;
  return {
    send() {},
    close() {},
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    get _opened() {
      return opened;
    },
    _fireOpen() {
      if (opened || closed) return;
      opened = true;
      if (this.onopen) this.onopen();
    },
    _fireClose(code, reason) {
      if (closed) return;
      closed = true;
      if (this.onclose) this.onclose({ code: code || CLOSE.ABNORMAL, reason: reason || '' });
    },
  };
}

/**
 * The standard WebSocket (browsers, or any class with the same interface such as the
 * `ws` package in Node). Browsers cannot send headers on a WebSocket, so the client
 * authenticates with the ticket or resume token in the query string.
 */
export class WebSocketTransport {
  /**
   * @param {Object} [options]
   * @param {any} [options.WebSocket] the class to use; default the global WebSocket
   * @param {boolean} [options.sendHeaders] pass `{headers}` as the constructor's third
   *   argument (the `ws` package supports it; browsers do not)
   */
  constructor(options = {}) {
    this.WebSocket = options.WebSocket || /** @type {any} */ (globalThis).WebSocket;
    this.sendsHeaders = Boolean(options.sendHeaders);
  }

  /**
   * @param {string} url
   * @param {{headers: Record<string, string>}} options
   * @returns {Connection}
   */
  open(url, { headers }) {
    if (!this.WebSocket) throw new Error('No WebSocket class: pass {WebSocket} to WebSocketTransport');
    const ws = this.sendsHeaders ? new this.WebSocket(url, [], { headers }) : new this.WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const conn = makeConnection();
    conn.raw = ws;
    conn.send = (data) => ws.send(data);
    conn.close = (code, reason) => {
      try {
        ws.close(code, reason);
      } catch (_) {
        ws.close();
      }
    };
    ws.onopen = () => conn._fireOpen();
    ws.onmessage = (/** @type {any} */ event) => {
      if (conn.onmessage) conn.onmessage(event.data);
    };
    ws.onerror = (/** @type {any} */ error) => {
      if (conn.onerror) conn.onerror(error);
    };
    ws.onclose = (/** @type {any} */ event) => conn._fireClose(event.code, event.reason);
    return conn;
  }
}

/**
 * WeChat mini-program sockets (`wx.connectSocket`): binary frames are ArrayBuffers, and
 * the `Authorization: Token ...` header is sent on the handshake, which the server
 * accepts as the socket's credentials (with or without a ticket).
 */
export class WxSocketTransport {
  /**
   * @param {Object} [options]
   * @param {any} [options.wx] the `wx` API object; default the global `wx`
   */
  constructor(options = {}) {
    this.wx = options.wx || /** @type {any} */ (globalThis).wx;
    this.sendsHeaders = true;
  }

  /**
   * @param {string} url
   * @param {{headers: Record<string, string>}} options
   * @returns {Connection}
   */
  open(url, { headers }) {
    const conn = makeConnection();
    const task = this.wx.connectSocket({
      url,
      header: headers,
      tcpNoDelay: true,
      perMessageDeflate: false,
      fail: (/** @type {any} */ err) => conn._fireClose(CLOSE.ABNORMAL, (err && err.errMsg) || 'connectSocket failed'),
    });
    conn.raw = task;
    conn.send = (data) => {
      // wx sends an ArrayBuffer as a binary frame; a typed array must be cut to its bytes.
      let payload = data;
      if (ArrayBuffer.isView(data)) {
        payload = /** @type {ArrayBuffer} */ (data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      }
      task.send({ data: payload });
    };
    conn.close = (code, reason) => task.close({ code: code || CLOSE.NORMAL, reason: reason || '' });
    task.onOpen(() => conn._fireOpen());
    task.onMessage((/** @type {any} */ res) => {
      if (conn.onmessage) conn.onmessage(res.data);
    });
    task.onClose((/** @type {any} */ res) => conn._fireClose(res && res.code, res && res.reason));
    task.onError((/** @type {any} */ err) => {
      if (conn.onerror) conn.onerror(err);
      // wx may report a failed handshake with onError alone; never leave the client waiting.
      if (!conn._opened) conn._fireClose(CLOSE.ABNORMAL, (err && err.errMsg) || 'socket error');
    });
    return conn;
  }
}

/**
 * A `fetch`-like function over `wx.request`, for `new VoiceRoomClient({fetch})` in a
 * mini-program (which has no fetch).
 * @param {any} [wxApi] the `wx` API object; default the global `wx`
 * @returns {(url: string, init?: {method?: string, headers?: Record<string, string>, body?: string}) => Promise<{ok: boolean, status: number, text: () => Promise<string>, json: () => Promise<any>}>}
 */
export function wxRequestFetch(wxApi) {
  const api = wxApi || /** @type {any} */ (globalThis).wx;
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      api.request({
        url,
        method: init.method || 'GET',
        header: init.headers || {},
        data: init.body,
        dataType: 'text', // anything but 'json': hand us the body as received
        responseType: 'text',
        success(/** @type {any} */ res) {
          const raw = res.data;
          const text = typeof raw === 'string' ? raw : raw == null ? '' : JSON.stringify(raw);
          resolve({
            ok: res.statusCode >= 200 && res.statusCode < 300,
            status: res.statusCode,
            text: async () => text,
            json: async () => JSON.parse(text),
          });
        },
        fail(/** @type {any} */ err) {
          reject(new TypeError((err && err.errMsg) || 'wx.request failed'));
        },
      });
    });
}

// --- the client ------------------------------------------------------------------------

/**
 * @typedef {Object} ReconnectOptions
 * @property {boolean} [enabled=true]
 * @property {number} [baseDelayMs=500]  first delay; doubles per attempt
 * @property {number} [maxDelayMs=10000] cap of the delay
 * @property {number} [maxAttempts=Infinity] attempts in a row before giving up
 * @property {boolean} [rejoin=true] join the room again (REST) when the resume window
 *   has passed and the server no longer counts the user as a member
 */

/**
 * @typedef {Object} ClientOptions
 * @property {string} [baseUrl]   the server, e.g. 'https://voice.example.com'; default
 *                                the page's origin in a browser
 * @property {string} [wsBaseUrl] default: baseUrl with ws(s):
 * @property {string|null} [token] an API token from an earlier sign-in
 * @property {(url: string, init?: any) => Promise<any>} [fetch] default the global fetch;
 *                                `wxRequestFetch(wx)` in a mini-program
 * @property {Transport} [transport] default `new WebSocketTransport()`
 * @property {ReconnectOptions} [reconnect]
 * @property {number} [heartbeatMs=15000] ping period; a socket silent for 3 periods is
 *                                treated as lost (0 turns this off)
 * @property {number} [requestTimeoutMs=15000]
 * @property {() => number} [random] jitter source, default Math.random
 */

export class VoiceRoomClient {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl !== undefined ? options.baseUrl : defaultBaseUrl()).replace(/\/+$/, '');
    this.wsBaseUrl = (options.wsBaseUrl || httpToWs(this.baseUrl)).replace(/\/+$/, '');
    /** @type {string|null} */
    this.token = options.token || null;
    const globalFetch = /** @type {any} */ (globalThis).fetch;
    this._fetch = options.fetch || (globalFetch ? globalFetch.bind(globalThis) : null);
    /** @type {Transport} */
    this.transport = options.transport || new WebSocketTransport();
    /** @type {Required<ReconnectOptions>} */
    this.reconnectOptions = {
      enabled: true,
      baseDelayMs: 500,
      maxDelayMs: 10000,
      maxAttempts: Infinity,
      rejoin: true,
      ...(options.reconnect || {}),
    };
    this.heartbeatMs = options.heartbeatMs === undefined ? 15000 : options.heartbeatMs;
    this.requestTimeoutMs = options.requestTimeoutMs || 15000;
    this._random = options.random || Math.random;

    /** The signed-in user, after register/login/me. @type {User|null} */
    this.user = null;
    /** @type {number|null} */
    this.roomId = null;
    /** @type {Room|null} */
    this.room = null;
    /** Yourself as a participant. @type {Participant|null} */
    this.you = null;
    /** Everyone in the room (you included), by user id. @type {Map<number, Participant>} */
    this.participants = new Map();
    /** @type {Seat[]} */
    this.seats = [];
    /** @type {{resume_token: string, resume_window_s: number}|null} */
    this.session = null;
    /** @type {ConnectionState} */
    this.state = 'idle';
    /** The current voice target (null: the whole room); re-applied after a reconnect. */
    this.voiceTarget = /** @type {number|null} */ (null);

    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    /** @type {Connection|null} */
    this._conn = null;
    this._generation = 0; // bumps on every socket; stale callbacks check it
    this._stopped = true; // true: no reconnect (idle, left, final close)
    this._leaving = false;
    this._droppedAt = 0;
    this._resumeRefused = false;
    /** @type {any} */
    this._heartbeat = null;
    this._lastHeard = 0;
    /** @type {{timer: any, resolve: () => void}|null} */
    this._wait = null;
    /** @type {(() => void)|null} */
    this._abortOpen = null;
    /** @type {string|undefined} */
    this._joinPassword = undefined;
    this._loopToken = 0;
  }

  // -- events ---------------------------------------------------------------------------

  /**
   * Listen to an event (see VoiceRoomEventMap); `'*'` receives `(type, event)` for all.
   * @template {keyof VoiceRoomEventMap} K
   * @param {K|'*'} type
   * @param {(event: VoiceRoomEventMap[K], type?: string) => void} fn
   * @returns {() => void} call it to stop listening
   */
  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /**
   * @param {string} type
   * @param {Function} fn
   */
  off(type, fn) {
    const set = this._listeners.get(type);
    if (set) set.delete(fn);
  }

  /**
   * Resolve with the next event of a type (optionally one that `where` accepts).
   * @template {keyof VoiceRoomEventMap} K
   * @param {K} type
   * @param {{where?: (event: VoiceRoomEventMap[K]) => boolean, timeoutMs?: number}} [options]
   * @returns {Promise<VoiceRoomEventMap[K]>}
   */
  once(type, options = {}) {
    return new Promise((resolve, reject) => {
      /** @type {any} */
      let timer = null;
      const off = this.on(type, (event) => {
        if (options.where && !options.where(event)) return;
        off();
        if (timer) clearTimeout(timer);
        resolve(event);
      });
      if (options.timeoutMs) {
        timer = setTimeout(() => {
          off();
          reject(new VoiceRoomError('timeout', `no ${String(type)} within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
    });
  }

  /**
   * @param {string} type
   * @param {any} event
   */
  _emit(type, event) {
    for (const key of [type, '*']) {
      const set = this._listeners.get(key);
      if (!set) continue;
      for (const fn of Array.from(set)) {
        try {
          if (key === '*') fn(type, event);
          else fn(event);
        } catch (err) {
          // A listener's bug must not break the protocol handling.
          setTimeout(() => {
            throw err;
          }, 0);
        }
      }
    }
  }

  // -- REST -----------------------------------------------------------------------------

  /**
   * Call the REST API. Resolves with the parsed body (null for 204); rejects with a
   * VoiceRoomError carrying the contract's `code` and the HTTP status.
   * @param {string} method
   * @param {string} path  e.g. '/api/rooms/'
   * @param {any} [body]
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    if (!this._fetch) throw new VoiceRoomError('network', 'no fetch: pass {fetch} to the client');
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Token ${this.token}`;
    /** @type {any} */
    const init = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    /** @type {any} */
    let timer = null;
    const Abort = /** @type {any} */ (globalThis).AbortController;
    if (Abort) {
      const controller = new Abort();
      init.signal = controller.signal;
      timer = setTimeout(() => controller.abort(), this.requestTimeoutMs);
    }
    let response;
    let text;
    try {
      response = await this._fetch(this.baseUrl + path, init);
      text = await response.text();
    } catch (err) {
      const reason = /** @type {any} */ (err);
      throw new VoiceRoomError('network', `${method} ${path}: ${(reason && reason.message) || reason}`);
    } finally {
      if (timer) clearTimeout(timer);
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        throw new VoiceRoomError('bad_response', `${method} ${path}: not JSON (HTTP ${response.status})`, {
          status: response.status,
        });
      }
    }
    if (!response.ok) {
      const code = (data && data.code) || `http_${response.status}`;
      const detail = (data && data.detail) || `HTTP ${response.status}`;
      throw new VoiceRoomError(code, detail, { status: response.status, fields: data && data.fields });
    }
    return data;
  }

  /** @param {AuthResult} result */
  _signedIn(result) {
    this.token = result.token;
    this.user = result.user;
    return result;
  }

  /**
   * Create an account; the client keeps its token.
   * @param {{username: string, password: string, display_name?: string}} fields
   * @returns {Promise<AuthResult>}
   */
  async register(fields) {
    return this._signedIn(await this.request('POST', '/api/auth/register', fields));
  }

  /**
   * @param {{username: string, password: string}} credentials
   * @returns {Promise<AuthResult>}
   */
  async login(credentials) {
    return this._signedIn(await this.request('POST', '/api/auth/login', credentials));
  }

  /**
   * Mini-program sign-in with the code from `wx.login()`.
   * @param {string} code
   * @returns {Promise<AuthResult>}
   */
  async loginWithWechat(code) {
    return this._signedIn(await this.request('POST', '/api/auth/wechat', { code }));
  }

  /** Sign out: the token stops working everywhere. */
  async logout() {
    await this.request('POST', '/api/auth/logout');
    this.token = null;
    this.user = null;
  }

  /** @returns {Promise<User>} */
  async me() {
    this.user = await this.request('GET', '/api/auth/me');
    return /** @type {User} */ (this.user);
  }

  /**
   * @param {{status?: 'open'|'closed', page?: number}} [filters]
   * @returns {Promise<Page>}
   */
  listRooms(filters = {}) {
    return this.request('GET', `/api/rooms/${queryString(filters)}`);
  }

  /**
   * @param {{name: string, topic?: string, capacity?: number, seat_count?: number, password?: string}} fields
   * @returns {Promise<Room>}
   */
  createRoom(fields) {
    return this.request('POST', '/api/rooms/', fields);
  }

  /** @param {number} roomId @returns {Promise<Room>} with `participants` */
  getRoom(roomId) {
    return this.request('GET', `/api/rooms/${roomId}/`);
  }

  /**
   * @param {number} roomId
   * @param {{name?: string, topic?: string, capacity?: number, seat_count?: number, password?: string}} fields
   * @returns {Promise<Room>}
   */
  updateRoom(roomId, fields) {
    return this.request('PATCH', `/api/rooms/${roomId}/`, fields);
  }

  /**
   * Become a member (REST only; `join()` also opens the socket).
   * @param {number} roomId
   * @param {{password?: string}} [options]
   * @returns {Promise<JoinResult>}
   */
  joinRoom(roomId, options = {}) {
    return this.request('POST', `/api/rooms/${roomId}/join`, options.password ? { password: options.password } : {});
  }

  /** A fresh single-use socket ticket. @param {number} roomId @returns {Promise<{ticket: string, ticket_expires_in: number}>} */
  ticket(roomId) {
    return this.request('POST', `/api/rooms/${roomId}/ticket`);
  }

  /** @param {number} roomId @returns {Promise<Member[]>} */
  members(roomId) {
    return this.request('GET', `/api/rooms/${roomId}/members/`);
  }

  /** @param {number} roomId @param {number} userId @param {boolean} muted @returns {Promise<Member>} */
  muteMember(roomId, userId, muted) {
    return this.request('POST', `/api/rooms/${roomId}/members/${userId}/mute`, { muted });
  }

  /** @param {number} roomId @param {number} userId */
  kickMember(roomId, userId) {
    return this.request('POST', `/api/rooms/${roomId}/members/${userId}/kick`);
  }

  /** @param {number} roomId @param {number} userId @param {string} [reason] */
  banMember(roomId, userId, reason) {
    return this.request('POST', `/api/rooms/${roomId}/members/${userId}/ban`, reason ? { reason } : {});
  }

  /** @param {number} roomId @param {number} userId */
  unbanMember(roomId, userId) {
    return this.request('POST', `/api/rooms/${roomId}/members/${userId}/unban`);
  }

  /** @param {number} roomId @param {number} userId @param {'admin'|'member'} role @returns {Promise<Member>} */
  setRole(roomId, userId, role) {
    return this.request('POST', `/api/rooms/${roomId}/members/${userId}/role`, { role });
  }

  /** @param {number} roomId @returns {Promise<Room>} */
  closeRoom(roomId) {
    return this.request('POST', `/api/rooms/${roomId}/close`);
  }

  /** @param {number} roomId @returns {Promise<Room>} */
  openRoom(roomId) {
    return this.request('POST', `/api/rooms/${roomId}/open`);
  }

  // -- the socket -----------------------------------------------------------------------

  /**
   * Join over REST, then open the room's socket with the ticket. Resolves with the
   * `welcome`; from then on the client reconnects by itself.
   * @param {number} roomId
   * @param {{password?: string}} [options]
   * @returns {Promise<WelcomeEvent>}
   */
  async join(roomId, options = {}) {
    const joined = await this.joinRoom(roomId, options);
    const welcome = await this.connect(roomId, { ticket: joined.ticket });
    this._joinPassword = options.password; // to join again if the resume window passes
    return welcome;
  }

  /**
   * Open the room's socket. Without a ticket the client asks for one (the user must
   * already be a member), except over a transport that sends the Token header, which
   * needs none. Rejects with a VoiceRoomError whose `closeCode` says why if the server
   * closes the socket before its `welcome`.
   * @param {number} roomId
   * @param {{ticket?: string}} [options]
   * @returns {Promise<WelcomeEvent>}
   */
  async connect(roomId, options = {}) {
    this._cancelWait();
    this._teardown();
    if (this.roomId !== roomId) this._resetRoomState();
    this.roomId = roomId;
    this._stopped = false;
    this._leaving = false;
    this._resumeRefused = false;
    this.voiceTarget = null;
    this._setState('connecting');
    try {
      const query = options.ticket ? { ticket: options.ticket } : await this._freshCredentials();
      return await this._open(query);
    } catch (err) {
      this._stopped = true;
      this._setState('closed');
      throw err;
    }
  }

  /**
   * Leave the room cleanly: others see `participant.left` (reason `left`) at once, the
   * seat is freed, and the client does not reconnect. Resolves once the socket closed.
   * @returns {Promise<void>}
   */
  async leave() {
    this._stopped = true;
    this._cancelWait();
    const conn = this._conn;
    if (!conn || this.state !== 'open') {
      this._teardown();
      this._setState('closed');
      return;
    }
    this._leaving = true;
    const closed = this.once('close', { timeoutMs: 5000 }).catch(() => {
      this._teardown();
      this._setState('closed');
    });
    conn.send(JSON.stringify({ type: 'leave' }));
    await closed;
  }

  /**
   * Close the socket without leaving: the server keeps the place in the room for the
   * resume window. No reconnect.
   */
  disconnect() {
    this._stopped = true;
    this._cancelWait();
    const conn = this._conn;
    this._teardown();
    if (conn) this._emit('close', { code: CLOSE.NORMAL, reason: 'client disconnect', willReconnect: false });
    this._setState('closed');
  }

  /** The open connection, if any (diagnostics and tests). @returns {Connection|null} */
  get connection() {
    return this._conn;
  }

  /** Participants as an array, in the order they came. @returns {Participant[]} */
  participantList() {
    return Array.from(this.participants.values());
  }

  /** @returns {Promise<Record<string, string>>} */
  async _freshCredentials() {
    if (this.transport.sendsHeaders && this.token) return {};
    const { ticket } = await this.ticket(/** @type {number} */ (this.roomId));
    return { ticket };
  }

  /**
   * A ticket to come back with when resuming is not possible. Once the resume window
   * has passed the server no longer counts the user as a member (the ticket endpoint
   * answers 403 `not_a_member`), so the client joins again, as the user would.
   * @returns {Promise<Record<string, string>>}
   */
  async _reconnectCredentials() {
    const roomId = /** @type {number} */ (this.roomId);
    try {
      return { ticket: (await this.ticket(roomId)).ticket };
    } catch (err) {
      if (!(err instanceof VoiceRoomError) || err.code !== 'not_a_member' || !this.reconnectOptions.rejoin) throw err;
      return { ticket: (await this.joinRoom(roomId, { password: this._joinPassword })).ticket };
    }
  }

  /**
   * Open one socket; resolve on its welcome, reject if it closes before.
   * @param {Record<string, string>} query
   * @returns {Promise<WelcomeEvent>}
   */
  _open(query) {
    const generation = ++this._generation;
    const url = `${this.wsBaseUrl}/ws/rooms/${this.roomId}/${queryString(query)}`;
    /** @type {Record<string, string>} */
    const headers = {};
    if (this.transport.sendsHeaders && this.token) headers.Authorization = `Token ${this.token}`;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      // _teardown() (leave, disconnect, a new connect) settles a socket still waiting.
      this._abortOpen = () => {
        if (!welcomed) reject(new VoiceRoomError('closed', 'closed by the client', { closeCode: CLOSE.NORMAL }));
      };
      /** @type {Connection} */
      let conn;
      try {
        conn = this.transport.open(url, { headers });
      } catch (err) {
        reject(new VoiceRoomError('network', String((err && /** @type {any} */ (err).message) || err)));
        return;
      }
      this._conn = conn;
      this._lastHeard = Date.now();
      conn.onopen = () => {
        if (generation === this._generation) this._startHeartbeat(generation);
      };
      conn.onerror = () => {};
      conn.onmessage = (data) => {
        if (generation !== this._generation) return;
        this._lastHeard = Date.now();
        if (typeof data === 'string') {
          let message;
          try {
            message = JSON.parse(data);
          } catch (_) {
            return;
          }
          if (!welcomed && message.type === 'welcome') {
            welcomed = true;
            this._onWelcome(message);
            resolve(message);
            return;
          }
          this._onMessage(message);
        } else if (data) {
          const frame = parseVoiceFrame(/** @type {ArrayBuffer} */ (data));
          if (frame) this._emit('voice', frame);
        }
      };
      conn.onclose = ({ code, reason }) => {
        if (generation !== this._generation || this._conn !== conn) return;
        this._conn = null;
        this._stopHeartbeat();
        if (!welcomed) {
          reject(new VoiceRoomError('closed', `socket closed before welcome (${code}${reason ? ` ${reason}` : ''})`, { closeCode: code }));
          return;
        }
        this._onDrop(code, reason);
      };
    });
  }

  /** @param {WelcomeEvent} welcome */
  _onWelcome(welcome) {
    this.room = welcome.room;
    this.you = welcome.you;
    this.session = welcome.session;
    this._resumeRefused = false;
    // The welcome is the whole truth: replace, never append, so a resume cannot duplicate.
    this.participants = new Map();
    for (const p of welcome.participants) this.participants.set(p.user_id, p);
    this.participants.set(welcome.you.user_id, welcome.you);
    this.seats = welcome.seats.map((s) => ({ ...s }));
    this._setState('open');
    if (this.voiceTarget !== null) {
      // The target belongs to the socket: set it again on the new one.
      this._sendText({ type: 'voice.target', to: this.voiceTarget });
    }
    this._emit('welcome', welcome);
    this._emit('participants', { participants: this.participantList() });
    this._emit('seats', { seats: this.seats });
  }

  /** @param {any} message */
  _onMessage(message) {
    switch (message.type) {
      case 'participant.joined':
      case 'participant.updated': {
        const p = message.participant;
        const merged = { ...(this.participants.get(p.user_id) || {}), ...p };
        this.participants.set(p.user_id, merged);
        if (this.you && p.user_id === this.you.user_id) this.you = merged;
        break;
      }
      case 'participant.left':
        this.participants.delete(message.user_id);
        break;
      case 'seat.updated': {
        const seat = message.seat;
        const count = this.room && typeof this.room.seat_count === 'number' ? this.room.seat_count : null;
        // A seat removed by a smaller seat_count is announced freed after room.updated:
        // that event must not bring the seat back.
        if (count !== null && seat.index >= count) break;
        while (this.seats.length <= seat.index) this.seats.push(emptySeat(this.seats.length));
        this.seats[seat.index] = { ...seat };
        break;
      }
      case 'room.updated':
        this.room = { ...(this.room || {}), ...message.room };
        this._resizeSeats(message.room.seat_count);
        break;
      default:
        break;
    }
    this._emit('message', message);
    this._emit(message.type, message);
    if (message.type.startsWith('participant.')) {
      this._emit('participants', { participants: this.participantList() });
    } else if (message.type === 'seat.updated' || message.type === 'room.updated') {
      this._emit('seats', { seats: this.seats });
    }
  }

  /** @param {number|undefined} count */
  _resizeSeats(count) {
    if (typeof count !== 'number') return;
    if (this.seats.length > count) this.seats.length = count;
    while (this.seats.length < count) this.seats.push(emptySeat(this.seats.length));
  }

  /**
   * The socket closed after its welcome: stop, or reconnect.
   * @param {number} code
   * @param {string} reason
   */
  _onDrop(code, reason) {
    const final = this._stopped || this._leaving || FINAL.has(code) || !this.reconnectOptions.enabled;
    this._emit('close', { code, reason, willReconnect: !final });
    if (final) {
      this._stopped = true;
      this._setState('closed');
      return;
    }
    this._droppedAt = Date.now();
    this._reconnectLoop();
  }

  async _reconnectLoop() {
    const { baseDelayMs, maxDelayMs, maxAttempts } = this.reconnectOptions;
    // connect(), leave() and disconnect() bump the token: this loop then ends quietly.
    const token = ++this._loopToken;
    const superseded = () => this._stopped || token !== this._loopToken;
    this._setState('reconnecting');
    let attempt = 0;
    let delayNext = true;
    while (!superseded()) {
      if (delayNext) {
        attempt += 1;
        if (attempt > maxAttempts) break;
        // Exponential backoff with jitter: half fixed, half random, so a node's clients
        // that all dropped at once do not all come back in the same instant.
        const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const delayMs = Math.round(ceiling * (0.5 + 0.5 * this._random()));
        this._emit('reconnecting', { attempt, delayMs });
        await this._sleep(delayMs);
        if (superseded()) return;
      }
      delayNext = true;
      const session = this.session;
      const windowMs = session ? session.resume_window_s * 1000 : 0;
      const resume = Boolean(session && !this._resumeRefused && Date.now() - this._droppedAt < windowMs);
      try {
        const query = resume ? { resume: /** @type {any} */ (session).resume_token } : await this._reconnectCredentials();
        if (superseded()) return;
        await this._open(query);
        return; // welcomed: state is 'open' again
      } catch (err) {
        if (superseded()) return;
        const e = /** @type {VoiceRoomError} */ (err);
        if (resume && e.closeCode === CLOSE.AUTH_FAILED) {
          // Resume refused (window passed, or the node forgot): a fresh ticket, now.
          this._resumeRefused = true;
          delayNext = false;
          continue;
        }
        const finalRest = e.status === 401 || e.status === 403 || e.status === 404 || e.status === 409;
        if ((e.closeCode !== undefined && FINAL.has(e.closeCode)) || finalRest) {
          this._stopped = true;
          this._emit('close', { code: e.closeCode || 0, reason: e.code, willReconnect: false });
          this._setState('closed');
          return;
        }
      }
    }
    if (superseded()) return;
    this._stopped = true;
    this._emit('close', { code: CLOSE.ABNORMAL, reason: 'gave up reconnecting', willReconnect: false });
    this._setState('closed');
  }

  /** @param {number} ms */
  _sleep(ms) {
    return new Promise((resolve) => {
      const done = () => {
        this._wait = null;
        resolve(undefined);
      };
      this._wait = { timer: setTimeout(done, ms), resolve: done };
    });
  }

  /** End any reconnect loop: it stops at its next step. */
  _cancelWait() {
    this._loopToken += 1;
    if (this._wait) {
      clearTimeout(this._wait.timer);
      this._wait.resolve();
    }
  }

  /** @param {number} generation */
  _startHeartbeat(generation) {
    this._stopHeartbeat();
    if (!this.heartbeatMs) return;
    this._heartbeat = setInterval(() => {
      if (generation !== this._generation || !this._conn) return;
      if (Date.now() - this._lastHeard > 3 * this.heartbeatMs) {
        // Silent for too long: the network is gone even if the socket does not know yet.
        this._forceDrop(CLOSE.ABNORMAL, 'heartbeat timeout');
        return;
      }
      this._sendText({ type: 'ping' });
    }, this.heartbeatMs);
  }

  _stopHeartbeat() {
    if (this._heartbeat) clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  /**
   * Abandon the current socket as lost (as if the network dropped it) and reconnect.
   * @param {number} code
   * @param {string} reason
   */
  _forceDrop(code, reason) {
    const conn = this._conn;
    if (!conn) return;
    const handler = conn.onclose;
    conn.onclose = null;
    try {
      conn.close(CLOSE.NORMAL, reason);
    } catch (_) {
      /* already gone */
    }
    if (handler) handler({ code, reason });
  }

  /** Drop the socket without any event. */
  _teardown() {
    this._generation += 1;
    const abort = this._abortOpen;
    this._abortOpen = null;
    if (abort) abort();
    this._stopHeartbeat();
    const conn = this._conn;
    this._conn = null;
    if (conn) {
      conn.onclose = null;
      conn.onmessage = null;
      try {
        conn.close(CLOSE.NORMAL, 'client closed');
      } catch (_) {
        /* already gone */
      }
    }
  }

  _resetRoomState() {
    this.room = null;
    this.you = null;
    this.participants = new Map();
    this.seats = [];
    this.session = null;
  }

  /** @param {ConnectionState} state */
  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous });
  }

  // -- sending --------------------------------------------------------------------------

  /** @param {Record<string, any>} message */
  _sendText(message) {
    if (!this._conn || this.state !== 'open') return false;
    this._conn.send(JSON.stringify(message));
    return true;
  }

  /** @param {Record<string, any>} message */
  _command(message) {
    if (!this._sendText(message)) {
      throw new VoiceRoomError('not_connected', `cannot send ${message.type}: the socket is ${this.state}`);
    }
  }

  /**
   * Send one encoded audio frame (1-4096 bytes). Returns false, without throwing, while
   * the socket is not open (audio is not worth queueing).
   * @param {ArrayBuffer|ArrayBufferView} frame
   * @returns {boolean}
   */
  sendVoice(frame) {
    const size = frame.byteLength;
    if (size < 1 || size > MAX_VOICE_BYTES) {
      throw new RangeError(`voice frames are 1-${MAX_VOICE_BYTES} bytes, not ${size}`);
    }
    if (!this._conn || this.state !== 'open') return false;
    this._conn.send(frame);
    return true;
  }

  /**
   * Send the following voice frames to one member only (voice whisper), or to the whole
   * room again with null.
   * @param {number|null} userId
   */
  setVoiceTarget(userId) {
    this.voiceTarget = userId;
    this._command({ type: 'voice.target', to: userId });
  }

  /** @param {string} text 1-500 characters; everyone gets it, you included */
  chat(text) {
    this._command({ type: 'chat', text });
  }

  /** @param {number} userId @param {string} text only you and they get it */
  whisper(userId, text) {
    this._command({ type: 'whisper', to: userId, text });
  }

  /** @param {number} [index] a given seat, or any free one */
  takeSeat(index) {
    this._command(index === undefined || index === null ? { type: 'seat.take' } : { type: 'seat.take', index });
  }

  leaveSeat() {
    this._command({ type: 'seat.leave' });
  }

  /** @param {boolean} muted */
  selfMute(muted) {
    this._command({ type: 'mute.self', muted });
  }

  /** Ask for a `pong`. */
  ping() {
    this._command({ type: 'ping' });
  }

  /**
   * Moderators (owner, admin).
   * @param {'mute'|'unmute'|'kick'|'ban'|'seat.remove'} action
   * @param {number} userId
   * @param {{reason?: string}} [options]
   */
  moderate(action, userId, options = {}) {
    /** @type {Record<string, any>} */
    const message = { type: 'moderate', action, user_id: userId };
    if (options.reason) message.reason = options.reason;
    this._command(message);
  }

  /** @param {number} index @param {boolean} locked */
  lockSeat(index, locked) {
    this._command({ type: 'seat.lock', index, locked });
  }

  /** @param {number} index @param {boolean} muted */
  muteSeat(index, muted) {
    this._command({ type: 'seat.mute', index, muted });
  }
}

/** @param {number} index @returns {Seat} */
function emptySeat(index) {
  return { index, user_id: null, locked: false, muted: false };
}
