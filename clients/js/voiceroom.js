/**
 * voiceroom.js: the JavaScript client of the voiceroom public contract v1.
 *
 * ES modules, no dependencies, no build step. It runs in browsers, in WeChat
 * mini-programs (through `WxSocketTransport` and `wxRequestFetch`) and in Node 20+ (give
 * it a WebSocket class, e.g. the `ws` package's).
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
 * This file is the public entry: import from it. The code lives in voiceroom/:
 * constants.js (close codes, voice header, audio convention), types.js (JSDoc shapes),
 * errors.js, events.js (on/off/once), rest.js (the REST client), commands.js (what the
 * socket sends), socket.js (browser, Node and WeChat socket adapters), voice.js (frame
 * header and audio payloads), state.js (the room's state merged from events), speak.js
 * (the speak rule) and client.js (VoiceRoomClient: connect, reconnect and resume).
 *
 * @module voiceroom
 */

export {
  AUDIO_OPUS,
  AUDIO_PCM16,
  CLOSE,
  FINAL_CLOSE_CODES,
  MAX_VOICE_BYTES,
  VOICE_HEADER_BYTES,
  VOICE_ROOM,
  VOICE_WHISPER,
} from './voiceroom/constants.js';
export { VoiceRoomError } from './voiceroom/errors.js';
export {
  decodeAudioPayload,
  encodeAudioPayload,
  float32ToPcm16,
  parseVoiceFrame,
  pcm16ToFloat32,
  roomAudioCodec,
} from './voiceroom/voice.js';
export { WebSocketTransport, WxSocketTransport, wxRequestFetch } from './voiceroom/socket.js';
export { maySpeak } from './voiceroom/speak.js';
export { VoiceRoomClient } from './voiceroom/client.js';
