/**
 * Opus for the mini-program: 20 ms mono frames in, raw Opus packets out, and back.
 *
 * libopus 1.4 as plain JavaScript (opusscript's emscripten build without WebAssembly,
 * vendored in vendor/opusscript/ by scripts/vendor-opus.mjs): it runs in a mini-program
 * on every platform, in DevTools and in Node. The wrapper works on the emscripten heap
 * directly (opusscript's own index.js needs Node's Buffer). Its binding takes and gives
 * PCM bytes one per 16-bit heap slot (what index.js does with HEAPU16.set(buffer)): the
 * byte length goes in, the sample count comes out.
 *
 * Opus packets do not depend on the sampling rate either side uses: this side encodes
 * the recorder's 16 kHz and decodes at 16 kHz what browsers encoded at 48 kHz.
 *
 * @module miniprogram/opus
 */
import createOpusModule from '../vendor/opusscript/opusscript_native_nasm.js';

const APPLICATION_VOIP = 2048;
const SET_BITRATE = 4002;
const MAX_PACKET_BYTES = 1276 * 3;
const MAX_FRAME_SAMPLES = (48000 * 120) / 1000; // the longest packet Opus has

let native = null;
/** The libopus module, made once (about 10 ms) and shared by encoders and decoders. */
function opus() {
  if (!native) native = createOpusModule();
  return native;
}

/**
 * Make the libopus module and run a second of audio through it, so that the first frames
 * of a conversation do not pay for it: on a busy machine the first use stalled the page
 * for seconds, and the frames that piled up meanwhile left a jitter buffer full.
 */
export function warmUpOpus() {
  const encoder = new OpusEncoder();
  const decoder = new OpusDecoder();
  const frame = new Int16Array(encoder.frameSamples);
  for (let n = 0; n < 50; n++) {
    for (let i = 0; i < frame.length; i++) frame[i] = Math.round(4000 * Math.sin((2 * Math.PI * 440 * (n * frame.length + i)) / 16000));
    decoder.decode(encoder.encode(frame));
  }
  encoder.destroy();
  decoder.destroy();
}

export class OpusEncoder {
  /** @param {{sampleRate?: number, bitrate?: number}} [options] */
  constructor({ sampleRate = 16000, bitrate = 24000 } = {}) {
    const m = opus();
    this.m = m;
    this.frameSamples = (sampleRate * 20) / 1000;
    this.handler = new m.OpusScriptHandler(sampleRate, 1, APPLICATION_VOIP);
    this.handler._encoder_ctl(SET_BITRATE, bitrate);
    this.pcm = m._malloc(this.frameSamples * 2 * 2); // one PCM byte per 16-bit slot
    this.out = m._malloc(MAX_PACKET_BYTES);
  }

  /**
   * One 20 ms frame of PCM16 (little-endian bytes or an Int16Array) to one Opus packet.
   * @param {Uint8Array|Int16Array} frame
   * @returns {Uint8Array}
   */
  encode(frame) {
    const m = this.m;
    const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    if (bytes.byteLength !== this.frameSamples * 2) throw new RangeError(`an Opus frame is ${this.frameSamples * 2} bytes of PCM16`);
    m.HEAPU16.set(bytes, this.pcm >> 1);
    const length = this.handler._encode(this.pcm, bytes.byteLength, this.out, this.frameSamples);
    if (length < 0) throw new Error(`opus_encode failed (${length})`);
    return m.HEAPU8.slice(this.out, this.out + length);
  }

  destroy() {
    if (!this.handler) return;
    this.m.OpusScriptHandler.destroy_handler(this.handler);
    this.m._free(this.pcm);
    this.m._free(this.out);
    this.handler = null;
  }
}

export class OpusDecoder {
  /** @param {{sampleRate?: number}} [options] */
  constructor({ sampleRate = 16000 } = {}) {
    const m = opus();
    this.m = m;
    this.sampleRate = sampleRate;
    this.handler = new m.OpusScriptHandler(sampleRate, 1, APPLICATION_VOIP);
    this.packet = m._malloc(MAX_PACKET_BYTES);
    this.pcm = m._malloc(MAX_FRAME_SAMPLES * 2 * 2); // one PCM byte per 16-bit slot
  }

  /**
   * One Opus packet to floats in [-1, 1) at this decoder's sampling rate.
   * @param {Uint8Array} packet
   * @returns {Float32Array}
   */
  decode(packet) {
    const m = this.m;
    if (packet.byteLength === 0 || packet.byteLength > MAX_PACKET_BYTES) throw new RangeError('not an Opus packet');
    m.HEAPU8.set(packet, this.packet);
    const samples = this.handler._decode(this.packet, packet.byteLength, this.pcm);
    if (samples < 0) throw new Error(`opus_decode failed (${samples})`);
    const slots = m.HEAPU16;
    const base = this.pcm >> 1;
    const out = new Float32Array(samples);
    for (let i = 0; i < samples; i++) {
      const value = (slots[base + 2 * i] & 0xff) | ((slots[base + 2 * i + 1] & 0xff) << 8);
      out[i] = (value > 0x7fff ? value - 0x10000 : value) / 32768;
    }
    return out;
  }

  destroy() {
    if (!this.handler) return;
    this.m.OpusScriptHandler.destroy_handler(this.handler);
    this.m._free(this.packet);
    this.m._free(this.pcm);
    this.handler = null;
  }
}
