// A small structured logger: one JSON line per event on stderr, so tests and operators can grep reasons.
// Secrets never reach it: callers pass identifiers (UDID, command UUID), not tokens or keys.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export type LogSink = (line: Record<string, unknown>) => void;

const stderrSink: LogSink = (line) => process.stderr.write(JSON.stringify(line) + '\n');

export function createLogger(level: LogLevel = 'info', sink: LogSink = stderrSink, base: Record<string, unknown> = {}): Logger {
  const threshold = order[level] ?? order.info;
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < threshold) return;
    sink({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields });
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, sink, { ...base, ...fields }),
  };
}
