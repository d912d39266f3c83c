import crypto from 'node:crypto';
import os from 'node:os';
import { createSignatureVerifier } from '../mdm/identity.js';
import { isLoopbackHost } from '../mdm/profile.js';
import { appleFromConfig, type ApplePlatform } from './apple-platform.js';
import { AuditLog } from './audit.js';
import { ConfigError, loadConfig, peerList, weakAdminToken, type Config } from './config.js';
import { CommandOwners } from './devices/command-owners.js';
import { CommandQueue } from './devices/command-queue.js';
import { DeviceAdmin } from './devices/device-admin.js';
import { DeviceRefresh } from './devices/device-refresh.js';
import { DeviceService } from './devices/device-service.js';
import { EnrollmentService, newDeviceIdentity } from './devices/enrollment-service.js';
import { IdentityPool } from './devices/identity-pool.js';
import { IdentityRenewal } from './devices/identity-renewal.js';
import { scheduleIdentityRenewal } from './devices/identity-renewal-jobs.js';
import { loadOrCreateServerCA } from './devices/server-ca.js';
import { UserDirectory } from './devices/user-directory.js';
import { ServerEventBus } from './events.js';
import { adminApi } from './http/admin-api.js';
import { AuthFailureLimiter } from './http/admin-guard.js';
import { deviceRoutes } from './http/device-routes.js';
import { listen } from './http/http-server.js';
import { notificationRoutes } from './http/notification-routes.js';
import { vppAdminRouter } from './http/vpp-api.js';
import { webPage } from './http/web-page.js';
import { createLicensing, type Licensing } from './licensing/index.js';
import { createLogger, type Logger, type LogSink } from './log.js';
import { ServerMetrics } from './metrics.js';
import { apnsTunnel, proxyAwareFetch } from './outbound-proxy.js';
import { PushCertificates } from './push/push-certificate.js';
import { schedulePushJobs } from './push/push-jobs.js';
import { PushService } from './push/push-service.js';
import { createScheduler } from './scheduler.js';
import { SecretBox, decodeKey, loadOrCreateFileSecret } from './secrets.js';
import { databaseProbe, openDatabase, type Database } from './storage/database.js';
import { migrate } from './storage/migrate.js';
import type { Storage } from './storage/ports.js';
import { postgresStorage } from './storage/postgres/index.js';

// The composition root: configuration → storage → services → jobs → HTTP, and the reverse on close.

export interface RunningServer {
  url: string;
  config: Config;
  adminToken: string;
  storage: Storage;
  database: Database;
  events: ServerEventBus;
  push: PushService;
  devices: DeviceService;
  licensing: Licensing;
  identityRenewal: IdentityRenewal;
  log: Logger;
  /** Milliseconds from start to ready. */
  startupMs: number;
  close(): Promise<void>;
}

export interface StartOptions extends Partial<Config> {
  env?: NodeJS.ProcessEnv;
  logSink?: LogSink;
  /** Called once with a generated admin token and the file it is kept in, so the CLI can tell the operator. */
  onGeneratedAdminToken?: (token: string, file: string) => void;
  /** Where Apple's services are; unset: Apple's own, from the configuration. */
  apple?: ApplePlatform;
}

export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const started = Date.now();
  const { env = process.env, logSink, onGeneratedAdminToken, apple, ...overrides } = options;
  const config = loadConfig(env, overrides);
  const log = createLogger(config.logLevel, logSink);
  const closing = new ShutdownSteps(log);
  if (apple?.close) closing.add(() => apple.close!());
  try {
    const { secrets, adminToken } = await loadSecrets(config, log, onGeneratedAdminToken);
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log, pgliteSharedBuffersMb: config.pgliteSharedBuffersMb });
    closing.add(() => database.close());
    await migrate(database.pool, log);
    const storage = postgresStorage(database.pool, { embedded: database.kind === 'pglite' });
    const platform = apple ?? await appleFromConfig(config);

    const databaseHealth = databaseProbe(database.pool, log);
    const services = await createServices({ config, log, secrets, database, storage, platform, closing });
    await services.start();
    const http = await listen({
      host: config.host, port: config.port, log, routers: services.routers(adminToken),
      limits: { maxConnections: config.maxConnections, headersTimeoutMs: config.headersTimeoutMs, requestTimeoutMs: config.requestTimeoutMs, shutdownGraceMs: config.shutdownGraceMs },
      health: async () => ({ ready: services.ready, database: database.kind, databaseUnreachable: !(await databaseHealth()).reachable }),
    });
    closing.add(() => http.close());
    services.setPublicUrl(config.publicUrl || http.url);
    services.ready = true;
    void services.push.drain();

    const startupMs = Date.now() - started;
    log.info({ url: http.url, publicUrl: services.publicUrl(), database: database.kind, startupMs, apple: platform.name }, 'server ready');
    return {
      url: http.url, config, adminToken, storage, database, log, startupMs,
      events: services.events, push: services.push, devices: services.devices, licensing: services.licensing, identityRenewal: services.renewal,
      close: async () => { services.ready = false; await closing.run(); },
    };
  } catch (err) {
    await closing.run();
    throw err;
  }
}

async function loadSecrets(config: Config, log: Logger, announce?: (token: string, file: string) => void) {
  const secrets = new SecretBox(decodeKey(await loadOrCreateFileSecret({
    value: config.secretsKey, dataDir: config.dataDir, file: 'secrets-key', what: 'SECRETS_KEY (keep it: stored private keys cannot be read without it)',
    generate: () => crypto.randomBytes(32).toString('hex'), log,
  })));
  const adminToken = await loadOrCreateFileSecret({
    value: config.adminToken, dataDir: config.dataDir, file: 'admin-token', what: 'admin API token', log,
    generate: () => crypto.randomBytes(24).toString('base64url'), announce,
  });
  // A token put into the file by hand meets the rule a configured ADMIN_TOKEN meets.
  const weak = weakAdminToken(adminToken);
  if (weak) throw new ConfigError(`${weak} (read from ${config.dataDir}/admin-token)`);
  return { secrets, adminToken };
}

async function createServices(c: {
  config: Config; log: Logger; secrets: SecretBox; database: Database; storage: Storage; platform: ApplePlatform; closing: ShutdownSteps;
}) {
  const { config, log, secrets, storage, platform, closing } = c;
  const ca = await loadOrCreateServerCA(storage.settings, secrets);
  let publicUrl = config.publicUrl;
  const events = new ServerEventBus();
  const scheduler = createScheduler(c.database, log);
  const audit = new AuditLog(storage.audit, log);

  const certificates: PushCertificates = new PushCertificates({
    settings: storage.settings, devices: storage.devices, secrets, log, apns: { ...platform.apns, tunnel: apnsTunnel(platform.apns.url, config) },
    onInUse: (certPem) => platform.pushCertificateInUse?.(certPem), onChange: () => void push.drain(),
  });
  const push: PushService = new PushService({ pushQueue: storage.pushQueue, devices: storage.devices, log, sender: () => certificates.sender() });
  await certificates.load(platform.initialPushCertificate);
  closing.add(() => certificates.close());
  closing.add(() => push.stop());

  // Licensing is created below with the counting fetch; the license gauge reads it once it exists.
  const metricSources = {
    store: storage.metrics, pushStats: () => ({ ...push.stats }), licenses: async () => [] as Array<{ adamId: string; total: number; assigned: number }>,
    identityPool: () => ({ available: identities.available, capacity: identities.capacity, taken: identities.stats.taken, missed: identities.stats.missed }),
  };
  const metrics = new ServerMetrics({ ...metricSources, licenses: () => metricSources.licenses() });
  // One allowance of failed authentications per source for every route that takes the admin token.
  const authFailures = new AuthFailureLimiter();
  const owners = new CommandOwners(log);
  const queue = new CommandQueue({ commands: storage.commands, push });
  const devices = new DeviceService({
    devices: storage.devices, requests: storage.deviceRequests, commands: storage.commands, pushQueue: storage.pushQueue,
    log, push, queue, owners, events, secrets, audit, expectedTopic: () => certificates.topic(), notNowRepushMs: config.notNowRepushMs,
  });
  const identities = new IdentityPool({
    issue: () => newDeviceIdentity(ca, config.deviceIdentityValidDays), size: config.identityPoolSize, log,
    parallel: Math.max(1, os.availableParallelism()),
    // Validity is counted from issue: an hour (or 1 % of a short validity) in the pool costs the device little.
    maxAgeMs: Math.min(3_600_000, config.deviceIdentityValidDays * 86_400_000 / 100),
  });
  identities.start();
  closing.add(() => identities.stop());
  const enrollment = new EnrollmentService({
    enrollments: storage.enrollments, users: storage.users, devices: storage.devices, log, publicUrl: () => publicUrl, ttlMs: config.enrollmentTtlMs,
    pushTopic: () => certificates.topic(), identity: () => identities.take(),
  });
  const renewal = new IdentityRenewal({
    devices: storage.devices, enrollments: storage.enrollments, queue, push, log,
    identityProfile: (token, topic, udid) => enrollment.identityProfile(token, topic, udid), renewBeforeMs: config.identityRenewBeforeDays * 86_400_000,
  });
  renewal.register(owners);
  const refresh = new DeviceRefresh({ settings: storage.settings, devices: storage.devices, push, log, scheduler, checkOut: (d) => devices.checkOut(d) });
  const licensing = createLicensing({
    storage, log, secrets, push, queue, owners, events, scheduler,
    vppUrl: platform.vppUrl, publicUrl: () => publicUrl, installationName: config.installationName,
    installationId: await storage.settings.putIfAbsent('installation_id', crypto.randomUUID()),
    eventPollMs: config.vppEventPollMs, eventNotificationWaitMs: config.vppEventNotificationWaitMs, reconcileEveryMs: config.vppReconcileMs, associateRetryMs: config.vppAssociateRetryMs,
    fetch: metrics.countingFetch(platform.vppUrl, proxyAwareFetch(config)),
    installChecks: { firstCheckMs: config.vppInstallCheckMs, timeoutMs: config.vppInstallTimeoutMs },
  });
  closing.add(() => licensing.stop());
  const verifier = createSignatureVerifier(ca.certPem, { cacheSize: config.signatureCacheSize });
  metricSources.licenses = () => licensing.assignments.licenseSummary();

  return {
    events, push, devices, licensing, renewal, ready: false,
    publicUrl: () => publicUrl,
    setPublicUrl(url: string) {
      publicUrl = url;
      if (!url.startsWith('http://')) return;
      if (isLoopbackHost(new URL(url).hostname)) log.warn({ publicUrl: url }, 'PUBLIC_URL is plain http on loopback: fine for simulated devices and local tests; real devices need https');
      else log.warn({ publicUrl: url }, 'PUBLIC_URL is unset, so devices are sent to the listening address over plain http: real devices need PUBLIC_URL=https://…');
    },
    /** Jobs run on the shared database: any process may run them, one at a time. */
    async start() {
      await scheduler.start();
      closing.add(async () => {
        // Running jobs finish (bounded); one still running then keeps its lock until it lapses, and another process takes it.
        const drained = await scheduler.drain(config.shutdownGraceMs);
        if (drained.timedOut) log.warn({ running: drained.running, graceMs: config.shutdownGraceMs }, 'jobs still running at shutdown: left to their lock lifetime');
      });
      const released = await storage.pushQueue.releaseClaims();
      if (released) log.info({ pushes: released }, 'pushes claimed by a process that stopped are due again');
      await schedulePushJobs(scheduler, push, config.pushRetryPollMs);
      await refresh.start();
      await scheduleIdentityRenewal(scheduler, renewal, config.identityRenewEveryMs);
      await licensing.start();
      // Each process holds its own APNs session: notice a certificate another process stored.
      certificates.watch(2000);
    },
    routers: (adminToken: string) => [
      metrics.router([adminToken, ...(config.metricsToken ? [config.metricsToken] : [])], authFailures, log),
      metrics.deviceRequestTimer(),
      notificationRoutes(licensing.notifications, log),
      deviceRoutes({
        devices, enrollment, verifier: () => verifier, log,
        clientCertHeader: config.clientCertHeader, trustedProxies: peerList(config.clientCertTrustedProxies),
        maxBodyBytes: config.maxDeviceBodyBytes, maxBodyBytesInFlight: config.maxDeviceBodyBytesInFlight,
      }),
      adminApi({
        adminToken, authFailures, log, audit, enrollment, refresh, pushCertificates: certificates,
        users: new UserDirectory({ users: storage.users, devices: storage.devices, lifecycle: licensing.lifecycle }),
        devices: new DeviceAdmin({
          devices: storage.devices, commands: storage.commands, enrollments: storage.enrollments, queue, push,
          removal: licensing.lifecycle, audit, checkOut: (d) => devices.checkOut(d),
        }),
        deviceApps: (udid) => licensing.assignments.deviceApps(udid),
        platformInfo: platform.describe && (() => platform.describe!()),
        extraRouters: [vppAdminRouter(licensing)],
      }),
      // Last: it only sees requests nobody else answered.
      webPage(),
    ],
  };
}

/** What close() undoes, in reverse order of start; a failing step is logged and the rest still run. */
class ShutdownSteps {
  private readonly steps: Array<() => Promise<unknown>> = [];
  constructor(private readonly log: Logger) {}
  add(step: () => Promise<unknown>): void { this.steps.push(step); }
  async run(): Promise<void> {
    while (this.steps.length) {
      await this.steps.pop()!().catch((e) => this.log.error({ error: (e as Error).message }, 'shutdown step failed'));
    }
  }
}
