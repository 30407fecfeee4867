// A voice room in a mini-program, through the voiceroom SDK:
// - sign-in: wx.login() -> POST /api/auth/wechat; on a local node without a WeChat app
//   secret (DEBUG on), a development sign-in with a username and password instead;
// - the room list, creating a room (name, seats, password, codec), joining one (asking
//   for the password of a private room), the seats, chat;
// - voice in the room's codec (contract v1.1 "Codec", the SDK's roomAudioCodec):
//   RecorderManager frames (PCM, 16 kHz mono) are cut into 20 ms and sent as Opus
//   packets (lib/opus.js, libopus in plain JavaScript, 24 kbit/s) or, in a PCM16 room,
//   as they are. The others' frames are decoded and played through a WebAudioContext,
//   each speaker scheduled 60-160 ms ahead of now: a small jitter buffer.
//
// lib/voiceroom.js and lib/voiceroom/ are clients/js/voiceroom.js and its modules
// (symlinks; copy both if your tools do not follow symlinks). vendor/opusscript/ is
// copied from npm by scripts/vendor-opus.mjs.
import {
  AUDIO_OPUS,
  AUDIO_PCM16,
  VoiceRoomClient,
  WxSocketTransport,
  decodeAudioPayload,
  encodeAudioPayload,
  pcm16ToFloat32,
  roomAudioCodec,
  wxRequestFetch,
} from '../../lib/voiceroom.js';
import { OpusDecoder, OpusEncoder, warmUpOpus } from '../../lib/opus.js';

const PCM_RATE = 16000;
const FRAME_BYTES = 640; // 20 ms of 16 kHz mono PCM16
const OPUS_BITRATE = 24000;
// The jitter buffer, per speaker: audio starts AHEAD_S after now when it (re)starts;
// while it would play more than a frame later than that (a burst after a stall left it
// behind), silent frames are dropped, which nobody hears, and beyond MAX_AHEAD_S every
// frame is, so the delay shrinks back instead of staying high.
const AHEAD_S = 0.06;
const MAX_AHEAD_S = 0.16;
const SILENCE_RMS = 0.01;
const RECORD_OPTIONS = {
  format: 'PCM',
  sampleRate: PCM_RATE,
  numberOfChannels: 1,
  frameSize: 1, // KB, about 32 ms; captured() cuts the stream into 20 ms frames
  duration: 600000, // the longest WeChat allows; recording restarts when it ends
};

/** Call a wx API as a promise. */
const wxp = (name, options = {}) =>
  new Promise((resolve, reject) => wx[name]({ ...options, success: resolve, fail: reject }));

const errorText = (err) => (err && (err.detail || err.errMsg || err.message)) || String(err);

let client = null;
let recorder = null;
let audio = null;
let codec = AUDIO_OPUS; // the room's, once joined
let encoder = null; // OpusEncoder in an Opus room
let pending = new Uint8Array(0); // recorded bytes not yet sent (less than one frame)
let opusWarm = false;
const speakers = new Map(); // user id -> {next, voiceAt, decoder}

Page({
  data: {
    signedIn: false,
    devSignIn: false, // the username/password form, when wx.login cannot be used
    username: '',
    password: '',
    status: '',
    rooms: [],
    newRoom: { name: '', seats: '8', password: '', pcm16: false },
    askPassword: null, // {id, name} of the private room whose password is asked
    roomPassword: '',
    room: null,
    seats: [],
    people: [],
    messages: [],
    lastMessage: '',
    draft: '',
    muted: false,
  },

  onLoad() {
    client = new VoiceRoomClient({
      baseUrl: getApp().globalData.baseUrl,
      fetch: wxRequestFetch(wx),
      transport: new WxSocketTransport({ wx }),
    });
    client.on('participants', () => this.render());
    client.on('seats', () => this.render());
    client.on('chat', (e) => this.addMessage(`${this.nameOf(e.from)}: ${e.text}`));
    client.on('whisper', (e) => this.addMessage(`${this.nameOf(e.from)} (whisper): ${e.text}`));
    client.on('error', (e) => this.addMessage(`refused: ${e.detail}`));
    client.on('voice', (frame) => this.play(frame));
    client.on('participant.left', (e) => this.forget(e.user_id));
    client.on('state', ({ state }) => this.setData({ status: state === 'open' ? '' : state }));
    client.on('close', (e) => {
      if (!e.willReconnect && this.data.room) this.leftRoom(`left the room (${e.code || e.reason})`);
    });
    this.ticker = setInterval(() => this.data.room && this.render(), 250);
    return this.signIn();
  },

  onUnload() {
    clearInterval(this.ticker);
    return this.leave();
  },

  onPullDownRefresh() {
    this.loadRooms().then(() => wx.stopPullDownRefresh());
  },

  // -- signing in --

  async signIn() {
    try {
      const { code } = await wxp('login');
      await client.loginWithWechat(code);
    } catch (err) {
      // A local node has no WeChat app secret (503 wechat_not_configured): offer the
      // development sign-in, which such a node (DEBUG on) answers.
      this.setData({ devSignIn: true, status: `WeChat sign-in failed (${errorText(err)}): use a development account` });
      return;
    }
    await this.signedIn();
  },

  onUsername(event) {
    this.setData({ username: event.detail.value });
  },

  onPassword(event) {
    this.setData({ password: event.detail.value });
  },

  async devSignIn() {
    try {
      await client.loginForDevelopment({ username: this.data.username.trim(), password: this.data.password });
    } catch (err) {
      this.setData({ status: `sign-in failed: ${errorText(err)}` });
      return;
    }
    this.setData({ devSignIn: false, password: '' });
    await this.signedIn();
  },

  async signedIn() {
    this.setData({ signedIn: true, status: '' });
    await this.loadRooms();
    // While the user picks a room, not when they start talking.
    setTimeout(() => this.warmUp(), 0);
  },

  warmUp() {
    if (opusWarm) return;
    opusWarm = true;
    warmUpOpus();
  },

  // -- rooms --

  async loadRooms() {
    try {
      const page = await client.listRooms({ status: 'open' });
      const rooms = page.results.map((r) => ({ id: r.id, name: r.name, online: r.online_count, locked: r.is_private, codec: r.codec }));
      this.setData({ rooms });
    } catch (err) {
      this.setData({ status: `could not load rooms: ${errorText(err)}` });
    }
  },

  onNewRoom(event) {
    const field = event.currentTarget.dataset.field;
    const value = field === 'pcm16' ? event.detail.value.length > 0 : event.detail.value;
    this.setData({ newRoom: { ...this.data.newRoom, [field]: value } });
  },

  async createRoom() {
    const { name, seats, password, pcm16 } = this.data.newRoom;
    const fields = { name: name.trim(), seat_count: Number(seats || 0), codec: pcm16 ? 'pcm16' : 'opus' };
    if (password) fields.password = password;
    let room;
    try {
      room = await client.createRoom(fields);
    } catch (err) {
      wx.showToast({ title: errorText(err), icon: 'none' });
      return;
    }
    this.setData({ newRoom: { name: '', seats: '8', password: '', pcm16: false } });
    await this.enter(room.id, password || undefined);
  },

  join(event) {
    const id = Number(event.currentTarget.dataset.id);
    const listed = this.data.rooms.find((r) => r.id === id);
    if (listed && listed.locked) {
      this.setData({ askPassword: { id, name: listed.name }, roomPassword: '' });
      return undefined;
    }
    return this.enter(id);
  },

  onRoomPassword(event) {
    this.setData({ roomPassword: event.detail.value });
  },

  joinWithPassword() {
    const { id } = this.data.askPassword;
    return this.enter(id, this.data.roomPassword);
  },

  cancelPassword() {
    this.setData({ askPassword: null, roomPassword: '' });
  },

  async enter(id, password) {
    this.warmUp();
    try {
      await client.join(id, password ? { password } : {});
    } catch (err) {
      if (err.code === 'bad_password') {
        const listed = this.data.rooms.find((r) => r.id === id);
        this.setData({ askPassword: { id, name: listed ? listed.name : `room ${id}` }, roomPassword: '' });
      }
      wx.showToast({ title: errorText(err) || 'could not join', icon: 'none' });
      return;
    }
    codec = roomAudioCodec(client.room);
    audio = wx.createWebAudioContext();
    this.setData({
      askPassword: null,
      roomPassword: '',
      room: { id, name: client.room.name, codec: codec === AUDIO_OPUS ? 'Opus' : 'PCM16' },
      messages: [],
      muted: client.you.self_muted,
    });
    this.render();
    try {
      await wxp('authorize', { scope: 'scope.record' });
      this.startRecording();
    } catch (_) {
      this.addMessage('No microphone permission: listening only.');
    }
  },

  // -- voice --

  startRecording() {
    if (codec === AUDIO_OPUS) encoder = new OpusEncoder({ sampleRate: PCM_RATE, bitrate: OPUS_BITRATE });
    recorder = wx.getRecorderManager();
    recorder.onFrameRecorded(({ frameBuffer }) => this.captured(frameBuffer));
    recorder.onError((err) => this.addMessage(`microphone: ${err.errMsg}`));
    recorder.onStop(() => {
      if (recorder && client.state !== 'closed') recorder.start(RECORD_OPTIONS);
    });
    recorder.start(RECORD_OPTIONS);
  },

  /** Recorded PCM: send it in 20 ms frames, in the room's codec, while this user may speak. */
  captured(buffer) {
    const bytes = new Uint8Array(pending.length + buffer.byteLength);
    bytes.set(pending);
    bytes.set(new Uint8Array(buffer), pending.length);
    let offset = 0;
    for (; offset + FRAME_BYTES <= bytes.length; offset += FRAME_BYTES) {
      if (!this.canSpeak()) continue;
      const frame = bytes.subarray(offset, offset + FRAME_BYTES);
      if (codec === AUDIO_OPUS) {
        if (encoder) client.sendVoice(encodeAudioPayload(AUDIO_OPUS, encoder.encode(frame)));
      } else {
        client.sendVoice(encodeAudioPayload(AUDIO_PCM16, frame));
      }
    }
    pending = bytes.slice(offset);
  },

  /** The SDK's speak rule, and not while the user's own mute is on its way. */
  canSpeak() {
    return !this.data.muted && client.maySpeak();
  },

  /** A voice frame from the server: decode it and schedule it after the speaker's previous one. */
  play(frame) {
    if (!audio) return;
    const { codec: sent, data } = decodeAudioPayload(frame.payload);
    const speaker = speakers.get(frame.senderId) || { next: 0, voiceAt: 0, decoder: null };
    speakers.set(frame.senderId, speaker);
    let samples;
    if (sent === AUDIO_OPUS && data.length) {
      if (!speaker.decoder) speaker.decoder = new OpusDecoder({ sampleRate: PCM_RATE });
      try {
        samples = speaker.decoder.decode(data);
      } catch (_) {
        return; // a damaged packet: skip 20 ms rather than stop
      }
    } else if (sent === AUDIO_PCM16) {
      samples = pcm16ToFloat32(data);
    } else {
      return; // a codec this page does not know
    }
    let level = 0;
    for (let i = 0; i < samples.length; i++) level += samples[i] * samples[i];
    level = Math.sqrt(level / (samples.length || 1));
    if (level > SILENCE_RMS) speaker.voiceAt = Date.now();
    const now = audio.currentTime;
    const ahead = speaker.next - now;
    if (ahead < 0.01) speaker.next = now + AHEAD_S; // ran dry: start again
    else if (ahead > MAX_AHEAD_S + 0.001) return; // too far behind: skip 20 ms
    else if (ahead > AHEAD_S + 0.021 && level <= SILENCE_RMS) return; // behind: skip a silent 20 ms
    const buffer = audio.createBuffer(1, samples.length, PCM_RATE);
    buffer.getChannelData(0).set(samples);
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    source.start(speaker.next);
    speaker.next += buffer.duration;
  },

  forget(userId) {
    const speaker = speakers.get(userId);
    if (speaker && speaker.decoder) speaker.decoder.destroy();
    speakers.delete(userId);
  },

  speaking(userId) {
    const you = client.you;
    if (you && userId === you.user_id) return false;
    const speaker = speakers.get(userId);
    return Boolean(speaker && Date.now() - speaker.voiceAt < 300);
  },

  nameOf(userId) {
    const p = client.participants.get(userId);
    return p ? p.display_name || p.username : `user ${userId}`;
  },

  render() {
    const you = client.you;
    const seats = client.seats.map((s) => ({
      index: s.index,
      mine: Boolean(you && s.user_id === you.user_id),
      speaking: s.user_id !== null && this.speaking(s.user_id),
      label: s.user_id !== null ? this.nameOf(s.user_id) : s.locked ? 'locked' : `seat ${s.index + 1}`,
    }));
    const people = client.participantList().map((p) => ({
      user_id: p.user_id,
      name: p.display_name || p.username,
      speaking: this.speaking(p.user_id),
      note: [p.seat !== null ? `seat ${p.seat + 1}` : '', p.muted || p.self_muted ? 'mic off' : '', p.connected ? '' : 'reconnecting'].filter(Boolean).join(' · '),
    }));
    this.setData({ seats, people });
  },

  tapSeat(event) {
    const index = Number(event.currentTarget.dataset.index);
    const seat = client.seats[index];
    try {
      if (seat && client.you && seat.user_id === client.you.user_id) client.leaveSeat();
      else if (seat && seat.user_id === null) client.takeSeat(index);
    } catch (err) {
      this.addMessage(errorText(err));
    }
  },

  toggleMute() {
    const muted = !this.data.muted;
    this.setData({ muted });
    try {
      client.selfMute(muted);
    } catch (_) {
      /* not connected: applied locally, the server keeps the last state it had */
    }
  },

  onDraft(event) {
    this.setData({ draft: event.detail.value });
  },

  sendChat() {
    const text = this.data.draft.trim();
    if (!text) return;
    try {
      client.chat(text);
      this.setData({ draft: '' });
    } catch (err) {
      this.addMessage(errorText(err));
    }
  },

  addMessage(text) {
    const key = `m${Date.now()}${Math.floor(Math.random() * 1000)}`;
    const messages = this.data.messages.concat({ key, text }).slice(-100);
    this.setData({ messages, lastMessage: key });
  },

  async leave() {
    if (recorder) {
      const r = recorder;
      recorder = null;
      r.stop();
    }
    if (client && client.state === 'open') await client.leave();
    this.leftRoom('');
  },

  leftRoom(status) {
    if (recorder) {
      const r = recorder;
      recorder = null;
      r.stop();
    }
    if (encoder) encoder.destroy();
    encoder = null;
    if (audio) audio.close();
    audio = null;
    pending = new Uint8Array(0);
    for (const id of [...speakers.keys()]) this.forget(id);
    this.setData({ room: null, seats: [], people: [], status });
    if (this.data.signedIn) this.loadRooms();
  },
});
