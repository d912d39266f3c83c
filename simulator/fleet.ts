// A fleet of simulated devices against one server: users and enrollments through the admin API, pushes
// from the (simulated) APNs mapped to devices by token, commands queued and their answers awaited, and every
// sync run from one shared work queue (./sync-queue.ts).
import { randomBytes } from 'node:crypto';
import { SimulatedDevice, type DeviceEnvironment, type ReportStatus } from './device.js';
import { FleetError, type FleetOptions, type FleetStats, type FleetUser } from './fleet-types.js';
import { SimulatorHttpClient } from './http.js';
import { parseOsRange, productsFor } from './models.js';
import type { PushDelivery, PushRejection } from './push-network.js';
import { SyncQueue } from './sync-queue.js';

export { FleetError, type FleetObserver, type FleetOptions, type FleetStats, type FleetUser } from './fleet-types.js';

export { pushNetworkFromApns, pushNetworkFromControlClient, type PushDelivery, type PushNetwork, type PushRejection } from './push-network.js';

const MAX_ERROR_SAMPLES = 10;
const FIRST_NAMES = ['Ada', 'Ben', 'Chloe', 'Dev', 'Elif', 'Femi', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kemal', 'Lena', 'Mateo', 'Nora', 'Omar', 'Priya'];
const FINAL_STATUSES = new Set<ReportStatus>(['Acknowledged', 'Error', 'CommandFormatError']);

export class Fleet {
  readonly devices: SimulatedDevice[] = [];
  readonly users: FleetUser[] = [];
  readonly runId: string;
  readonly http: SimulatorHttpClient;

  private readonly opts: FleetOptions;
  private readonly serverUrl: string;
  private readonly ownsHttp: boolean;
  private readonly env: DeviceEnvironment;
  private readonly byToken = new Map<string, SimulatedDevice>();
  private readonly syncs: SyncQueue;

  private readonly awaitingAnswers = new Map<string, SimulatedDevice>();
  // Answers that beat their admin call's reply; only collected while queueCommand runs.
  private readonly answeredEarly = new Set<string>();
  private queueCallsInFlight = 0;
  private answerWaiters: Array<() => void> = [];
  private unsubscribe?: () => void;
  private closed = false;
  private readonly asleep = new Set<SimulatedDevice>();
  /** Asleep devices that were pushed: they sync when they wake. */
  private readonly heldPushes = new Set<SimulatedDevice>();

  private counters = {
    enrollFailures: 0,
    pushesReceived: 0,
    pushesDropped: 0,
    invitationsAccepted: 0,
    errors: 0,
  };
  private readonly commandsByStatus: Record<string, number> = {};
  private readonly commandsByRequestType: Record<string, Record<string, number>> = {};
  private readonly errorSamples: string[] = [];

  constructor(opts: FleetOptions) {
    if (!Number.isInteger(opts.devices) || opts.devices < 0) throw new FleetError(`devices must be a non-negative integer, got ${opts.devices}`);
    const users = opts.users ?? Math.max(1, Math.ceil(opts.devices / 10));
    if (!Number.isInteger(users) || users < 0) throw new FleetError(`users must be a non-negative integer, got ${opts.users}`);
    this.opts = { ...opts, users };
    this.serverUrl = opts.serverUrl.replace(/\/+$/, '');
    this.runId = opts.runId ?? `sim-${randomBytes(3).toString('hex')}`;
    const syncConcurrency = Math.max(1, opts.syncConcurrency ?? 32);
    this.syncs = new SyncQueue({
      concurrency: syncConcurrency,
      retryDelayMs: opts.retryDelayMs,
      maxSyncAttempts: opts.maxSyncAttempts,
      onError: (message) => this.recordError(message),
    });
    this.ownsHttp = !opts.http;
    this.http = opts.http ?? new SimulatorHttpClient({ maxSockets: Math.max(syncConcurrency, opts.enrollConcurrency ?? 32) + 8 });
    // One environment object for every device: its callbacks are this fleet's methods.
    this.env = {
      http: this.http,
      push: opts.push,
      installDelayMs: opts.installDelayMs,
      vppLicenseCheck: opts.vppLicenseCheck,
      onCommandAnswered: (d, rt, status, uuid) => this.onCommandAnswered(d, rt, status, uuid),
      onWantsSync: (d) => this.requestSync(d),
      onProtocolViolation: (d, msg) => this.recordError(`${d.udid}: ${msg}`),
      onInvitation: (d, _url, outcome) => {
        if (outcome === 'accepted') this.counters.invitationsAccepted++;
        else if (outcome instanceof Error) this.recordError(`${d.udid}: ${outcome.message}`);
        opts.observer?.invitation?.(d, outcome);
      },
    };

    const releases = parseOsRange(opts.os ?? '9.3..17.5');
    for (let i = 0; i < opts.devices; i++) {
      const release = releases[i % releases.length];
      const products = productsFor(release.version);
      const product = products[Math.floor(i / releases.length) % products.length];
      const owner = users > 0 ? i % users : undefined;
      const name = FIRST_NAMES[(owner ?? i) % FIRST_NAMES.length];
      this.devices.push(
        new SimulatedDevice(this.env, {
          osVersion: release.version,
          buildVersion: release.build,
          productName: product.productName,
          deviceName: `${name}'s ${product.modelName}`,
        }),
      );
    }
    for (let u = 0; u < users; u++) {
      const id = `${this.runId}-u${String(u + 1).padStart(4, '0')}`;
      this.users.push({ id, email: `${id}@students.example.edu`, appleAccount: `${id}@icloud.example.com` });
    }
    this.devices.forEach((d, i) => {
      // A device's push token is fixed for its life, so pushes can be routed from the start.
      this.byToken.set(d.pushTokenHex, d);
      if (users === 0) return;
      const user = this.users[i % users];
      d.userId = user.id;
      d.appleAccount = user.appleAccount;
    });
  }

  /** Subscribes to pushes. Call before enrolling so no wake-up is missed. */
  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = await this.opts.push.subscribe((d) => this.onPush(d), {
      onRejection: (r) => this.onPushRejected(r),
      onConnection: (up, detail) =>
        this.opts.onNotice?.(up ? 'push stream from the simulated APNs is back' : `push stream from the simulated APNs lost (${detail ?? 'closed'}); reconnecting`),
    });
  }

  /** Creates the fleet's users through the admin API. */
  async createUsers(concurrency = 16): Promise<void> {
    await mapLimit(this.users, concurrency, async (u) => {
      await this.http.json(`${this.serverUrl}/api/v1/users`, { token: this.opts.adminToken, body: u });
    });
  }

  /**
   * Enrolls every device not enrolled yet: an enrollment (for its user) from the admin API, then the device
   * installs the profile and checks in. Failures are counted and sampled, not thrown.
   */
  async enrollAll(): Promise<void> {
    await mapLimit(this.devices, Math.max(1, this.opts.enrollConcurrency ?? 32), async (d) => {
      if (d.enrolled) return;
      try {
        await this.enrollDevice(d);
      } catch (err) {
        this.counters.enrollFailures++;
        this.recordError(`enroll ${d.udid}: ${(err as Error).message}`);
      }
    });
  }

  /** Enrolls (or re-enrolls) one device with a fresh enrollment for its user. */
  async enrollDevice(d: SimulatedDevice): Promise<void> {
    const body = d.userId ? { userId: d.userId } : {};
    const { url } = await this.http.json<{ token: string; url: string }>(`${this.serverUrl}/api/v1/enrollments`, {
      token: this.opts.adminToken,
      body,
    });
    if (d.enrolled) await d.reenroll(url);
    else await d.enroll(url);
  }

  /**
   * Queues `command` (a command dict such as `{RequestType: 'DeviceInformation', Queries: [...]}`) for each
   * device through the admin API (the server pushes them); their answers are awaited by waitForAnswers.
   * Returns the CommandUUIDs in the order of `devices` (undefined where the server refused the command).
   */
  async queueCommand(
    command: Record<string, unknown>,
    devices: SimulatedDevice[] = this.devices.filter((d) => d.enrolled),
    concurrency = 16,
  ): Promise<Array<string | undefined>> {
    const uuids: Array<string | undefined> = new Array(devices.length).fill(undefined);
    this.queueCallsInFlight++;
    try {
      await this.queueEach(command, devices, concurrency, uuids);
    } finally {
      if (--this.queueCallsInFlight === 0) this.answeredEarly.clear();
    }
    return uuids;
  }

  private async queueEach(command: Record<string, unknown>, devices: SimulatedDevice[], concurrency: number, uuids: Array<string | undefined>): Promise<void> {
    await mapLimit(devices, concurrency, async (d, i) => {
      try {
        const { commandUUID } = await this.http.json<{ commandUUID: string }>(
          `${this.serverUrl}/api/v1/devices/${encodeURIComponent(d.udid)}/commands`,
          { token: this.opts.adminToken, body: command },
        );
        // The answer can arrive before the admin call returns; only wait for it if it has not.
        if (!this.answeredEarly.delete(commandUUID)) this.awaitingAnswers.set(commandUUID, d);
        uuids[i] = commandUUID;
      } catch (err) {
        this.recordError(`queue ${String(command.RequestType)} for ${d.udid}: ${(err as Error).message}`);
      }
    });
  }

  /**
   * Queues `command` for all `devices` with the bulk admin call (POST /api/v1/commands), `perCall` devices
   * per call; answers are awaited by waitForAnswers as for queueCommand. Returns how many the server refused.
   */
  async queueBulkCommand(command: Record<string, unknown>, devices: SimulatedDevice[], perCall: number): Promise<number> {
    const byUdid = new Map(devices.map((d) => [d.udid, d]));
    let refused = 0;
    this.queueCallsInFlight++;
    try {
      for (let i = 0; i < devices.length; i += perCall) {
        const res = await this.http.json<{ queued: Array<{ udid: string; commandUUID: string }>; refused: unknown[] }>(
          `${this.serverUrl}/api/v1/commands`,
          { token: this.opts.adminToken, body: { udids: devices.slice(i, i + perCall).map((d) => d.udid), command } },
        );
        for (const q of res.queued) if (!this.answeredEarly.delete(q.commandUUID)) this.awaitingAnswers.set(q.commandUUID, byUdid.get(q.udid)!);
        refused += res.refused.length;
      }
    } finally {
      if (--this.queueCallsInFlight === 0) this.answeredEarly.clear();
    }
    return refused;
  }

  /** Resolves true once every command from queueCommand is answered, false when `timeoutMs` passes first. */
  async waitForAnswers(timeoutMs: number): Promise<boolean> {
    if (this.awaitingAnswers.size === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.answerWaiters = this.answerWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.answerWaiters.push(done);
    });
  }

  /** Devices whose queued commands are still unanswered. */
  devicesAwaitingAnswers(): SimulatedDevice[] {
    return [...new Set(this.awaitingAnswers.values())];
  }

  /** Schedules one sync of `device`, coalesced with any already due (SyncQueue.request). */
  requestSync(device: SimulatedDevice): void {
    if (!this.closed) this.syncs.request(device);
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    return this.syncs.idle();
  }

  /** The device stops answering pushes (as a phone that is off): a push waits for wake(). */
  sleep(device: SimulatedDevice): void {
    this.asleep.add(device);
  }

  /** The device answers pushes again, and syncs now if one came while it was asleep. */
  wake(device: SimulatedDevice): void {
    this.asleep.delete(device);
    if (this.heldPushes.delete(device)) this.requestSync(device);
  }

  deviceByToken(tokenHex: string): SimulatedDevice | undefined {
    return this.byToken.get(tokenHex.toLowerCase());
  }

  stats(): FleetStats {
    let devicesSynced = 0;
    let appsInstalled = 0;
    for (const d of this.devices) {
      if (d.syncCount > 0) devicesSynced++;
      appsInstalled += d.installedManagedAppCount();
    }
    return {
      devices: this.devices.length,
      users: this.users.length,
      enrolled: this.devices.filter((d) => d.enrolled).length,
      enrollFailures: this.counters.enrollFailures,
      syncs: this.syncs.syncs,
      devicesSynced,
      pushesReceived: this.counters.pushesReceived,
      pushesCoalesced: this.syncs.coalesced,
      pushesDropped: this.counters.pushesDropped,
      commandsByStatus: { ...this.commandsByStatus },
      commandsByRequestType: structuredClone(this.commandsByRequestType),
      appsInstalled,
      invitationsAccepted: this.counters.invitationsAccepted,
      queued: this.syncs.queuedCount,
      running: this.syncs.runningCount,
      awaiting: this.awaitingAnswers.size,
      errors: this.counters.errors,
      errorSamples: [...this.errorSamples],
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.syncs.close();
    if (this.ownsHttp) this.http.close();
  }

  // ---------------------------------------------------------------------------------------------

  private onPush(d: PushDelivery): void {
    const device = this.byToken.get(d.token.toLowerCase());
    // The control stream carries every delivery of the simulated APNs, other fleets' too.
    if (!device) return;
    this.counters.pushesReceived++;
    if (!device.acceptsPush(d.topic, d.payload.mdm)) {
      this.counters.pushesDropped++;
      if (device.enrolled) this.recordError(`${device.udid}: push with a PushMagic or topic that is not this enrollment's (dropped)`);
      return;
    }
    this.opts.observer?.pushed?.(device);
    if (this.asleep.has(device)) this.heldPushes.add(device);
    else this.requestSync(device);
  }

  // A real device never hears of a push APNs refused; the fleet does, and says so: a refused push is a device
  // the server can no longer wake (e.g. BadDeviceToken after the push network forgot it).
  private onPushRejected(r: PushRejection): void {
    const device = r.token ? this.byToken.get(r.token) : undefined;
    // After a check-out, 410 Unregistered is APNs doing its job.
    if (!device || !device.enrolled) return;
    this.recordError(`${device.udid}: APNs refused a push to this device: ${r.status} ${r.reason}`);
  }

  private onCommandAnswered(d: SimulatedDevice, requestType: string, status: ReportStatus, uuid: string): void {
    this.opts.observer?.answered?.(d, requestType, status);
    this.commandsByStatus[status] = (this.commandsByStatus[status] ?? 0) + 1;
    const byType = (this.commandsByRequestType[requestType || '(unknown)'] ??= {});
    byType[status] = (byType[status] ?? 0) + 1;
    if (!FINAL_STATUSES.has(status)) return;
    if (!this.awaitingAnswers.delete(uuid)) {
      if (this.queueCallsInFlight > 0) this.answeredEarly.add(uuid);
      return;
    }
    if (this.awaitingAnswers.size === 0) {
      const waiters = this.answerWaiters;
      this.answerWaiters = [];
      for (const w of waiters) w();
    }
  }

  private recordError(message: string): void {
    this.counters.errors++;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) this.errorSamples.push(message);
    this.opts.onError?.(message);
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
