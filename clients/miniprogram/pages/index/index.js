// A voice room in a mini-program, through the voiceroom SDK:
// wx.login() -> POST /api/auth/wechat, the room list, join, the seats, chat, and voice:
// RecorderManager frames (PCM, 16 kHz mono) cut into 20 ms and sent with the PCM16 codec
// byte; the others' PCM16 frames played through a WebAudioContext, each speaker
// scheduled a little ahead (a small jitter buffer). Opus frames (browsers that chose
// Opus) cannot be decoded here and are skipped: open the demo page with ?codec=pcm to
// talk with mini-program users.
//
// lib/voiceroom.js and lib/voiceroom/ are clients/js/voiceroom.js and its modules
// (symlinks; copy both if your tools do not follow symlinks).
import {
  AUDIO_PCM16,
  VoiceRoomClient,
  WxSocketTransport,
  decodeAudioPayload,
  encodeAudioPayload,
  pcm16ToFloat32,
  wxRequestFetch,
} from '../../lib/voiceroom.js';

const PCM_RATE = 16000;
const FRAME_BYTES = 640; // 20 ms of 16 kHz mono PCM16
const AHEAD_S = 0.06; // how far ahead a speaker's audio is scheduled
const MAX_AHEAD_S = 0.3; // beyond this, latency is dropped back to AHEAD_S
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

let client = null;
let recorder = null;
let audio = null;
let pending = new Uint8Array(0); // recorded bytes not yet sent (less than one frame)
const speakers = new Map(); // user id -> {next: start time of their next frame, voiceAt}

Page({
  data: { signedIn: false, status: '', rooms: [], room: null, seats: [], people: [], messages: [], lastMessage: '', draft: '', muted: false },

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

  async signIn() {
    try {
      const { code } = await wxp('login');
      await client.loginWithWechat(code);
      this.setData({ signedIn: true, status: '' });
      await this.loadRooms();
    } catch (err) {
      this.setData({ status: `sign-in failed: ${err.detail || err.errMsg || err}` });
    }
  },

  async loadRooms() {
    try {
      const page = await client.listRooms({ status: 'open' });
      this.setData({ rooms: page.results.map((r) => ({ id: r.id, name: r.name, online: r.online_count })) });
    } catch (err) {
      this.setData({ status: `could not load rooms: ${err.detail || err}` });
    }
  },

  async join(event) {
    const id = Number(event.currentTarget.dataset.id);
    try {
      await client.join(id);
    } catch (err) {
      wx.showToast({ title: err.detail || 'could not join', icon: 'none' });
      return;
    }
    audio = wx.createWebAudioContext();
    this.setData({ room: { id, name: client.room.name }, messages: [], muted: client.you.self_muted });
    this.render();
    try {
      await wxp('authorize', { scope: 'scope.record' });
      this.startRecording();
    } catch (_) {
      this.addMessage('No microphone permission: listening only.');
    }
  },

  startRecording() {
    recorder = wx.getRecorderManager();
    recorder.onFrameRecorded(({ frameBuffer }) => this.captured(frameBuffer));
    recorder.onError((err) => this.addMessage(`microphone: ${err.errMsg}`));
    recorder.onStop(() => {
      if (recorder && client.state !== 'closed') recorder.start(RECORD_OPTIONS);
    });
    recorder.start(RECORD_OPTIONS);
  },

  /** Recorded PCM: send it in 20 ms frames while this user may speak. */
  captured(buffer) {
    const bytes = new Uint8Array(pending.length + buffer.byteLength);
    bytes.set(pending);
    bytes.set(new Uint8Array(buffer), pending.length);
    let offset = 0;
    for (; offset + FRAME_BYTES <= bytes.length; offset += FRAME_BYTES) {
      if (this.canSpeak()) client.sendVoice(encodeAudioPayload(AUDIO_PCM16, bytes.subarray(offset, offset + FRAME_BYTES)));
    }
    pending = bytes.slice(offset);
  },

  /** The SDK's speak rule, and not while the user's own mute is on its way. */
  canSpeak() {
    return !this.data.muted && client.maySpeak();
  },

  /** A voice frame from the server: schedule it after the speaker's previous one. */
  play(frame) {
    const { codec, data } = decodeAudioPayload(frame.payload);
    if (codec !== AUDIO_PCM16 || !audio) return; // Opus: not playable here
    const samples = pcm16ToFloat32(data);
    let level = 0;
    for (let i = 0; i < samples.length; i++) level += samples[i] * samples[i];
    level = Math.sqrt(level / (samples.length || 1));
    const speaker = speakers.get(frame.senderId) || { next: 0, voiceAt: 0 };
    if (level > SILENCE_RMS) speaker.voiceAt = Date.now();
    const buffer = audio.createBuffer(1, samples.length, PCM_RATE);
    buffer.getChannelData(0).set(samples);
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    const now = audio.currentTime;
    // Late (ran dry) or too far ahead (latency grew): start again a little ahead of now.
    if (speaker.next < now + 0.01 || speaker.next > now + MAX_AHEAD_S) speaker.next = now + AHEAD_S;
    source.start(speaker.next);
    speaker.next += buffer.duration;
    speakers.set(frame.senderId, speaker);
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
      this.addMessage(err.detail || String(err));
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
      this.addMessage(err.detail || String(err));
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
    if (audio) audio.close();
    audio = null;
    pending = new Uint8Array(0);
    speakers.clear();
    this.setData({ room: null, seats: [], people: [], status });
    this.loadRooms();
  },
});
