// The world around the server under test, all in the bench process on the load CPU: the simulated APNs
// and Apps and Books service (so neither costs the server's CPU), a push certificate, and a fleet of
// simulated devices that answer pushes only while the gate is open. For the replayed round trips the
// bench records what a device sends (an HTTP client that captures requests inside a capture scope) and
// reads the device's identity from the enrollment profile it was served.
import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs/promises';
import path from 'node:path';
import { generateSandboxPushCertificate } from '../mdm/identity.js';
import { buildPlist } from '../mdm/plist.js';
import { startSimulatedApns, type SimulatedApns } from '../simulator/apns.js';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { SimulatedDevice, readEnrollmentProfile } from '../simulator/device.js';
import { Fleet, pushNetworkFromApns, type PushNetwork } from '../simulator/fleet.js';
import { SimulatorHttpClient, type HttpRequestOptions, type HttpResponse } from '../simulator/http.js';
import { appsAndBooksLicenseCheck } from '../simulator/licensing.js';
import { signMdmMessage } from '../simulator/signing.js';
import type { PreparedRequest } from './load-client.js';
import { BenchError } from './processes.js';
import type { BenchServer, ServerEnvironment } from './server.js';

/** Syncs the fleet runs at once (pushes beyond it queue in the fleet, as devices would retry later). */
export const FLEET_SYNC_CONCURRENCY = 64;

type CaptureSink = (url: string, opts: HttpRequestOptions, res: HttpResponse) => void;
const captureScope = new AsyncLocalStorage<CaptureSink>();

/** The fleet's HTTP client; inside captureScope.run(sink, …) every exchange is also handed to the sink. */
class CapturingHttpClient extends SimulatorHttpClient {
  override async request(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
    const res = await super.request(url, opts);
    captureScope.getStore()?.(url, opts, res);
    return res;
  }
}

function prepared(url: string, opts: HttpRequestOptions): PreparedRequest {
  const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
  return { method: opts.method ?? 'GET', path: new URL(url).pathname, headers: { ...opts.headers }, body };
}

/** A device whose requests the bench replays: its captured Idle and TokenUpdate, and its signing identity. */
export interface ReplayDevice {
  device: SimulatedDevice;
  identity: { certPem: string; keyPem: string };
  idle: PreparedRequest;
  tokenUpdate: PreparedRequest;
}

export class World {
  /** Pushes reach the fleet's devices (and make them sync) only while this is true. */
  gateOpen = false;
  readonly sTokens: string[] = [];
  private readonly deliveryListeners = new Set<(token: string) => void>();

  private constructor(
    readonly apns: SimulatedApns,
    readonly appsAndBooks: SimulatedAppsAndBooks,
    readonly push: { certPem: string; keyPem: string; topic: string },
    readonly apnsCaFile: string,
  ) {
    apns.onDelivery((d) => {
      for (const l of this.deliveryListeners) l(d.token);
    });
  }

  static async start(tmpDir: string): Promise<World> {
    const apns = await startSimulatedApns({ host: '127.0.0.1' });
    const appsAndBooks = await startSimulatedAppsAndBooks({ host: '127.0.0.1' });
    const push = await generateSandboxPushCertificate();
    apns.trustPushCertificate(push.certPem);
    const apnsCaFile = path.join(tmpDir, 'apns-ca.pem');
    await fs.writeFile(apnsCaFile, apns.caPem);
    return new World(apns, appsAndBooks, push, apnsCaFile);
  }

  serverEnvironment(base: Pick<ServerEnvironment, 'DATABASE_URL' | 'DATA_DIR' | 'ADMIN_TOKEN' | 'IDENTITY_POOL_SIZE'>): ServerEnvironment {
    return { ...base, APNS_URL: this.apns.url, APNS_CA_FILE: this.apnsCaFile, VPP_URL: this.appsAndBooks.url };
  }

  /** Uploads the push certificate through the admin API (PUT /api/v1/push-certificate). */
  async configure(server: BenchServer): Promise<void> {
    await server.api('PUT', '/api/v1/push-certificate', { certificate: this.push.certPem, privateKey: this.push.keyPem });
  }

  createFleet(server: BenchServer, devices: number): Fleet {
    const gated: PushNetwork = {
      ...pushNetworkFromApns(this.apns),
      subscribe: async (listener) => this.apns.onDelivery((d) => {
        if (this.gateOpen) listener(d);
      }),
    };
    return new Fleet({
      serverUrl: server.url, adminToken: server.adminToken, push: gated, devices, users: 0,
      enrollConcurrency: 64, syncConcurrency: FLEET_SYNC_CONCURRENCY, installDelayMs: 20, retryDelayMs: 500,
      // A burst of enrollments waits in the server's queue far longer than any device request would.
      http: new CapturingHttpClient({ maxSockets: 80, timeoutMs: 600_000 }),
      vppLicenseCheck: appsAndBooksLicenseCheck(this.appsAndBooks, () => this.sTokens),
    });
  }

  /** Calls `listener` with the token of every push the simulated APNs delivers, until the returned function is called. */
  onDelivery(listener: (token: string) => void): () => void {
    this.deliveryListeners.add(listener);
    return () => this.deliveryListeners.delete(listener);
  }

  /** Resolves once `count` of `tokens` have each had a push after this call (or after `timeoutMs`: false). */
  waitForPushes(tokens: Set<string>, count: number, timeoutMs: number): { done: Promise<boolean>; received: () => number } {
    const pushed = new Set<string>();
    let resolveDone!: (ok: boolean) => void;
    const done = new Promise<boolean>((r) => (resolveDone = r));
    const stop = this.onDelivery((token) => {
      if (!tokens.has(token)) return;
      pushed.add(token);
      if (pushed.size >= count) finish(true);
    });
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      stop();
      resolveDone(ok);
    };
    if (count <= 0) finish(true);
    return { done, received: () => pushed.size };
  }

  /** Waits until no push has arrived for `quietMs` (at most `timeoutMs`). */
  async pushesQuiet(quietMs: number, timeoutMs: number): Promise<void> {
    let last = Date.now();
    const stop = this.onDelivery(() => (last = Date.now()));
    const deadline = Date.now() + timeoutMs;
    try {
      while (Date.now() - last < quietMs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      stop();
    }
  }

  async close(): Promise<void> {
    await this.apns.close();
    await this.appsAndBooks.close();
  }
}

/** Enrolls `device` through the fleet and returns the enrollment profile it was served. */
export async function enrollCapturingProfile(fleet: Fleet, device: SimulatedDevice, onProfile?: () => void): Promise<Buffer> {
  let profile: Buffer | undefined;
  await captureScope.run((url, _opts, res) => {
    if (!new URL(url).pathname.startsWith('/mdm/enroll/')) return;
    profile = res.body;
    onProfile?.();
  }, () => fleet.enrollDevice(device));
  if (!profile) throw new BenchError(`no enrollment profile seen for ${device.udid}`);
  return profile;
}

/** Records the device's own TokenUpdate and Idle connect (sent for real once), for replay. */
export async function replayDevice(device: SimulatedDevice, profile: Buffer): Promise<ReplayDevice> {
  const { identity } = readEnrollmentProfile(profile);
  const seen: Record<string, PreparedRequest> = {};
  const record: CaptureSink = (url, opts) => {
    const p = prepared(url, opts);
    seen[p.path.endsWith('/checkin') ? 'checkin' : 'connect'] ??= p;
  };
  await captureScope.run(record, () => device.tokenUpdate());
  await captureScope.run(record, () => device.sync());
  if (!seen.checkin || !seen.connect) throw new BenchError(`could not record the TokenUpdate and Idle of ${device.udid}`);
  if (!seen.checkin.body?.toString().includes('TokenUpdate')) throw new BenchError(`recorded check-in of ${device.udid} is not a TokenUpdate`);
  return { device, identity, idle: seen.connect, tokenUpdate: seen.checkin };
}

/** The device's own report for a command, signed with its identity, as it would send it to ServerURL. */
export async function signedReport(r: ReplayDevice, commandUUID: string, command: Record<string, unknown>): Promise<PreparedRequest> {
  const report = await r.device.answerCommand({ CommandUUID: commandUUID, Command: command });
  const body = Buffer.from(buildPlist(report), 'utf8');
  return { ...r.idle, headers: { ...r.idle.headers, 'mdm-signature': signMdmMessage(body, r.identity) }, body };
}
