/**
 * The REST half of the client: `request()` with the contract's error codes, sign-in,
 * rooms, members, seat requests and mute all. `VoiceRoomClient` builds on it.
 *
 * @module voiceroom/rest
 */

import { VoiceRoomError } from './errors.js';
import { Emitter } from './events.js';

/**
 * @typedef {import('./types.js').User} User
 * @typedef {import('./types.js').Room} Room
 * @typedef {import('./types.js').Member} Member
 * @typedef {import('./types.js').Page} Page
 * @typedef {import('./types.js').AuthResult} AuthResult
 * @typedef {import('./types.js').JoinResult} JoinResult
 * @typedef {import('./types.js').SeatRequest} SeatRequest
 */

/** @param {Record<string, any>} params */
export function queryString(params) {
  const parts = [];
  for (const key of Object.keys(params)) {
    const value = params[key];
    if (value === undefined || value === null || value === '') continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export function defaultBaseUrl() {
  const loc = /** @type {any} */ (globalThis).location;
  return loc && loc.origin && loc.origin !== 'null' ? loc.origin : '';
}

/** @param {string} url */
export function httpToWs(url) {
  return url.replace(/^http(s?):/i, 'ws$1:');
}

export class RestClient extends Emitter {
  /**
   * @param {{baseUrl?: string, token?: string|null, fetch?: (url: string, init?: any) => Promise<any>, requestTimeoutMs?: number}} [options]
   */
  constructor(options = {}) {
    super();
    this.baseUrl = (options.baseUrl !== undefined ? options.baseUrl : defaultBaseUrl()).replace(/\/+$/, '');
    /** @type {string|null} */
    this.token = options.token || null;
    const globalFetch = /** @type {any} */ (globalThis).fetch;
    this._fetch = options.fetch || (globalFetch ? globalFetch.bind(globalThis) : null);
    this.requestTimeoutMs = options.requestTimeoutMs || 15000;
    /** The signed-in user, after register/login/me. @type {User|null} */
    this.user = null;
  }

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

  /**
   * Development sign-in, answered only by a node running with DEBUG on (404 otherwise):
   * logs in, or creates the account on first use. For the mini-program example in
   * WeChat DevTools against a local node, which has no WeChat app secret.
   * @param {{username: string, password: string}} credentials
   * @returns {Promise<AuthResult>}
   */
  async loginForDevelopment(credentials) {
    return this._signedIn(await this.request('POST', '/api/auth/dev', credentials));
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

  /** A fresh single-use socket ticket, and where the room lives now (`ws_url`). @param {number} roomId @returns {Promise<{ticket: string, ticket_expires_in: number, ws_url: string}>} */
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

  // -- seat requests and mute all over REST (beyond the contract: protocol.md 4.5) ---
  // In a room you are connected to, the socket calls (`requestSeat()`, `muteAll()`...)
  // do the same without a round trip; these work from anywhere.

  /** Moderators: the pending seat requests, oldest first. @param {number} roomId @returns {Promise<SeatRequest[]>} */
  listSeatRequests(roomId) {
    return this.request('GET', `/api/rooms/${roomId}/seat-requests`);
  }

  /**
   * Ask the moderators for a seat.
   * @param {number} roomId
   * @param {number|null} [index] a given seat, or any free one
   * @returns {Promise<SeatRequest>}
   */
  createSeatRequest(roomId, index) {
    return this.request('POST', `/api/rooms/${roomId}/seat-requests`, index === undefined || index === null ? {} : { index });
  }

  /** Withdraw your pending seat request. @param {number} roomId */
  deleteSeatRequest(roomId) {
    return this.request('DELETE', `/api/rooms/${roomId}/seat-requests`);
  }

  /**
   * Moderators: accept a seat request (seating the requester on `index`, else the seat
   * asked for, else the first free one; resolves with the Member) or refuse it.
   * @param {number} roomId
   * @param {number} userId
   * @param {boolean} accepted
   * @param {number|null} [index] only when accepting
   * @returns {Promise<Member|null>}
   */
  resolveSeatRequest(roomId, userId, accepted, index) {
    if (!accepted) return this.request('POST', `/api/rooms/${roomId}/seat-requests/${userId}/refuse`);
    const body = index === undefined || index === null ? {} : { index };
    return this.request('POST', `/api/rooms/${roomId}/seat-requests/${userId}/accept`, body);
  }

  /**
   * Moderators: mute (or unmute) every plain member now in the room; unmuting also lifts
   * their individual mutes. Not a room mode: someone who joins later is not muted.
   * @param {number} roomId
   * @param {boolean} muted
   * @returns {Promise<Member[]>} the plain members it applies to, in their new state
   */
  muteAllMembers(roomId, muted) {
    return this.request('POST', `/api/rooms/${roomId}/mute-all`, { muted });
  }

  /**
   * Members: report another member of the room. The server keeps the reported member's
   * relayed voice of the last 30 s and their chat of the last 5 minutes with the report
   * (contract v1.1, "Reports and evidence"); operators review it in the admin.
   * @param {number} roomId
   * @param {number} userId
   * @param {string} reason 1-500 characters
   * @returns {Promise<{id: number, evidence_seconds: number}>} the report (its other fields too)
   */
  reportMember(roomId, userId, reason) {
    return this.request('POST', `/api/rooms/${roomId}/reports`, { user_id: userId, reason });
  }
}
