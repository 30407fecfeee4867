/**
 * Socket adapters: the seam between the client and a WebSocket implementation
 * (browsers and Node's `ws`, WeChat's `wx.connectSocket`), and `wx.request` as fetch.
 *
 * @module voiceroom/socket
 */

import { CLOSE } from './constants.js';

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
