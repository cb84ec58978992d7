/**
 * JSON-lines logger for the backend.
 *
 * The backend handles pool keys, worker certificates and the admin token;
 * none of them may reach a log. Call sites log ids only, and as a second line
 * of defence every line goes through the project's one redaction
 * (`src/runtime/redact.ts`, the controller's too), with the registered
 * secrets added.
 */
import { redact, redactText } from '../runtime/redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Treat `secret` as sensitive from now on: any string containing it is redacted. */
  addSecret(secret: string): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Where lines go; `process.stderr` by default (stdout carries only the ready line). */
export type LogSink = (line: string) => void;

export function createLogger(opts: { sink?: LogSink; level?: LogLevel; component?: string } = {}): Logger {
  const sink: LogSink = opts.sink ?? ((line) => process.stderr.write(line + '\n'));
  const min = LEVELS[opts.level ?? 'info'];
  const secrets: string[] = [];

  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < min) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg: redactText(msg, { secrets }) };
    if (opts.component) record['component'] = opts.component;
    if (fields) Object.assign(record, redact(fields, { secrets }));
    sink(JSON.stringify(record));
  };

  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    addSecret: (s) => {
      // Short strings would redact innocent text; every real secret here is long.
      if (s.length >= 16) secrets.push(s);
    },
  };
}
