// AudioWorklet processors of the demo page (loaded with audioWorklet.addModule).
//
// capture: cuts the microphone into frames of `frameSamples` (20 ms) and posts each one
//   to the page, which encodes and sends it.
// player: one per speaker; plays the frames the page posts to it through a small jitter
//   buffer: it starts after `prebufferSamples` are queued, keeps at most `maxSamples`
//   (dropping the oldest, so latency cannot grow), and after running dry it waits to
//   refill before playing again rather than crackling frame by frame; while more than a
//   frame over the prebuffer it drops silent frames, so a burst's delay does not stay.
//   When its output
//   turns from silence to sound it posts {contextTime, waited}: when that sound plays on
//   the audio clock, and how long its frame waited in the jitter buffer (the page turns
//   these into the latency figures tests measure).

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options.processorOptions.frameSamples;
    this.buffer = new Float32Array(this.size);
    this.filled = 0;
  }

  process(inputs, outputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let read = 0;
      while (read < channel.length) {
        const take = Math.min(channel.length - read, this.size - this.filled);
        this.buffer.set(channel.subarray(read, read + take), this.filled);
        this.filled += take;
        read += take;
        if (this.filled === this.size) {
          this.port.postMessage(this.buffer, [this.buffer.buffer]);
          this.buffer = new Float32Array(this.size);
          this.filled = 0;
        }
      }
    }
    // The output (silence) only keeps this node pulled by the audio graph.
    if (outputs[0] && outputs[0][0]) outputs[0][0].fill(0);
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions;
    this.prebuffer = opts.prebufferSamples;
    this.max = opts.maxSamples;
    this.silence = opts.silence || 0.01;
    this.queue = [];
    this.arrivals = []; // currentTime when each queued frame came
    this.quiet = true;
    this.offset = 0; // read position in queue[0]
    this.queued = 0; // samples waiting, queue[0] counted from offset
    this.playing = false;
    this.underruns = 0;
    this.dropped = 0;
    this.port.onmessage = (event) => {
      if (event.data === 'stats') {
        this.port.postMessage({ queued: this.queued, underruns: this.underruns, dropped: this.dropped });
        return;
      }
      const frame = event.data;
      // Behind (more than a frame over the prebuffer, after a burst): a silent frame is
      // dropped rather than queued, so the delay shrinks back without an audible cut.
      if (this.playing && this.queued > this.prebuffer + frame.length && quiet(frame, this.silence)) {
        this.dropped += 1;
        return;
      }
      this.queue.push(frame);
      this.arrivals.push(currentTime);
      this.queued += frame.length;
      while (this.queued > this.max && this.queue.length > 1) {
        const old = this.queue.shift();
        this.arrivals.shift();
        this.queued -= old.length - this.offset;
        this.offset = 0;
        this.dropped += 1;
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing) {
      if (this.queued < this.prebuffer) {
        out.fill(0);
        return true;
      }
      this.playing = true;
    }
    let written = 0;
    while (written < out.length && this.queue.length) {
      const head = this.queue[0];
      if (this.quiet) this.noticeOnset(head, written);
      const take = Math.min(out.length - written, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + take), written);
      written += take;
      this.offset += take;
      this.queued -= take;
      if (this.offset === head.length) {
        this.queue.shift();
        this.arrivals.shift();
        this.offset = 0;
      }
    }
    let energy = 0;
    for (let i = 0; i < written; i++) energy += out[i] * out[i];
    if (Math.sqrt(energy / out.length) <= this.silence) this.quiet = true;
    if (written < out.length) {
      out.fill(0, written);
      this.playing = false;
      this.underruns += 1;
    }
    return true;
  }
}

function quiet(frame, level) {
  let energy = 0;
  for (let i = 0; i < frame.length; i++) energy += frame[i] * frame[i];
  return Math.sqrt(energy / (frame.length || 1)) <= level;
}

PlayerProcessor.prototype.noticeOnset = function noticeOnset(head, written) {
  // The first sample of the head frame (from the read position) above the silence level.
  for (let i = this.offset; i < head.length; i++) {
    if (Math.abs(head[i]) > this.silence * 2) {
      this.quiet = false;
      const at = currentTime + (written + i - this.offset) / sampleRate;
      this.port.postMessage({ contextTime: at, waited: currentTime - this.arrivals[0] });
      return;
    }
  }
};

registerProcessor('voiceroom-capture', CaptureProcessor);
registerProcessor('voiceroom-player', PlayerProcessor);
