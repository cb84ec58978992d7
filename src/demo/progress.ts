/**
 * What the demo prints while it works: numbered steps with the elapsed time,
 * commands with their output, and a heartbeat whenever a step has been quiet
 * for a while, so that a multi-minute first build is never silent.
 */
import { Writable } from 'node:stream';

export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

export class Progress {
  private readonly startedAt = Date.now();
  private lastOutputAt = Date.now();
  private current = 0;
  private title = '';
  private stepStartedAt = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly quietMs = 15_000,
  ) {
    this.timer = setInterval(() => this.heartbeat(), 1_000);
    this.timer.unref();
  }

  /** Elapsed time since the demo started, e.g. "1:05". */
  get elapsed(): string {
    return formatElapsed(Date.now() - this.startedAt);
  }

  get stepNumber(): number {
    return this.current;
  }

  get stepTitle(): string {
    return this.title;
  }

  step(title: string): void {
    this.current++;
    this.title = title;
    this.stepStartedAt = Date.now();
    this.write(`\n[${this.elapsed}] step ${this.current}/${this.total}: ${title}\n`);
  }

  /** A line about what is happening, stamped with the elapsed time. */
  note(text: string): void {
    for (const line of text.split('\n')) this.write(`[${this.elapsed}]   ${line}\n`);
  }

  /** A command as a user would type it. */
  command(text: string): void {
    this.write(`\n$ ${text}\n`);
  }

  /** Output of a command, as it printed it. */
  output(text: string): void {
    const trimmed = text.replace(/\s+$/, '');
    if (trimmed !== '') this.write(`${trimmed}\n`);
  }

  /** A stream whose lines become notes with a prefix (the binaries build's own progress). */
  lines(prefix: string): Writable {
    let partial = '';
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const part of parts) if (part.trim() !== '') this.note(`${prefix}${part}`);
        done();
      },
      final: (done) => {
        if (partial.trim() !== '') this.note(`${prefix}${partial}`);
        partial = '';
        done();
      },
    });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private heartbeat(): void {
    if (this.current === 0 || Date.now() - this.lastOutputAt < this.quietMs) return;
    this.note(`... still at step ${this.current}/${this.total} (${this.title}): ${formatElapsed(Date.now() - this.stepStartedAt)} in this step`);
  }

  private write(text: string): void {
    this.lastOutputAt = Date.now();
    this.out.write(text);
  }
}
