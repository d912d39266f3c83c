import { pino, stdTimeFunctions, type DestinationStream, type Logger } from 'pino';

// Structured logs: one JSON line per event ({time, level, msg, ...fields}) on stderr, so operators and tests
// can grep reasons. Secrets never reach it: callers pass identifiers (UDID, command UUID), not tokens or keys.
export type { Logger };
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Receives each log line as an object (tests collect them). */
export type LogSink = (line: Record<string, unknown>) => void;

export function createLogger(level: LogLevel = 'info', sink?: LogSink): Logger {
  const destination: DestinationStream = sink
    ? { write: (line: string) => sink(JSON.parse(line) as Record<string, unknown>) }
    : pino.destination({ fd: 2, sync: true });
  return pino({
    level,
    base: undefined,
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination);
}
