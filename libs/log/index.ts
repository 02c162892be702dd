// Logging for every service: pino, JSON by default, human-readable text on request.
// Logs are events: `log.info({ view, leader }, 'view started')`. Key material is redacted
// by path here so a careless field name cannot leak it; still, never log secrets.

import { createRequire } from 'node:module';
import { pino, type Logger, type LevelWithSilent } from 'pino';

// pino-pretty (~25 ms of CPU to load) only where text is asked for; JSON is the default.
const load = createRequire(import.meta.url);
/** pino-pretty, loaded on first use (also by scripts/prepack.ts: what a signer host keeps). */
export const loadTextLogging = () => load('pino-pretty') as typeof import('pino-pretty');

export type { Logger } from 'pino';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';

export interface LogOptions {
  level?: LogLevel | LevelWithSilent;
  format?: LogFormat;
  /** Bound into every line: which service and which member wrote it. */
  service: string;
  member?: string;
  /** Where lines go; stdout when absent. Tests pass a stream to read lines back. */
  destination?: NodeJS.WritableStream;
}

const REDACT = [
  'private_key', '*.private_key', 'node.private_key',
  'privateKey', '*.privateKey', 'secretKey', '*.secretKey',
  'passphrase', '*.passphrase', 'key_pem', '*.key_pem',
];

export function createLogger(opts: LogOptions): Logger {
  const base = { service: opts.service, ...(opts.member ? { member: opts.member } : {}) };
  const options = {
    level: opts.level ?? 'info',
    base,
    redact: { paths: REDACT, censor: '<redacted>' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.format === 'text') {
    const stream = loadTextLogging()({
      colorize: false,
      singleLine: true,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      ...(opts.destination ? { destination: opts.destination } : {}),
    });
    return pino(options, stream);
  }
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** Change the level of a running logger and its children (hot reload of logging.level). */
export function setLevel(log: Logger, level: LogLevel): void {
  log.level = level;
}

/**
 * A line of a service's life — up (`<service> ready`), `shutting down`, `stopped` — written
 * whatever `logging.level` is: supervisors (`btcfed devnet`, the test bed) and operators wait for
 * them, and a member set to `warn` must look neither as if it never started nor as if it died.
 */
export function logLifeEvent(log: Logger, fields: Record<string, unknown>, msg: string): void {
  log.child({}, { level: 'info' }).info(fields, msg);
}

/** The line saying a service is up: a life event (above). */
export const logReady = logLifeEvent;
