/**
 * Voice frames: the server's 9-byte header, and the audio payload convention shared by
 * the demo page and the mini-program (codec byte, PCM16 helpers).
 *
 * @module voiceroom/voice
 */

import { AUDIO_OPUS, AUDIO_PCM16, VOICE_HEADER_BYTES } from './constants.js';

/** @typedef {import('./types.js').VoiceFrame} VoiceFrame */


/**
 * The room's codec (contract v1.1 "Codec": `"opus"` or `"pcm16"`, chosen when the room is
 * created) as the payload's codec byte. Every client of a room sends this codec and
 * expects it from the others; a client picks its encoder from it. A room from a server
 * older than v1.1 has no `codec`: such servers' demo page sent Opus, so Opus.
 * @param {{codec?: string}|null|undefined} room
 * @returns {number} AUDIO_OPUS or AUDIO_PCM16
 */
export function roomAudioCodec(room) {
  const codec = room && room.codec;
  if (codec === undefined || codec === null || codec === 'opus') return AUDIO_OPUS;
  if (codec === 'pcm16') return AUDIO_PCM16;
  throw new RangeError(`unknown room codec ${JSON.stringify(codec)}`);
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
