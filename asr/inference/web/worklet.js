// Microphone samples -> 16-bit PCM blocks of about 100 ms, posted to the page (which sends them).
class PcmBlocks extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 10);
    this.block = new Int16Array(this.size);
    this.filled = 0;
    this.port.onmessage = () => this.flush();  // "stop": what is left, marked as the last block
  }

  flush() {
    this.port.postMessage({last: this.block.slice(0, this.filled).buffer});
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.block[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(channel[i] * 32768)));
      if (this.filled === this.size) {
        this.port.postMessage(this.block.buffer, [this.block.buffer]);  // transferred: the block is emptied
        this.block = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-blocks", PcmBlocks);
