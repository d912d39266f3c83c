// Fault injection for tests: slow answers, answers held until released, 5xx with Retry-After (503 with 9729, 500 with 9603, as Apple's
// table pairs them), throttling (429, 9646), Apple's error-inside-a-200, dropped connections and maintenance
// (the asynchronous 9644), limited to a path and a number of requests if asked.
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses
import type http from 'node:http';
import { ApiError } from './apple-api.js';
import { sendError } from './http-io.js';
import type { SimFault } from './types.js';

export class FaultInjector {
  private fault: SimFault = { kind: 'none' };
  private readonly held: Array<() => void> = [];

  /** Resolves once release() is called: a request held unanswered meanwhile. */
  hold(): Promise<void> {
    return new Promise((resolve) => this.held.push(resolve));
  }

  heldCount(): number {
    return this.held.length;
  }

  release(): void {
    for (const go of this.held.splice(0)) go();
  }

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

/**
 * Applies `f` to one request: 'answered' when the fault answered it (or dropped it), 'normal' to answer as
 * usual, 'maintenance' to accept it and fail its event with 9644.
 */
export async function applyFault(
  f: SimFault,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  sleep: (ms: number) => Promise<void>,
  hold: () => Promise<void>,
): Promise<'answered' | 'normal' | 'maintenance' | 'lostAnswer'> {
  switch (f.kind) {
    case 'slow':
      await sleep(f.delayMs ?? 1000);
      return 'normal';
    case 'hold':
      await hold();
      return 'normal';
    case 'error5xx': {
      const headers: Record<string, string> = {};
      if (f.retryAfterSeconds !== undefined) headers['Retry-After'] = String(f.retryAfterSeconds);
      const status = f.status ?? 503;
      sendError(res, new ApiError(f.errorNumber ?? (status === 503 ? 9729 : 9603), undefined, status), headers);
      return 'answered';
    }
    case 'error':
      sendError(res, new ApiError(f.errorNumber ?? 9602, undefined, f.status));
      return 'answered';
    case 'throttle':
      sendError(res, new ApiError(9646), { 'Retry-After': String(f.retryAfterSeconds ?? 1) });
      return 'answered';
    case 'error200':
      sendError(res, new ApiError(f.errorNumber ?? 9601, undefined, 200));
      return 'answered';
    case 'drop':
      req.socket.destroy();
      return 'answered';
    case 'maintenance':
    case 'lostAnswer':
      return f.kind;
    case 'none':
      return 'normal';
  }
}
