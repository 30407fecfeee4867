// The demo page: sign up or log in, the room list with live online counts, a room with
// its seats, people, chat and voice. Everything talks to the server through the SDK.
//
// Audio: the microphone is cut into 20 ms frames by an AudioWorklet and sent in the
// room's codec (contract v1.1 "Codec", the SDK's roomAudioCodec): Opus through WebCodecs
// (the default; a browser without WebCodecs listens only) or 16 kHz PCM16, with the
// codec in the payload's first byte (AUDIO_OPUS / AUDIO_PCM16). Each speaker plays
// through their own AudioWorklet with a small jitter buffer. Speaking indicators come
// from the level of the decoded audio.
//
// Counters for tests and the curious: window.voiceroomDemo.

import {
  AUDIO_OPUS,
  AUDIO_PCM16,
  VoiceRoomClient,
  VoiceRoomError,
  decodeAudioPayload,
  encodeAudioPayload,
  float32ToPcm16,
  pcm16ToFloat32,
  roomAudioCodec,
} from '../js/voiceroom.js';

const FRAME_MS = 20;
const PCM_RATE = 16000;
const OPUS_BITRATE = 24000; // the mini-program example's too
const SILENCE_RMS = 0.01; // about -40 dBFS: below it a frame counts as silence
const SPEAKING_HOLD_MS = 350; // an indicator stays lit this long after the last voiced frame
const LEVEL_STALE_MS = 250; // no frame for this long: the speaker's level is 0
const ROOMS_POLL_MS = 3000;
const TOKEN_KEY = 'voiceroom.demo.token';

const stats = {
  codec: null,
  codecError: null,
  state: 'idle',
  framesSent: 0,
  voiceBytesSent: 0, // payload bytes (codec byte included) of the frames sent
  voiceSizes: [], // the sizes of the last 1000 of them
  encodeDelayMs: [], // Opus: frame handed to WebCodecs -> its packet out (last 200)
  framesReceived: 0,
  framesDecoded: 0,
  decodeErrors: 0,
  framesFrom: {},
  nonSilentFramesFrom: {},
  lastLevelFrom: {},
  recentFrom: {}, // the last 0.5 s each speaker played, as 20 ms Float32Arrays (tests read it)
  sampleRate: 0,
  micLevel: 0,
  micError: null,
  onsets: [], // players' onsets after silence: {id, at (epoch ms), waitedMs (in the jitter buffer)}
  micOnsets: [], // the microphone's onsets after silence (epoch ms)
  client: null,
};
window.voiceroomDemo = stats;

// --- audio ---------------------------------------------------------------------------

/** Root mean square of a frame: its loudness, 0 to 1. */
function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

/** Resample one frame: averaging when going down (a cheap low-pass), linear going up. */
function resample(input, from, to) {
  if (from === to) return input;
  const length = Math.round((input.length * to) / from);
  const out = new Float32Array(length);
  const ratio = from / to;
  if (ratio > 1) {
    for (let i = 0; i < length; i++) {
      const start = Math.floor(i * ratio);
      const end = Math.min(input.length, Math.max(start + 1, Math.floor((i + 1) * ratio)));
      let sum = 0;
      for (let j = start; j < end; j++) sum += input[j];
      out[i] = sum / (end - start);
    }
  } else {
    for (let i = 0; i < length; i++) {
      const pos = i * ratio;
      const j = Math.floor(pos);
      const a = input[j];
      const b = j + 1 < input.length ? input[j + 1] : a;
      out[i] = a + (b - a) * (pos - j);
    }
  }
  return out;
}

class AudioEngine {
  /**
   * @param {{codec: string, send: (bytes: Uint8Array) => void, canSpeak: () => boolean}} options
   */
  constructor(options) {
    this.codec = null; // set from the room (useRoomCodec) once joined
    this.send = options.send;
    this.canSpeak = options.canSpeak;
    this.muted = false;
    this.speakers = new Map();
    this.lastMicVoice = 0;
    this.timestamp = 0;
    this.handedAt = new Map(); // AudioData timestamp -> when it went to the encoder
  }

  /** Call from a click: the AudioContext must be created during the user's gesture. */
  async start() {
    const Context = window.AudioContext || window.webkitAudioContext;
    try {
      this.ctx = new Context({ sampleRate: 48000, latencyHint: 'interactive' });
    } catch (_) {
      this.ctx = new Context({ latencyHint: 'interactive' });
    }
    const modules = this.ctx.audioWorklet.addModule(new URL('./worklets.js', import.meta.url));
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    await modules;
    this.opusSupported = await this.canOpus();
    this.frameSamples = Math.round((this.ctx.sampleRate * FRAME_MS) / 1000);
    stats.sampleRate = this.ctx.sampleRate;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      // No microphone (or refused): the page still plays the others.
      this.micError = stats.micError = `${err.name}: ${err.message}`;
      return;
    }
    const source = this.ctx.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(this.ctx, 'voiceroom-capture', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: 'explicit',
      processorOptions: { frameSamples: this.frameSamples },
    });
    this.capture.port.onmessage = (event) => this.captured(event.data);
    const sink = this.ctx.createGain();
    sink.gain.value = 0;
    source.connect(this.capture).connect(sink).connect(this.ctx.destination);
  }

  opusConfig() {
    return { codec: 'opus', sampleRate: this.ctx.sampleRate, numberOfChannels: 1, bitrate: OPUS_BITRATE, opus: { frameDuration: FRAME_MS * 1000 } };
  }

  async canOpus() {
    if (!('AudioEncoder' in window && 'AudioDecoder' in window)) return false;
    try {
      return (await AudioEncoder.isConfigSupported(this.opusConfig())).supported;
    } catch (_) {
      return false;
    }
  }

  /** Send in the room's codec: every client of the room expects it. */
  useRoomCodec(room) {
    const wanted = roomAudioCodec(room) === AUDIO_OPUS ? 'opus' : 'pcm';
    this.codecError = null;
    if (wanted === 'opus' && !this.opusSupported) {
      // Sending PCM16 to an Opus room would only be noise to the others: listen only.
      this.codec = null;
      this.codecError = 'This browser has no Opus encoder (WebCodecs): listening only.';
    } else {
      this.codec = wanted;
    }
    stats.codec = this.codec;
    stats.codecError = this.codecError;
  }

  encoder() {
    if (this._encoder && this._encoder.state === 'configured') return this._encoder;
    this._encoder = new AudioEncoder({
      output: (chunk) => {
        const handed = this.handedAt.get(chunk.timestamp);
        if (handed !== undefined) {
          this.handedAt.delete(chunk.timestamp);
          stats.encodeDelayMs.push(performance.now() - handed);
          if (stats.encodeDelayMs.length > 200) stats.encodeDelayMs.shift();
        }
        const bytes = new Uint8Array(chunk.byteLength);
        chunk.copyTo(bytes);
        this.send(encodeAudioPayload(AUDIO_OPUS, bytes));
      },
      error: (err) => {
        console.warn('Opus encoder failed: listening only', err);
        this.codec = stats.codec = null;
        this.codecError = stats.codecError = `Opus encoder failed: ${err.message || err}`;
      },
    });
    this._encoder.configure(this.opusConfig());
    return this._encoder;
  }

  /** One 20 ms frame from the microphone. */
  captured(samples) {
    const level = rms(samples);
    stats.micLevel = level;
    const speaking = !this.muted && this.canSpeak() && this.codec !== null;
    if (level > SILENCE_RMS && this.micQuiet) stats.micOnsets.push(performance.timeOrigin + performance.now() - FRAME_MS);
    this.micQuiet = level <= SILENCE_RMS;
    if (level > SILENCE_RMS && speaking) this.lastMicVoice = performance.now();
    if (!speaking) return;
    if (this.codec === 'opus') {
      const data = new AudioData({
        format: 'f32-planar',
        sampleRate: this.ctx.sampleRate,
        numberOfFrames: samples.length,
        numberOfChannels: 1,
        timestamp: this.timestamp,
        data: samples,
      });
      this.handedAt.set(this.timestamp, performance.now());
      if (this.handedAt.size > 100) this.handedAt.delete(this.handedAt.keys().next().value);
      this.timestamp += FRAME_MS * 1000;
      this.encoder().encode(data);
      data.close();
    } else {
      this.send(encodeAudioPayload(AUDIO_PCM16, float32ToPcm16(resample(samples, this.ctx.sampleRate, PCM_RATE))));
    }
  }

  /** One voice frame from the server ({senderId, seq, payload}). */
  receive(frame) {
    const id = frame.senderId;
    stats.framesReceived += 1;
    stats.framesFrom[id] = (stats.framesFrom[id] || 0) + 1;
    if (!this.ctx) return;
    const speaker = this.speaker(id);
    const { codec, data } = decodeAudioPayload(frame.payload);
    if (codec === AUDIO_PCM16) {
      this.play(id, speaker, resample(pcm16ToFloat32(data), PCM_RATE, this.ctx.sampleRate));
    } else if (codec === AUDIO_OPUS && 'AudioDecoder' in window) {
      if (!speaker.decoder || speaker.decoder.state === 'closed') speaker.decoder = this.decoder(id, speaker);
      speaker.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: frame.seq * FRAME_MS * 1000, data }));
    } else {
      stats.decodeErrors += 1; // a codec this page cannot play
    }
  }

  decoder(id, speaker) {
    const decoder = new AudioDecoder({
      output: (audio) => {
        const samples = new Float32Array(audio.numberOfFrames);
        audio.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
        const rate = audio.sampleRate;
        audio.close();
        this.play(id, speaker, resample(samples, rate, this.ctx.sampleRate));
      },
      error: () => {
        stats.decodeErrors += 1;
      },
    });
    decoder.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
    return decoder;
  }

  play(id, speaker, samples) {
    const level = rms(samples);
    const now = performance.now();
    stats.framesDecoded += 1;
    stats.lastLevelFrom[id] = speaker.level = level;
    speaker.lastFrameAt = now;
    if (level > SILENCE_RMS) {
      speaker.lastVoiceAt = now;
      stats.nonSilentFramesFrom[id] = (stats.nonSilentFramesFrom[id] || 0) + 1;
    }
    const recent = (stats.recentFrom[id] = stats.recentFrom[id] || []);
    recent.push(samples.slice());
    if (recent.length > 25) recent.shift();
    speaker.node.port.postMessage(samples, [samples.buffer]);
  }

  speaker(id) {
    let speaker = this.speakers.get(id);
    if (!speaker) {
      const frame = this.frameSamples || Math.round((this.ctx.sampleRate * FRAME_MS) / 1000);
      const node = new AudioWorkletNode(this.ctx, 'voiceroom-player', {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { prebufferSamples: 3 * frame, maxSamples: 10 * frame, silence: SILENCE_RMS },
      });
      node.port.onmessage = (event) => this.onset(id, event.data);
      node.connect(this.ctx.destination);
      speaker = { node, decoder: null, level: 0, lastFrameAt: 0, lastVoiceAt: 0 };
      this.speakers.set(id, speaker);
    }
    return speaker;
  }

  /** The player started sounding after silence, at `contextTime` on the audio clock. */
  onset(id, { contextTime, waited }) {
    if (!this.ctx || contextTime === undefined) return;
    // The audio clock to the wall clock, through the output's latest timestamp.
    const stamp = this.ctx.getOutputTimestamp();
    const at = performance.timeOrigin + stamp.performanceTime + (contextTime - stamp.contextTime) * 1000;
    stats.onsets.push({ id, at, waitedMs: waited * 1000 });
    if (stats.onsets.length > 200) stats.onsets.shift();
  }

  forgetAll() {
    for (const id of [...this.speakers.keys()]) this.forget(id);
  }

  forget(id) {
    const speaker = this.speakers.get(id);
    if (!speaker) return;
    speaker.node.disconnect();
    if (speaker.decoder && speaker.decoder.state !== 'closed') speaker.decoder.close();
    this.speakers.delete(id);
    stats.lastLevelFrom[id] = 0;
  }

  /** Every 100 ms: levels of speakers gone quiet fall to 0. */
  tick(now) {
    for (const [id, speaker] of this.speakers) {
      if (now - speaker.lastFrameAt > LEVEL_STALE_MS) stats.lastLevelFrom[id] = speaker.level = 0;
    }
  }

  isSpeaking(id, now) {
    const speaker = this.speakers.get(id);
    return Boolean(speaker && now - speaker.lastVoiceAt < SPEAKING_HOLD_MS);
  }

  selfSpeaking(now) {
    return now - this.lastMicVoice < SPEAKING_HOLD_MS;
  }

  stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.forgetAll();
    if (this._encoder && this._encoder.state !== 'closed') this._encoder.close();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}

// --- DOM helpers ----------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

/** Build an element; text children are text nodes, so user text is never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const show = (el, visible) => {
  el.hidden = !visible;
};

function errorText(err) {
  if (err instanceof VoiceRoomError) {
    const fields = err.fields ? Object.entries(err.fields).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`) : [];
    return fields.length ? fields.join('; ') : err.detail;
  }
  return String((err && err.message) || err);
}

const nameOf = (p) => (p ? p.display_name || p.username : '');

function timeOf(ts) {
  const d = ts ? new Date(ts) : new Date();
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// --- the page -------------------------------------------------------------------------

const client = new VoiceRoomClient({ token: localStorage.getItem(TOKEN_KEY) });
stats.client = client;

let engine = null;
let roomsTimer = null;
let pendingMute = null; // the self-mute the user asked for, until the server confirms

function isModerator() {
  return Boolean(client.you && (client.you.role === 'owner' || client.you.role === 'admin'));
}

/** The SDK's speak rule (maySpeak), so the page does not send frames the server would drop. */
function canSpeak() {
  return client.maySpeak();
}

// -- signing in --

async function boot() {
  wireForms();
  wireClient();
  if (client.token) {
    try {
      await client.me();
      enterApp();
      return;
    } catch (err) {
      if (err.status !== 401) console.warn(err);
      localStorage.removeItem(TOKEN_KEY);
      client.token = null;
    }
  }
  showAuth();
}

function showAuth() {
  show($('#auth'), true);
  show($('#app'), false);
  show($('#whoami'), false);
  clearInterval(roomsTimer);
  $('#auth-username').focus();
}

function enterApp() {
  localStorage.setItem(TOKEN_KEY, client.token);
  show($('#auth'), false);
  show($('#app'), true);
  show($('#whoami'), true);
  $('#whoami-name').textContent = `${nameOf(client.user)} (@${client.user.username})`;
  refreshRooms();
  clearInterval(roomsTimer);
  roomsTimer = setInterval(refreshRooms, ROOMS_POLL_MS);
}

async function authenticate(register) {
  const username = $('#auth-username').value.trim();
  const password = $('#auth-password').value;
  $('#auth-error').textContent = '';
  try {
    if (register) await client.register({ username, password, display_name: $('#auth-display').value.trim() });
    else await client.login({ username, password });
    enterApp();
  } catch (err) {
    $('#auth-error').textContent = errorText(err);
  }
}

// -- the room list --

async function refreshRooms() {
  let page;
  try {
    page = await client.listRooms({ status: 'open' });
  } catch (err) {
    if (err.status === 401) return signedOut();
    $('#rooms-updated').textContent = 'offline';
    return;
  }
  $('#rooms-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  const list = $('#room-list');
  list.replaceChildren(
    ...page.results.map((room) => {
      const here = client.roomId === room.id && client.state !== 'closed' && client.state !== 'idle';
      return h(
        'li',
        { class: `room-row${here ? ' current' : ''}`, dataset: { roomId: room.id } },
        h(
          'div',
          { class: 'room-info' },
          h('strong', {}, room.name, room.is_private ? h('span', { class: 'tag private' }, 'password') : null),
          room.topic ? h('small', { class: 'muted' }, room.topic) : null,
          h('small', { class: 'muted' }, `by ${nameOf(room.owner)} · ${room.seat_count} seats`),
        ),
        h('span', { class: `count${room.online_count ? ' live' : ''}`, title: 'people online' }, String(room.online_count)),
        here ? h('span', { class: 'badge' }, 'here') : h('button', { class: 'join', onclick: () => joinRoom(room) }, 'Join'),
      );
    }),
  );
  if (!page.results.length) list.replaceChildren(h('li', { class: 'muted' }, 'No open room yet: create one.'));
}

async function createRoom(event) {
  event.preventDefault();
  $('#lobby-error').textContent = '';
  const fields = {
    name: $('#room-name').value.trim(),
    topic: $('#room-topic').value.trim(),
    seat_count: Number($('#room-seats').value || 0),
    codec: $('#room-codec').value,
  };
  const password = $('#room-password').value;
  if (password) fields.password = password;
  startAudio(); // inside the click: browsers only let a gesture start audio
  let room;
  try {
    room = await client.createRoom(fields);
  } catch (err) {
    $('#lobby-error').textContent = errorText(err);
    if (!inRoom()) stopAudio();
    return;
  }
  $('#create-form').reset();
  $('#room-seats').value = '8';
  await joinRoom(room, { password });
}

// -- a room --

function startAudio() {
  if (engine) return engine.started;
  engine = new AudioEngine({
    canSpeak,
    send: (bytes) => {
      if (client.sendVoice(bytes)) {
        stats.framesSent += 1;
        stats.voiceBytesSent += bytes.length;
        stats.voiceSizes.push(bytes.length);
        if (stats.voiceSizes.length > 1000) stats.voiceSizes.shift();
      }
    },
  });
  engine.started = engine.start().catch((err) => {
    console.warn('audio failed', err);
    stats.micError = String(err);
  });
  return engine.started;
}

const inRoom = () => client.state === 'open' || client.state === 'reconnecting' || client.state === 'connecting';

async function joinRoom(room, options = {}) {
  $('#lobby-error').textContent = '';
  const audio = startAudio(); // first, while the click still counts as a user gesture
  if (inRoom()) {
    await client.leave().catch(() => {});
    if (engine) engine.forgetAll();
  }
  let password = options.password;
  for (;;) {
    try {
      await client.join(room.id, password ? { password } : {});
      break;
    } catch (err) {
      if (err.code === 'bad_password') {
        password = window.prompt(password ? 'Wrong password, try again:' : `Password for ${room.name}:`);
        if (password) continue;
      }
      $('#lobby-error').textContent = errorText(err);
      stopAudio();
      backToLobby();
      return;
    }
  }
  pendingMute = null;
  await audio;
  if (engine) engine.useRoomCodec(client.room);
  $('#chat-log').replaceChildren();
  notice('');
  show($('#lobby-hint'), false);
  show($('#room'), true);
  renderRoom();
  refreshRooms();
}

async function leaveRoom({ quiet = false } = {}) {
  try {
    await client.leave();
  } catch (err) {
    console.warn(err);
  }
  stopAudio();
  if (!quiet) backToLobby();
}

function stopAudio() {
  if (engine) engine.stop();
  engine = null;
}

function backToLobby() {
  show($('#room'), false);
  show($('#lobby-hint'), true);
  refreshRooms();
}

function notice(text) {
  $('#room-notice').textContent = text;
  show($('#room-notice'), Boolean(text));
}

const CLOSE_TEXT = {
  4000: 'You left the room.',
  4003: 'You are banned from this room.',
  4004: 'This room does not exist.',
  4009: 'The room is full.',
  4010: 'You were removed from the room.',
  4011: 'The room was closed.',
  4012: 'You joined this room from another window; this one stepped aside.',
  4029: 'Too many open rooms for this account or network; close one and try again.',
};

function wireClient() {
  client.on('participants', () => {
    if (engine && client.you) {
      if (pendingMute !== null && client.you.self_muted === pendingMute) pendingMute = null;
      engine.muted = pendingMute !== null ? pendingMute : client.you.self_muted;
    }
    renderParticipants();
    renderSeats();
    renderControls();
  });
  client.on('seats', () => {
    renderSeats();
    renderControls();
  });
  client.on('room.updated', renderRoom);
  client.on('voice', (frame) => {
    if (engine) engine.receive(frame);
  });
  client.on('participant.left', (event) => {
    if (engine) engine.forget(event.user_id);
    if (client.voiceTarget === event.user_id && client.state === 'open') {
      safe(() => client.setVoiceTarget(null)); // the one we talked to alone has left
    }
  });
  client.on('chat', (event) => addChat(event));
  client.on('whisper', (event) => addChat(event, true));
  client.on('error', (event) => addSystem(`Refused: ${event.detail} (${event.code})`));
  client.on('state', ({ state }) => {
    stats.state = state;
    renderControls();
  });
  client.on('close', (event) => {
    if (event.willReconnect) {
      notice('Connection lost; reconnecting…');
      return;
    }
    if (event.code === 1000 && event.reason === 'client disconnect') return;
    if (CLOSE_TEXT[event.code] || event.reason) {
      stopAudio();
      backToLobby();
      $('#lobby-error').textContent = CLOSE_TEXT[event.code] || `Disconnected (${event.reason}).`;
    }
  });
  client.on('welcome', (event) => {
    notice('');
    if (event.resumed) addSystem('Reconnected.');
  });
}

function renderRoom() {
  if (!client.room) return;
  $('#room-title').textContent = client.room.name;
  $('#room-topic-text').textContent = client.room.topic || '';
  renderParticipants();
  renderSeats();
  renderControls();
}

function renderControls() {
  const state = client.state;
  const badge = $('#conn-state');
  badge.textContent = state === 'open' ? 'connected' : state;
  badge.className = `badge state-${state}`;
  $('#codec').textContent = engine && engine.codec ? (engine.codec === 'opus' ? 'Opus' : 'PCM16 16 kHz') : '';
  const you = client.you;
  const mute = $('#btn-mute');
  // A moderator's mute (of the person or of their seat) outranks the self-mute: the
  // button would change nothing the others hear, so it is disabled and a badge says why.
  const modMuted = moderatorMute(you);
  mute.disabled = !you || state !== 'open' || !engine || !engine.capture || Boolean(modMuted);
  const selfMuted = pendingMute !== null ? pendingMute : Boolean(you && you.self_muted);
  mute.textContent = selfMuted ? 'Unmute my mic' : 'Mute my mic';
  mute.title = modMuted ? `${modMuted}: only a moderator can give you the floor again` : '';
  mute.classList.toggle('danger', selfMuted && !modMuted);
  $('#mod-muted').textContent = modMuted || '';
  show($('#mod-muted'), Boolean(modMuted) && state === 'open');
  let hint = '';
  if (engine && engine.micError) hint = 'No microphone: listening only.';
  else if (engine && engine.codecError) hint = engine.codecError;
  else if (you && you.muted) hint = 'A moderator muted you.';
  else if (modMuted) hint = 'A moderator muted your seat.';
  else if (client.room && client.room.seat_count === 0) hint = 'No seats here: everyone can talk.';
  else if (you && (you.seat === null || you.seat === undefined)) hint = 'Take a free seat to talk.';
  $('#seat-hint').textContent = hint;
  if (state === 'open' && $('#room-notice').textContent.startsWith('Connection lost')) notice('');
}

/** Why a moderator silenced `you`, or null: muted in person, or sitting on a muted seat. */
function moderatorMute(you) {
  if (!you) return null;
  if (you.muted) return 'Muted by moderator';
  const seat = you.seat !== null && you.seat !== undefined ? client.seats[you.seat] : null;
  return seat && seat.muted ? 'Seat muted by moderator' : null;
}

/** Seats are numbered from 1 for people; the wire's `index` counts from 0. */
const seatNumber = (index) => index + 1;

function renderSeats() {
  const grid = $('#seats');
  if (!client.room) return;
  const you = client.you;
  const mod = isModerator();
  grid.replaceChildren(
    ...client.seats.map((seat) => {
      const who = seat.user_id !== null ? client.participants.get(seat.user_id) : null;
      const mine = you && seat.user_id === you.user_id;
      const classes = ['seat', who ? 'taken' : 'free', mine ? 'mine' : '', seat.locked ? 'locked' : '', seat.muted ? 'muted' : ''];
      const take = () => {
        try {
          if (mine) client.leaveSeat();
          else if (seat.user_id === null) client.takeSeat(seat.index);
        } catch (err) {
          addSystem(errorText(err));
        }
      };
      return h(
        'div',
        { class: classes.filter(Boolean).join(' '), dataset: { index: seat.index, userId: seat.user_id ?? '' } },
        h(
          'button',
          { class: 'seat-main', onclick: take, title: mine ? 'Leave the seat' : seat.user_id === null ? 'Take this seat' : nameOf(who) },
          h('span', { class: 'avatar' }, who ? nameOf(who).slice(0, 1).toUpperCase() : seat.locked ? '×' : '+'),
          h('span', { class: 'seat-name' }, who ? nameOf(who) : seat.locked ? 'locked' : 'free'),
          h('span', { class: 'seat-label' }, `seat ${seatNumber(seat.index)}`, seat.muted ? ' · seat muted' : who && (who.muted || who.self_muted) ? ' · mic off' : ''),
        ),
        mod
          ? h(
              'div',
              { class: 'seat-mod' },
              h('button', { class: 'tiny', onclick: () => safe(() => client.lockSeat(seat.index, !seat.locked)) }, `${seat.locked ? 'Unlock' : 'Lock'} seat ${seatNumber(seat.index)}`),
              h('button', { class: 'tiny', title: 'Whoever sits here cannot be heard', onclick: () => safe(() => client.muteSeat(seat.index, !seat.muted)) }, `${seat.muted ? 'Unmute' : 'Mute'} seat ${seatNumber(seat.index)}`),
            )
          : null,
      );
    }),
  );
}

function safe(fn) {
  try {
    fn();
  } catch (err) {
    addSystem(errorText(err));
  }
}

function renderParticipants() {
  const list = $('#participants');
  const you = client.you;
  const people = client.participantList();
  $('#people-count').textContent = `${people.length}`;
  const mod = isModerator();
  const ownerView = you && you.role === 'owner';
  list.replaceChildren(
    ...people.map((p) => {
      const me = you && p.user_id === you.user_id;
      const canAct = mod && !me && p.role !== 'owner' && !(you.role === 'admin' && p.role === 'admin');
      const state = [];
      if (p.seat !== null && p.seat !== undefined) state.push(`seat ${seatNumber(p.seat)}`);
      if (p.self_muted) state.push('mic off');
      if (!p.connected) state.push('reconnecting…');
      return h(
        'li',
        { class: `participant${p.connected ? '' : ' away'}${canAct ? ' moderated' : ''}`, dataset: { userId: p.user_id } },
        h('span', { class: 'level', title: 'speaking' }, h('span', { class: 'level-bar' })),
        h(
          'span',
          { class: 'who' },
          h('span', { class: 'name' }, nameOf(p)),
          p.role !== 'member' ? h('span', { class: `tag role-${p.role}` }, p.role) : null,
          me ? h('span', { class: 'tag you' }, 'you') : null,
          p.muted ? h('span', { class: 'tag mod-muted' }, 'Muted by moderator') : null,
          h('small', { class: 'muted state' }, state.join(' · ')),
        ),
        h(
          'span',
          { class: 'actions' },
          me ? null : h('button', { class: 'tiny', onclick: () => pickWhisper(p.user_id) }, 'Whisper'),
          canAct ? h('button', { class: 'tiny', onclick: () => safe(() => client.moderate(p.muted ? 'unmute' : 'mute', p.user_id)) }, `${p.muted ? 'Unmute' : 'Mute'} ${nameOf(p)}`) : null,
          canAct && p.seat !== null && p.seat !== undefined
            ? h('button', { class: 'tiny', onclick: () => safe(() => client.moderate('seat.remove', p.user_id)) }, 'Unseat')
            : null,
          canAct ? h('button', { class: 'tiny', onclick: () => safe(() => client.moderate('kick', p.user_id)) }, 'Kick') : null,
          canAct
            ? h('button', { class: 'tiny danger', onclick: () => window.confirm(`Ban ${nameOf(p)} from this room?`) && safe(() => client.moderate('ban', p.user_id)) }, 'Ban')
            : null,
          ownerView && !me
            ? h('button', { class: 'tiny', onclick: () => setRole(p) }, p.role === 'admin' ? 'Make member' : 'Make admin')
            : null,
          me ? null : h('button', { class: 'tiny', onclick: () => reportMember(p) }, `Report ${nameOf(p)}`),
        ),
      );
    }),
  );
  // Who one can whisper to (text) or talk to alone (voice).
  for (const select of [$('#chat-to'), $('#voice-target')]) {
    const keep = select.value;
    const first = select.options[0];
    select.replaceChildren(
      first,
      ...people.filter((p) => !you || p.user_id !== you.user_id).map((p) => h('option', { value: p.user_id }, nameOf(p))),
    );
    select.value = people.some((p) => String(p.user_id) === keep) ? keep : '';
  }
  paintLevels();
}

async function setRole(p) {
  try {
    await client.setRole(client.roomId, p.user_id, p.role === 'admin' ? 'member' : 'admin');
  } catch (err) {
    addSystem(errorText(err));
  }
}

// Any member may report another: the server keeps their last 30 s of voice and 5 minutes
// of chat with the report, for the operators (admin, Reports).
async function reportMember(p) {
  const reason = window.prompt(`Why are you reporting ${nameOf(p)}? (the last 30 s of their voice and their chat go with the report)`);
  if (reason === null || !reason.trim()) return;
  try {
    const report = await client.reportMember(client.roomId, p.user_id, reason.trim().slice(0, 500));
    addSystem(`Reported ${nameOf(p)} (${Math.round(report.evidence_seconds)} s of voice kept).`);
  } catch (err) {
    addSystem(errorText(err));
  }
}

function pickWhisper(userId) {
  $('#chat-to').value = String(userId);
  $('#chat-input').focus();
}

function addChat(event, whisper = false) {
  const from = client.participants.get(event.from);
  const to = whisper ? client.participants.get(event.to) : null;
  const line = h(
    'li',
    { class: whisper ? 'whisper' : '' },
    h('time', {}, timeOf(event.ts)),
    h('strong', {}, from ? nameOf(from) : `user ${event.from}`),
    whisper ? h('span', { class: 'muted' }, ` → ${to ? nameOf(to) : `user ${event.to}`} (whisper)`) : null,
    h('span', { class: 'text' }, event.text),
  );
  appendLog(line);
}

function addSystem(text) {
  appendLog(h('li', { class: 'system' }, h('time', {}, timeOf()), h('span', { class: 'text' }, text)));
}

function appendLog(line) {
  const log = $('#chat-log');
  log.append(line);
  while (log.children.length > 200) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

/** Speaking indicators and level bars, 10 times a second, without re-rendering. */
function paintLevels() {
  const now = performance.now();
  if (engine) engine.tick(now);
  for (const row of document.querySelectorAll('#participants .participant, #seats .seat')) {
    const id = Number(row.dataset.userId);
    if (!id) {
      row.classList.remove('speaking');
      continue;
    }
    const me = client.you && id === client.you.user_id;
    const speaking = Boolean(engine) && (me ? engine.selfSpeaking(now) : engine.isSpeaking(id, now));
    row.classList.toggle('speaking', speaking);
    const bar = row.querySelector('.level-bar');
    if (bar) {
      const level = me ? (engine && canSpeak() && !engine.muted ? stats.micLevel : 0) : stats.lastLevelFrom[id] || 0;
      bar.style.transform = `scaleY(${Math.min(1, Math.sqrt(level) * 2).toFixed(2)})`;
    }
  }
}

function signedOut() {
  localStorage.removeItem(TOKEN_KEY);
  client.token = null;
  client.disconnect();
  stopAudio();
  showAuth();
}

function wireForms() {
  $('#auth-form').addEventListener('submit', (event) => {
    event.preventDefault();
    authenticate(false);
  });
  $('#btn-register').addEventListener('click', () => {
    if ($('#auth-form').reportValidity()) authenticate(true);
  });
  $('#btn-logout').addEventListener('click', async () => {
    if (client.state === 'open') await leaveRoom({ quiet: true });
    try {
      await client.logout();
    } catch (_) {
      /* signed out anyway */
    }
    signedOut();
  });
  $('#create-form').addEventListener('submit', createRoom);
  $('#btn-leave').addEventListener('click', () => leaveRoom());
  $('#btn-mute').addEventListener('click', () => {
    if (!client.you || !engine) return;
    const muted = !(pendingMute !== null ? pendingMute : client.you.self_muted);
    pendingMute = muted;
    engine.muted = muted; // stop sending now, not when the server confirms
    safe(() => client.selfMute(muted));
    renderControls();
  });
  $('#chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('#chat-input').value.trim();
    if (!text) return;
    const to = $('#chat-to').value;
    safe(() => (to ? client.whisper(Number(to), text) : client.chat(text)));
    $('#chat-input').value = '';
  });
  $('#voice-target').addEventListener('change', (event) => {
    const to = event.target.value;
    safe(() => client.setVoiceTarget(to ? Number(to) : null));
  });
  setInterval(paintLevels, 100);
}

boot();
