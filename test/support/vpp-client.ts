// Shared by the Apps and Books client tests: one simulated service per test file (faults and event delay
// reset before each test), clients whose backoff sleeps are recorded instead of waited, and an MDM-side
// endpoint that receives Apple's notifications. Call useSimulatedAppsAndBooks() at the top of a test file.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../../simulator/apps-and-books.js';
import { AppsAndBooksClient, AppsAndBooksError, type EventStatus } from '../../vpp/client.js';

export const DAY = 86_400_000;

export let sim: SimulatedAppsAndBooks;

/**
 * Apple's 30 s between /status polls of a PENDING event, shortened for tests on both sides at once: the
 * simulated service refuses faster polls, and waitEvent() waits this long between its own.
 */
export const TEST_STATUS_POLL_MS = 40;

export function useSimulatedAppsAndBooks(): void {
  beforeAll(async () => {
    sim = await startSimulatedAppsAndBooks({ eventDelayMs: 20, notificationRetryDelayMs: 20, minStatusPollIntervalMs: TEST_STATUS_POLL_MS });
  });

  afterAll(async () => {
    await sim.close();
  });

  beforeEach(() => {
    sim.setFault({ kind: 'none' });
    sim.setEventDelay(20);
    sim.releaseEvents();
  });
}

export function clientFor(sToken: string, extra: Partial<ConstructorParameters<typeof AppsAndBooksClient>[0]> = {}) {
  const sleeps: number[] = [];
  const client = new AppsAndBooksClient({
    baseUrl: sim.url,
    sToken,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  return { client, sleeps };
}

/** Polls with real time (the injected sleep does not wait), as a server would: no sooner than the service allows. */
export async function waitEvent(client: AppsAndBooksClient, eventId: string): Promise<EventStatus> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    // First wait too: the caller may just have had a PENDING answer for this event.
    await new Promise((r) => setTimeout(r, TEST_STATUS_POLL_MS + 5));
    const s = await client.status(eventId);
    if (s.eventStatus !== 'PENDING') return s;
  }
  throw new Error(`event ${eventId} stayed PENDING`);
}

export async function waitFor<T>(fn: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function countRequests(method: string, suffix: string, since = 0): number {
  return sim
    .requestLog()
    .slice(since)
    .filter((e) => e.method === method && e.path.endsWith(suffix)).length;
}

export async function catchError(p: Promise<unknown>): Promise<AppsAndBooksError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppsAndBooksError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

/** A tiny MDM-side endpoint that receives Apple's notifications. */
export async function notificationReceiver(status = 200) {
  const received: Array<{ auth: string | undefined; body: unknown }> = [];
  let answer = status;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/vpp/notifications/sub-1`,
    received,
    setStatus(s: number) {
      answer = s;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
