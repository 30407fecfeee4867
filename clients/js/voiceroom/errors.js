/** @module voiceroom/errors */

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
