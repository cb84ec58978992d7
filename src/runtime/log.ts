/**
 * Structured logging: JSON lines for machines, aligned text for terminals.
 *
 * Redaction is a safety net, not the primary defence: code should never log
 * secrets, but a stray `log.info('...', { secret })` must not leak a pool key
 * into a log aggregator. Every line goes through the project's one redaction
 * (`redact.ts`), shared with Events, conditions and the reference backend.
 *
 * @module
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'json' | 'text';

/** Context and per-line fields. Values are serialized as JSON; Errors become {name, message}. */
export type LogFields = Readonly<Record<string, unknown>>;

/** Anything with a `write(string)`: stderr, a file stream, or an array-backed fake in tests. */
export interface LogSink {
  write(chunk: string): unknown;
}

export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  /** Defaults to process.stderr so that stdout stays free for program output. */
  readonly sink?: LogSink;
  readonly now?: () => Date;
}

import { redact } from './redact.js';

export { REDACTED, redact } from './redact.js';

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

// Bare words stay bare; strings that would be ambiguous are quoted; structures print as JSON.
function textValue(v: unknown): string {
  if (typeof v !== 'string') return JSON.stringify(v) ?? String(v);
  return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
}

/**
 * A leveled logger carrying context fields. Child loggers made with {@link Logger.with}
 * share the sink and level, so one `--log-level` governs the whole process.
 */
export class Logger {
  private readonly level: LogLevel;
  private readonly format: LogFormat;
  private readonly sink: LogSink;
  private readonly now: () => Date;

  constructor(
    options: LoggerOptions = {},
    private readonly context: LogFields = {},
  ) {
    this.level = options.level ?? 'info';
    this.format = options.format ?? 'json';
    this.sink = options.sink ?? process.stderr;
    this.now = options.now ?? (() => new Date());
  }

  /** A child logger whose lines also carry `fields` (e.g. `{namespace, name, kind}`). */
  with(fields: LogFields): Logger {
    return new Logger(
      { level: this.level, format: this.format, sink: this.sink, now: this.now },
      { ...this.context, ...fields },
    );
  }

  /** Lets callers skip building expensive fields for lines that would be dropped. */
  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= LEVEL_RANK[this.level];
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  private log(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (!this.enabled(level)) return;
    const ts = this.now().toISOString();
    const safeMsg = redact(msg);
    const rest = redact({ ...this.context, ...fields }) as Record<string, unknown>;
    if (this.format === 'json') {
      this.sink.write(`${JSON.stringify({ ts, level, msg: safeMsg, ...rest })}\n`);
      return;
    }
    const kv = Object.entries(rest)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${textValue(v)}`)
      .join(' ');
    this.sink.write(`${ts} ${level.toUpperCase().padEnd(5)} ${String(safeMsg)}${kv === '' ? '' : ` ${kv}`}\n`);
  }
}

/** A logger that drops everything; the default for library code that was not given one. */
export const silentLogger = new Logger({ level: 'error', sink: { write: () => undefined } });
