// Fault injection for tests: slow answers, 5xx with Retry-After, throttling (429, 9646), Apple's
// error-inside-a-200, and dropped connections, limited to a path and a number of requests if asked.
import type http from 'node:http';
import { ApiError } from './apple-api.js';
import { sendError } from './http-io.js';
import type { SimFault } from './types.js';

export class FaultInjector {
  private fault: SimFault = { kind: 'none' };

  set(f: SimFault): void {
    this.fault = { ...f };
  }

  /** Returns the fault to apply to this request, consuming one of its `times`. */
  take(sub: string): SimFault | undefined {
    const f = this.fault;
    if (f.kind === 'none') return undefined;
    if (f.path && !sub.startsWith(f.path)) return undefined;
    if (f.times !== undefined) {
      if (f.times <= 0) {
        this.fault = { kind: 'none' };
        return undefined;
      }
      f.times -= 1;
      if (f.times === 0) this.fault = { kind: 'none' };
    }
    return f;
  }
}

/** Applies `f` to one request; true when the fault answered it (or dropped it), false to answer normally. */
export async function applyFault(
  f: SimFault,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  sleep: (ms: number) => Promise<void>,
): Promise<boolean> {
  switch (f.kind) {
    case 'slow':
      await sleep(f.delayMs ?? 1000);
      return false;
    case 'error5xx': {
      const headers: Record<string, string> = {};
      if (f.retryAfterSeconds !== undefined) headers['Retry-After'] = String(f.retryAfterSeconds);
      sendError(res, new ApiError(f.status ?? 503, f.errorNumber ?? 9603), headers);
      return true;
    }
    case 'throttle':
      sendError(res, new ApiError(429, 9646), { 'Retry-After': String(f.retryAfterSeconds ?? 1) });
      return true;
    case 'error200':
      sendError(res, new ApiError(200, f.errorNumber ?? 9601));
      return true;
    case 'drop':
      req.socket.destroy();
      return true;
    case 'none':
      return false;
  }
}
