/**
 * A cap on the size of MQTT packets, enforced before the broker buffers
 * them. aedes has no such setting: a client could send a 50 MB PUBLISH and the
 * broker would hold it whole in memory before any authorization. This stream
 * sits between the TLS socket and aedes, reads each packet's fixed header
 * (type byte, then the "remaining length" varint of MQTT 3.1.1 section 2.2.3)
 * and ends the connection as soon as a packet announces more than the cap.
 * MQTT 3.1.1 has no error code for this; mosquitto's `max_packet_size` also
 * just disconnects.
 *
 * @module
 */
import { Transform, type TransformCallback } from 'node:stream';

export class PacketSizeLimit extends Transform {
  /** Bytes of the current packet's body still to pass through. */
  private remaining = 0;
  /** Reading a fixed header: how many length bytes so far, and the value so far. */
  private inHeader = false;
  private lengthBytes = 0;
  private length = 0;
  private multiplier = 1;

  constructor(
    private readonly maxPacketBytes: number,
    private readonly onTooLarge: (announced: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      const byte = chunk[i] as number;
      i++;
      if (!this.inHeader) {
        // The type byte of a new packet.
        this.inHeader = true;
        this.lengthBytes = 0;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (this.length > this.maxPacketBytes) {
        this.onTooLarge(this.length);
        done(new Error(`MQTT packet of at least ${this.length} bytes is larger than the limit of ${this.maxPacketBytes}`));
        return;
      }
      if ((byte & 0x80) === 0 || this.lengthBytes === 4) {
        this.inHeader = false;
        this.remaining = this.length;
      }
    }
    done(null, chunk);
  }
}
