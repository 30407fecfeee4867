/**
 * VoiceRoomClient: the room's socket on top of the REST client: connect, the room's
 * state merged from events, reconnect and resume.
 *
 * @module voiceroom/client
 */

import { CLOSE, FINAL_CLOSE_CODES } from './constants.js';
import { RoomCommands } from './commands.js';
import { VoiceRoomError } from './errors.js';
import { httpToWs, queryString } from './rest.js';
import { WebSocketTransport } from './socket.js';
import { maySpeak } from './speak.js';
import { applyEvent, applyWelcome } from './state.js';
import { parseVoiceFrame } from './voice.js';

/**
 * @typedef {import('./types.js').Room} Room
 * @typedef {import('./types.js').Participant} Participant
 * @typedef {import('./types.js').Seat} Seat
 * @typedef {import('./types.js').SeatRequest} SeatRequest
 * @typedef {import('./types.js').WelcomeEvent} WelcomeEvent
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./socket.js').Transport} Transport
 * @typedef {import('./socket.js').Connection} Connection
 */

const FINAL = new Set(FINAL_CLOSE_CODES);

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

export class VoiceRoomClient extends RoomCommands {
  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    super(options);
    this.wsBaseUrl = (options.wsBaseUrl || httpToWs(this.baseUrl)).replace(/\/+$/, '');
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
    this._random = options.random || Math.random;

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
    /** Pending seat requests you can see: a moderator's queue, or your own. @type {SeatRequest[]} */
    this.seatRequests = [];
    /** @type {{resume_token: string, resume_window_s: number}|null} */
    this.session = null;
    /** @type {ConnectionState} */
    this.state = 'idle';
    /** The current voice target (null: the whole room); re-applied after a reconnect. */
    this.voiceTarget = /** @type {number|null} */ (null);

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
    /**
     * Where the room lives: the latest `ws_url` the server answered (join, ticket) for
     * that room. An absolute ws(s):// URL names the room's home node; a path is relative
     * to wsBaseUrl. @type {{roomId: number, url: string}|null}
     */
    this._wsUrl = null;
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
    this._noteWsUrl(roomId, joined);
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

  /**
   * May your voice be heard now? The socket is open and the speak rule (`maySpeak`)
   * allows it; frames sent otherwise are dropped by the server.
   * @returns {boolean}
   */
  maySpeak() {
    return this.state === 'open' && maySpeak(this);
  }

  /** Participants as an array, in the order they came. @returns {Participant[]} */
  participantList() {
    return Array.from(this.participants.values());
  }

  /** @returns {Promise<Record<string, string>>} */
  async _freshCredentials() {
    if (this.transport.sendsHeaders && this.token) return {};
    const roomId = /** @type {number} */ (this.roomId);
    const answer = await this.ticket(roomId);
    this._noteWsUrl(roomId, answer);
    return { ticket: answer.ticket };
  }

  /**
   * A ticket to come back with when resuming is not possible. Once the resume window
   * has passed the server no longer counts the user as a member (the ticket endpoint
   * answers 403 `not_a_member`), so the client joins again, as the user would.
   * @returns {Promise<Record<string, string>>}
   */
  async _reconnectCredentials() {
    const roomId = /** @type {number} */ (this.roomId);
    let answer;
    try {
      answer = await this.ticket(roomId);
    } catch (err) {
      if (!(err instanceof VoiceRoomError) || err.code !== 'not_a_member' || !this.reconnectOptions.rejoin) throw err;
      answer = await this.joinRoom(roomId, { password: this._joinPassword });
    }
    this._noteWsUrl(roomId, answer);
    return { ticket: answer.ticket };
  }

  /**
   * Remember the `ws_url` of a join or ticket answer: where the room lives now.
   * @param {number} roomId
   * @param {any} answer
   */
  _noteWsUrl(roomId, answer) {
    if (answer && typeof answer.ws_url === 'string' && answer.ws_url) this._wsUrl = { roomId, url: answer.ws_url };
  }

  /**
   * The socket URL for the current room: the latest `ws_url` (absolute, or a path
   * under wsBaseUrl), else the room's path under wsBaseUrl.
   * @param {Record<string, string>} query
   * @returns {string}
   */
  _socketUrl(query) {
    const known = this._wsUrl && this._wsUrl.roomId === this.roomId ? this._wsUrl.url : null;
    const where = known || `/ws/rooms/${this.roomId}/`;
    const base = /^wss?:\/\//i.test(where) ? where : `${this.wsBaseUrl}${where.startsWith('/') ? '' : '/'}${where}`;
    return base + queryString(query);
  }

  /**
   * A resume failed without being refused (the node is unreachable, or closed the socket
   * before its welcome): the room may have moved to another node. Ask the server where
   * it lives now (the ticket answer's `ws_url`). True when the answer names a new place.
   * @returns {Promise<boolean>}
   */
  async _relocate() {
    const roomId = /** @type {number} */ (this.roomId);
    const before = this._wsUrl && this._wsUrl.roomId === roomId ? this._wsUrl.url : null;
    try {
      this._noteWsUrl(roomId, await this.ticket(roomId));
    } catch (_) {
      return false; // the REST side is unreachable too: retry later, same place
    }
    return Boolean(this._wsUrl && this._wsUrl.roomId === roomId && this._wsUrl.url !== before);
  }

  /**
   * Open one socket; resolve on its welcome, reject if it closes before.
   * @param {Record<string, string>} query
   * @returns {Promise<WelcomeEvent>}
   */
  _open(query) {
    const generation = ++this._generation;
    const url = this._socketUrl(query);
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
    this.session = welcome.session;
    this._resumeRefused = false;
    applyWelcome(this, welcome);
    this._setState('open');
    if (this.voiceTarget !== null) {
      // The target belongs to the socket: set it again on the new one.
      this._sendText({ type: 'voice.target', to: this.voiceTarget });
    }
    this._emit('welcome', welcome);
    this._emit('participants', { participants: this.participantList() });
    this._emit('seats', { seats: this.seats });
    this._emit('seatRequests', { seatRequests: this.seatRequests });
  }

  /** @param {any} message */
  _onMessage(message) {
    const changed = applyEvent(this, message);
    this._emit('message', message);
    this._emit(message.type, message);
    if (changed === 'participants') this._emit('participants', { participants: this.participantList() });
    else if (changed === 'seats') this._emit('seats', { seats: this.seats });
    else if (changed === 'seatRequests') this._emit('seatRequests', { seatRequests: this.seatRequests });
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
        if (resume) {
          // The resume failed without being refused: the node may be dead and the room
          // moved. Ask where it lives now; if elsewhere, resume there at once.
          if (await this._relocate()) delayNext = false;
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
    this.seatRequests = [];
    this.session = null;
  }

  /** @param {ConnectionState} state */
  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous });
  }
}
