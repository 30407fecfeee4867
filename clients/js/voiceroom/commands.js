/**
 * What the client sends on the room's socket: voice, chat, seats, seat requests,
 * moderation. Each call needs an open socket (`not_connected` otherwise, except
 * `sendVoice`, which returns false); refusals come back as `error` events.
 *
 * @module voiceroom/commands
 */

import { MAX_VOICE_BYTES } from './constants.js';
import { VoiceRoomError } from './errors.js';
import { RestClient } from './rest.js';

export class RoomCommands extends RestClient {
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
   * Moderators (owner, admin). `mute_all` and `unmute_all` act on the room: no userId
   * (or see `muteAll()`).
   * @param {'mute'|'unmute'|'kick'|'ban'|'seat.remove'|'mute_all'|'unmute_all'} action
   * @param {number} [userId]
   * @param {{reason?: string}} [options]
   */
  moderate(action, userId, options = {}) {
    /** @type {Record<string, any>} */
    const message = { type: 'moderate', action };
    if (userId !== undefined && userId !== null) message.user_id = userId;
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

  // -- seat requests and mute all (beyond the contract: docs/protocol.md section 4.5) --

  /**
   * Ask the moderators for a seat; they (and you) get `seat.requested`.
   * @param {number|null} [index] a given seat, or any free one
   */
  requestSeat(index) {
    this._command(index === undefined || index === null ? { type: 'seat.request' } : { type: 'seat.request', index });
  }

  /** Withdraw your pending request (`seat.request.cancelled`, reason `cancelled`). */
  cancelSeatRequest() {
    this._command({ type: 'seat.request.cancel' });
  }

  /**
   * Moderators: seat the requester on `index`, else the seat asked for, else the first
   * free one.
   * @param {number} userId
   * @param {number|null} [index]
   */
  acceptSeatRequest(userId, index) {
    /** @type {Record<string, any>} */
    const message = { type: 'seat.request.accept', user_id: userId };
    if (index !== undefined && index !== null) message.index = index;
    this._command(message);
  }

  /** Moderators: refuse a seat request. @param {number} userId */
  refuseSeatRequest(userId) {
    this._command({ type: 'seat.request.refuse', user_id: userId });
  }

  /**
   * Moderators: mute (or unmute) every plain member now in the room.
   * @param {boolean} muted
   */
  muteAll(muted) {
    this.moderate(muted ? 'mute_all' : 'unmute_all');
  }
}
