// AudioWorklet processors of the demo page (loaded with audioWorklet.addModule).
//
// capture: cuts the microphone into frames of `frameSamples` (20 ms) and posts each one
//   to the page, which encodes and sends it.
// player: one per speaker; plays the frames the page posts to it through a small jitter
//   buffer: it starts after `prebufferSamples` are queued, keeps at most `maxSamples`
//   (dropping the oldest, so latency cannot grow), and after running dry it waits to
//   refill before playing again rather than crackling frame by frame.

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
    this.queue = [];
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
      this.queue.push(frame);
      this.queued += frame.length;
      while (this.queued > this.max && this.queue.length > 1) {
        const old = this.queue.shift();
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
      const take = Math.min(out.length - written, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + take), written);
      written += take;
      this.offset += take;
      this.queued -= take;
      if (this.offset === head.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
    if (written < out.length) {
      out.fill(0, written);
      this.playing = false;
      this.underruns += 1;
    }
    return true;
  }
}

registerProcessor('voiceroom-capture', CaptureProcessor);
registerProcessor('voiceroom-player', PlayerProcessor);
