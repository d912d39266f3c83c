import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AppError } from './errors.js';
import { refusedAfterFailures, sourceOf, type AuthFailureLimiter } from './http/admin-guard.js';
import { sendError } from './http/errors.js';
import type { Logger } from './log.js';
import type { MetricsStore, QueueDepths } from './storage/ports.js';

// GET /metrics in the Prometheus text format (prom-client), behind the admin token or METRICS_TOKEN. One
// registry per server (not prom-client's global one): several servers in one process (tests) count apart.
// Counters count in this process; gauges read the database (queues, licenses) once per scrape.

export interface MetricsSources {
  store: MetricsStore;
  /** Push outcomes so far (PushService.stats): counted as they grow. */
  pushStats: () => Record<string, number>;
  licenses: () => Promise<Array<{ adamId: string; total: number; assigned: number }>>;
  identityPool: () => { available: number; capacity: number; taken: number; missed: number };
}

const DEVICE_ENDPOINTS: Array<[RegExp, string]> = [[/^\/mdm\/connect$/, 'connect'], [/^\/mdm\/checkin$/, 'checkin'], [/^\/mdm\/enroll\//, 'enroll']];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly deviceRequests = new Counter({ name: 'mdm_device_requests_total', help: 'Device requests answered, by endpoint and HTTP status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  private readonly deviceLatency = new Histogram({
    name: 'mdm_device_request_duration_seconds', help: 'Time to answer a device request, by endpoint', labelNames: ['endpoint'], registers: [this.registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  private readonly vppCalls = new Counter({ name: 'mdm_vpp_requests_total', help: 'Requests to Apple\'s Apps and Books service, by path and HTTP status ("network": no answer)', labelNames: ['path', 'status'], registers: [this.registry] });
  private readonly vppErrors = new Counter({ name: 'mdm_vpp_request_errors_total', help: 'Apps and Books requests that failed (HTTP status 400 or more, or no answer), by path', labelNames: ['path'], registers: [this.registry] });

  /** What the database said at the start of this scrape (read once, then every gauge's collect() uses it). */
  private scraped: { depths: QueueDepths; licenses: Awaited<ReturnType<MetricsSources['licenses']>> } | undefined;

  constructor(private readonly sources: MetricsSources) {
    const current = () => this.scraped;
    new Gauge({
      name: 'mdm_command_queue_depth', help: 'Commands not yet answered for good, by status', labelNames: ['status'], registers: [this.registry],
      collect() {
        for (const [status, n] of Object.entries(current()?.depths.commands ?? {})) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'mdm_push_queue_depth', help: 'Devices waiting for a push', registers: [this.registry],
      collect() { this.set(current()?.depths.pushes ?? 0); },
    });
    const counted: Record<string, number> = {};
    new Counter({
      name: 'mdm_push_outcomes_total', help: 'APNs pushes by outcome (delivered, unregistered, rejected, retried, failed, dropped)', labelNames: ['outcome'], registers: [this.registry],
      collect() {
        for (const [outcome, n] of Object.entries(sources.pushStats())) {
          this.inc({ outcome }, n - (counted[outcome] ?? 0));
          counted[outcome] = n;
        }
      },
    });
    for (const [name, help, field] of [
      ['mdm_vpp_licenses_assigned', 'Apps and Books licenses held (assigned), per app', 'assigned'],
      ['mdm_vpp_licenses_total', 'Apps and Books licenses bought, per app', 'total'],
    ] as const) {
      new Gauge({
        name, help, labelNames: ['adamId'], registers: [this.registry],
        collect() {
          this.reset();
          for (const row of current()?.licenses ?? []) this.set({ adamId: row.adamId }, row[field]);
        },
      });
    }
    new Gauge({
      name: 'mdm_identity_pool', help: 'Pre-issued device identities: available now, and the pool size', labelNames: ['state'], registers: [this.registry],
      collect() {
        const p = sources.identityPool();
        this.set({ state: 'available' }, p.available);
        this.set({ state: 'capacity' }, p.capacity);
      },
    });
    new Gauge({
      name: 'mdm_identity_pool_issued', help: 'Identities handed to profiles: from the pool, or issued on the request because it was empty', labelNames: ['from'], registers: [this.registry],
      collect() {
        const p = sources.identityPool();
        this.set({ from: 'pool' }, p.taken);
        this.set({ from: 'request' }, p.missed);
      },
    });
  }

  /** Counts device requests by endpoint: mounted before the device routes. */
  deviceRequestTimer(): express.Router {
    return express.Router().use((req: Request, res: Response, next: NextFunction) => {
      const endpoint = DEVICE_ENDPOINTS.find(([re]) => re.test(req.path))?.[1];
      if (!endpoint) return next();
      const stop = this.deviceLatency.startTimer({ endpoint });
      res.once('finish', () => {
        stop();
        this.deviceRequests.inc({ endpoint, status: String(res.statusCode) });
      });
      next();
    });
  }

  /** `fetch` that counts what it sends to Apps and Books (the path under `baseUrl`, no query: it can hold ids). */
  countingFetch(baseUrl: string, inner: typeof fetch = fetch): typeof fetch {
    const base = new URL(baseUrl).pathname.replace(/\/+$/, '');
    const pathOf = (input: Parameters<typeof fetch>[0]) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      const p = url.pathname.startsWith(base) ? url.pathname.slice(base.length) || '/' : url.pathname;
      return /^[A-Za-z/]{1,64}$/.test(p) ? p : 'other';
    };
    return async (input, init) => {
      const path = pathOf(input);
      try {
        const res = await inner(input, init);
        this.vppCalls.inc({ path, status: String(res.status) });
        if (res.status >= 400) this.vppErrors.inc({ path });
        return res;
      } catch (err) {
        this.vppCalls.inc({ path, status: 'network' });
        this.vppErrors.inc({ path });
        throw err;
      }
    };
  }

  /** GET /metrics for a bearer of any of `tokens` (the admin token, METRICS_TOKEN when set). */
  /**
   * `limiter` is the admin API's: /metrics takes the admin token too, so guessing it here counts against the
   * same per-source allowance.
   */
  router(tokens: string[], limiter: AuthFailureLimiter, log: Logger): express.Router {
    const accepted = tokens.map(digest);
    const r = express.Router();
    r.get('/metrics', async (req, res) => {
      const source = sourceOf(req);
      if (refusedAfterFailures(limiter, source, res)) return;
      const header = req.header('authorization') ?? '';
      const given = digest(header.startsWith('Bearer ') ? header.slice(7) : '');
      // Every token is compared (no early exit), in constant time over equal-length digests.
      const ok = accepted.reduce((hit, t) => crypto.timingSafeEqual(t, given) || hit, false);
      if (!ok) {
        limiter.fail(source);
        log.warn({ source, path: req.path, method: req.method, tokenGiven: header !== '' }, 'metrics authentication failed');
        return sendError(res, new AppError('unauthorized', 'missing or wrong token: send Authorization: Bearer <ADMIN_TOKEN or METRICS_TOKEN>'));
      }
      try {
        const [depths, licenses] = await Promise.all([this.sources.store.queueDepths(), this.sources.licenses()]);
        this.scraped = { depths, licenses };
        const body = await this.registry.metrics();
        res.set('content-type', this.registry.contentType).send(body);
      } catch (err) {
        sendError(res, new AppError('unavailable', `metrics could not be read: ${(err as Error).message}`));
      }
    });
    return r;
  }
}

function digest(token: string): Buffer {
  return crypto.createHash('sha256').update(token).digest();
}
