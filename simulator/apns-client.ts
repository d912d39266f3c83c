/*
 * Client for the simulated APNs control API, for simulated devices that run in another process than the
 * simulated APNs (e.g. `npm run simulate` against a `--sandbox` server).
 */
import http from 'node:http';
import type { ApnsDelivery, ApnsRejection, SimulatedApnsFault, SimulatedApnsStats } from './apns.js';

export interface ApnsControlClient {
  registerToken(token: string, topic: string): Promise<void>;
  unregisterToken(token: string): Promise<void>;
  /**
   * One stream for all tokens; reconnects until the returned function is called. `onRejection` hears the
   * pushes APNs refused; `onConnection` hears the stream go down (false) and come back (true).
   */
  subscribe(
    onDelivery: (d: ApnsDelivery) => void,
    events?: { onRejection?: (r: ApnsRejection) => void; onConnection?: (up: boolean, detail?: string) => void },
  ): Promise<() => void>;
  setFault(f: SimulatedApnsFault): Promise<void>;
  stats(): Promise<SimulatedApnsStats>;
}

export class ApnsControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApnsControlError';
  }
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

function isDelivery(v: unknown): v is ApnsDelivery {
  const d = v as ApnsDelivery;
  return (
    !!d &&
    typeof d.token === 'string' &&
    typeof d.topic === 'string' &&
    typeof d.at === 'number' &&
    !!d.payload &&
    typeof d.payload.mdm === 'string'
  );
}

function isRejection(v: unknown): v is { rejection: ApnsRejection } {
  const r = (v as { rejection?: ApnsRejection } | null)?.rejection;
  return !!r && typeof r.status === 'number' && typeof r.reason === 'string';
}

export function createApnsControlClient(controlUrl: string): ApnsControlClient {
  let base: URL;
  try {
    base = new URL(controlUrl);
  } catch {
    throw new ApnsControlError(`simulated APNs control URL is not a URL: ${JSON.stringify(controlUrl)}`);
  }
  if (base.protocol !== 'http:') {
    throw new ApnsControlError(`simulated APNs control URL must be http://, got ${base.protocol}`);
  }

  async function call(method: string, path: string, body?: unknown): Promise<Response> {
    const target = new URL(path, base);
    let res: Response;
    try {
      res = await fetch(target, {
        method,
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApnsControlError(`${method} ${target.href} failed: ${(err as Error).message}`);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new ApnsControlError(`${method} ${target.href} answered ${res.status}: ${text}`);
    }
    return res;
  }

  return {
    async registerToken(token, topic) {
      await call('POST', '/tokens', { token, topic });
    },
    async unregisterToken(token) {
      await call('DELETE', `/tokens/${encodeURIComponent(token)}`);
    },
    async setFault(f) {
      await call('POST', '/fault', f);
    },
    async stats() {
      return (await call('GET', '/stats')).json() as Promise<SimulatedApnsStats>;
    },
    subscribe(onDelivery, events = {}) {
      return new Promise<() => void>((resolveFirst, rejectFirst) => {
        let first = true;
        let stopped = false;
        let attempt = 0;
        let current: http.ClientRequest | null = null;
        let retryTimer: NodeJS.Timeout | undefined;

        const unsubscribe = () => {
          stopped = true;
          if (retryTimer) clearTimeout(retryTimer);
          current?.destroy();
          current = null;
        };

        let up = false;
        const connectionLost = (err?: Error) => {
          current = null;
          if (stopped) return;
          if (up) {
            up = false;
            events.onConnection?.(false, err?.message ?? 'connection closed');
          }
          if (first) {
            // A wrong control URL should fail loudly, not spin forever.
            first = false;
            stopped = true;
            rejectFirst(new ApnsControlError(`GET ${new URL('/deliveries', base).href} failed: ${err?.message ?? 'connection closed'}`));
            return;
          }
          const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt++);
          retryTimer = setTimeout(() => {
            retryTimer = undefined;
            connect();
          }, delay);
        };

        const connect = () => {
          if (stopped) return;
          let lost = false;
          const lose = (err?: Error) => {
            if (lost) return;
            lost = true;
            connectionLost(err);
          };
          // A dedicated socket: a pooled keep-alive socket could be one the server is about to close.
          const req = http.get(new URL('/deliveries', base), { agent: false, headers: { accept: 'application/x-ndjson' } }, (res) => {
            if (res.statusCode !== 200) {
              res.resume();
              lose(new Error(`answered ${res.statusCode}`));
              return;
            }
            attempt = 0;
            up = true;
            if (first) {
              first = false;
              resolveFirst(unsubscribe);
            } else events.onConnection?.(true);
            res.setEncoding('utf8');
            let buffered = '';
            res.on('data', (chunk: string) => {
              buffered += chunk;
              let nl: number;
              while ((nl = buffered.indexOf('\n')) >= 0) {
                const line = buffered.slice(0, nl).trim();
                buffered = buffered.slice(nl + 1);
                if (!line) continue; // heartbeat
                let parsed: unknown;
                try {
                  parsed = JSON.parse(line);
                } catch {
                  continue;
                }
                try {
                  if (isDelivery(parsed)) onDelivery(parsed);
                  else if (isRejection(parsed)) events.onRejection?.(parsed.rejection);
                } catch {
                  // The subscriber's bug must not end the subscription.
                }
              }
            });
            res.on('error', (err) => lose(err));
            res.on('close', () => lose());
          });
          req.on('error', (err) => lose(err));
          current = req;
        };

        connect();
      });
    },
  };
}
