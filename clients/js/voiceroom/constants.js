/**
 * The contract's constants: close codes, the voice frame header, the audio convention.
 *
 * `CLOSE` and `FINAL_CLOSE_CODES` mirror the server's `rooms.contract.CloseCode` and
 * `FINAL_CLOSE_CODES`; tests/clients/test_contract.py reads this file and fails when
 * they differ.
 *
 * @module voiceroom/constants
 */

/** WebSocket close codes of the contract (plus the standard ones the client meets). */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // client side only: the browser's own close
  ABNORMAL: 1006, // client side only: no close frame (network loss)
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
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
export const FINAL_CLOSE_CODES = Object.freeze([
  CLOSE.LEFT,
  CLOSE.FORBIDDEN,
  CLOSE.UNKNOWN_ROOM,
  CLOSE.ROOM_FULL,
  CLOSE.KICKED,
  CLOSE.ROOM_CLOSED,
  CLOSE.REPLACED,
  CLOSE.TOO_MANY_SOCKETS,
]);

/** Voice frame kinds (byte 0 of the server's 9-byte header). */
export const VOICE_ROOM = 1;
export const VOICE_WHISPER = 2;
export const VOICE_HEADER_BYTES = 9;
export const MAX_VOICE_BYTES = 4096;

/**
 * Audio payload convention shared by the demo page and the mini-program example (the
 * server never looks inside a payload): the first byte names the codec, which is the
 * room's `codec` (see roomAudioCodec in voice.js).
 * - AUDIO_PCM16 (0x01): then little-endian signed 16-bit PCM, 16 kHz, mono (20 ms = 640 bytes).
 * - AUDIO_OPUS  (0x02): then one raw Opus packet, 48 kHz, mono (20 ms).
 */
export const AUDIO_PCM16 = 0x01;
export const AUDIO_OPUS = 0x02;
