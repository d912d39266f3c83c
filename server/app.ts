import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Agenda } from 'agenda';
import { PostgresBackend } from '@agendajs/postgres-backend';
import { createApnsSender, type PushSender } from '../mdm/apns.js';
import { createSignatureVerifier, generateSandboxPushCertificate, type MdmSignatureVerifier } from '../mdm/identity.js';
import { loadConfig, type Config } from './config.js';
import { createLogger, type Logger, type LogSink } from './log.js';
import { SecretBox, decodeKey, loadOrCreateFileSecret } from './secrets.js';
import { openDatabase, type Database } from './storage/database.js';
import { migrate } from './storage/migrations.js';
import { Storage } from './storage/storage.js';
import { loadOrCreateServerCA, loadPushCertificate, storePushCertificate, type PushCertificateInfo } from './pki.js';
import { PushService } from './push-service.js';
import { MdmService } from './mdm-service.js';
import { EnrollmentService } from './enrollment-service.js';
import { ServerEventBus } from './events.js';
import { loadRefreshSchedule, runDeviceRefresh, type RefreshSchedule } from './refresh-schedule.js';
import { deviceRoutes } from './http/device-routes.js';
import { adminApi } from './http/admin-api.js';
import { webPage } from './http/web-page.js';
import type { CertifiedKey } from '../mdm/identity.js';
import { startSimulatedApns, type SimulatedApns } from '../simulator/apns.js';
import { startSimulatedAppsAndBooks, type SimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { VppService } from './vpp-service.js';
import { vppAdminRouter, vppNotificationRouter } from './http/vpp-api.js';
import type { Schedule } from './storage/vpp-store.js';
import { demoSandboxAssets } from '../simulator/sandbox-catalogue.js';

export interface RunningServer {
  url: string;
  config: Config;
  adminToken: string;
  storage: Storage;
  database: Database;
  events: ServerEventBus;
  push: PushService;
  mdm: MdmService;
  log: Logger;
  vpp: VppService;
  sandbox?: { apns: SimulatedApns; apnsControlUrl: string; appsAndBooks: SimulatedAppsAndBooks; demoSToken: string };
  /** Milliseconds from start to ready. */
  startupMs: number;
  close(): Promise<void>;
}

export interface StartOptions extends Partial<Config> {
  env?: NodeJS.ProcessEnv;
  logSink?: LogSink;
  /** Called once with a generated admin token, so the CLI can print it. */
  onGeneratedAdminToken?: (token: string) => void;
}

export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const started = Date.now();
  const { env = process.env, logSink, onGeneratedAdminToken, ...overrides } = options;
  const config = loadConfig(env, overrides);
  const log = createLogger(config.logLevel, logSink);
  const cleanups: Array<() => Promise<void>> = [];
  const closeAll = async () => { for (const c of cleanups.reverse()) await c().catch((e) => log.error('shutdown step failed', { error: (e as Error).message })); };

  try {
    const secrets = new SecretBox(decodeKey(await loadOrCreateFileSecret({
      value: config.secretsKey, dataDir: config.dataDir, file: 'secrets-key', what: 'SECRETS_KEY (keep it: stored private keys cannot be read without it)',
      generate: () => crypto.randomBytes(32).toString('hex'), log,
    })));
    const adminToken = await loadOrCreateFileSecret({
      value: config.adminToken, dataDir: config.dataDir, file: 'admin-token', what: 'admin API token', log,
      generate: () => crypto.randomBytes(24).toString('base64url'), announce: onGeneratedAdminToken,
    });

    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log });
    cleanups.push(() => database.close());
    await migrate(database.pool, log);
    const storage = new Storage(database.pool);
    const ca = await loadOrCreateServerCA(storage, secrets);
    let verifier: MdmSignatureVerifier = createSignatureVerifier(ca.certPem);

    // ---- APNs: sandbox (simulated, in-process) or real ----
    let apnsUrl = config.apnsUrl;
    let vppUrl = config.vppUrl;
    let apnsCaPem = config.apnsCaFile ? await fs.readFile(config.apnsCaFile, 'utf8') : undefined;
    let sandbox: RunningServer['sandbox'];
    if (config.sandbox) {
      const apns = await startSimulatedApns({ host: '127.0.0.1' });
      cleanups.push(() => apns.close());
      apnsUrl = apns.url;
      apnsCaPem = apns.caPem;
      if (!(await loadPushCertificate(storage, secrets))) {
        const generated = await generateSandboxPushCertificate();
        await storePushCertificate(storage, secrets, { certificate: generated.certPem, privateKey: generated.keyPem });
      }
      const appsAndBooks = await startSimulatedAppsAndBooks({ host: '127.0.0.1', eventDelayMs: 50 });
      cleanups.push(() => appsAndBooks.close());
      vppUrl = appsAndBooks.url;
      const demoSToken = appsAndBooks.issueToken({ orgName: 'Sandbox School', locationName: 'Sandbox Campus', assets: demoSandboxAssets() });
      sandbox = { apns, apnsControlUrl: apns.controlUrl, appsAndBooks, demoSToken };
      log.warn('sandbox mode: simulated APNs and Apps and Books in-process; nothing reaches Apple', { apnsUrl: apns.url, apnsControlUrl: apns.controlUrl, appsAndBooksUrl: vppUrl });
    }

    let pushCert: (PushCertificateInfo & CertifiedKey) | undefined;
    let sender: PushSender | undefined;
    const usePushCertificate = async (cert: (PushCertificateInfo & CertifiedKey) | undefined) => {
      if (cert && pushCert && cert.certPem === pushCert.certPem && cert.keyPem === pushCert.keyPem) return;
      const old = sender;
      pushCert = cert;
      sender = cert ? createApnsSender({ url: apnsUrl, certPem: cert.certPem, keyPem: cert.keyPem, topic: cert.topic, caPem: apnsCaPem }) : undefined;
      if (cert && sandbox) sandbox.apns.trustPushCertificate(cert.certPem);
      await old?.close().catch(() => {});
    };
    await usePushCertificate(await loadPushCertificate(storage, secrets));
    cleanups.push(async () => { await sender?.close(); });

    const events = new ServerEventBus();
    const push = new PushService({ storage, log, sender: () => sender });
    cleanups.push(() => push.stop());
    const mdm = new MdmService({ storage, log, push, events, secrets, expectedTopic: () => pushCert?.topic });

    let publicUrl = config.publicUrl;
    const enrollment = new EnrollmentService({ storage, log, ca, publicUrl: () => publicUrl, ttlMs: config.enrollmentTtlMs, pushTopic: () => pushCert?.topic });

    // ---- jobs (agenda on the same database; schedules and locks are shared by every server process) ----
    const agenda = new Agenda({
      // On PGlite agenda shares the single connection (see database.ts) and polls: LISTEN/NOTIFY would pin it.
      backend: database.kind === 'pglite'
        ? new PostgresBackend({ pool: database.pool, disableNotifications: true })
        : new PostgresBackend({ connectionString: database.url }),
      processEvery: 1000, defaultLockLifetime: 5 * 60_000,
    });
    const refreshDeps = { storage, push, log, events };
    const installationId = await storage.putSettingIfAbsent('installation_id', crypto.randomUUID());
    const vpp = new VppService({
      storage, log, mdm, push, events, secrets, vppUrl, publicUrl: () => publicUrl, installationId,
      installationName: config.installationName, eventPollMs: config.vppEventPollMs,
      scheduleSync: async (subscriptionId: string, schedule: Schedule) => {
        await agenda.cancel({ name: 'vpp:sync', data: { subscriptionId } });
        if (schedule.type === 'date' && schedule.at) await agenda.schedule(new Date(schedule.at), 'vpp:sync', { subscriptionId });
        if (schedule.type === 'recurring' && schedule.every) {
          await agenda.create('vpp:sync', { subscriptionId }).repeatEvery(schedule.every, { skipImmediate: true }).unique({ 'data.subscriptionId': subscriptionId }).save();
        }
      },
    });
    cleanups.push(() => vpp.stop());
    agenda.define('vpp:sync', async (job) => {
      const { subscriptionId } = job.attrs.data as { subscriptionId: string };
      if (await storage.vpp.getSubscription(subscriptionId)) await vpp.syncAssets(subscriptionId);
    });
    agenda.define('vpp:reconcile', async () => {
      for (const s of await storage.vpp.listSubscriptions()) if (s.status === 'Active') await vpp.reconcile(s.id).catch((e) => log.error('reconcile failed', { subscriptionId: s.id, error: (e as Error).message }));
    });
    agenda.define('apns:retry-due', async () => { await push.drain(); });
    // Each process holds its own APNs session: notice a certificate another process stored. Agenda jobs run
    // on one process at a time, so this is a per-process timer, comparing only the row's timestamp.
    let pushCertStamp = await storage.settingUpdatedAt('push_certificate');
    const certWatch = setInterval(() => {
      void (async () => {
        const stamp = await storage.settingUpdatedAt('push_certificate');
        if (stamp?.getTime() === pushCertStamp?.getTime()) return;
        pushCertStamp = stamp;
        await usePushCertificate(await loadPushCertificate(storage, secrets));
        void push.drain();
      })().catch((e) => log.error('push certificate reload failed', { error: (e as Error).message }));
    }, 2000);
    certWatch.unref();
    cleanups.push(async () => clearInterval(certWatch));
    agenda.define('devices:refresh', async () => { await runDeviceRefresh(refreshDeps, await loadRefreshSchedule(storage)); });
    const applyRefreshSchedule = async (s: RefreshSchedule) => {
      await agenda.cancel({ name: 'devices:refresh' });
      if (s.enabled) await agenda.every(s.everyMinutes * 60_000, 'devices:refresh', undefined, { skipImmediate: true });
    };
    await agenda.start();
    cleanups.push(async () => { await agenda.stop(); });
    await agenda.every(Math.max(500, config.pushRetryPollMs), 'apns:retry-due', undefined, { skipImmediate: true });
    await applyRefreshSchedule(await loadRefreshSchedule(storage));
    await agenda.every(config.vppReconcileMs, 'vpp:reconcile', undefined, { skipImmediate: true });
    vpp.start();

    // ---- HTTP ----
    const app = express();
    app.disable('x-powered-by');
    app.set('trust proxy', false);
    let ready = false;
    app.use((req, res, next) => {
      // NUL cannot be stored or looked up in PostgreSQL text: answer 400 before any route touches it.
      let path = req.path;
      try { path = decodeURIComponent(req.path); } catch { /* undecodable: the route answers 404 */ }
      if (path.includes('\0')) {
        log.warn('request refused', { path: req.path, reason: 'NUL character in the path' });
        if (req.path.startsWith('/api/')) res.status(400).json({ error: { code: 'bad_request', message: 'NUL character in the path' } });
        else res.status(400).type('text/plain').send('NUL character in the path');
        return;
      }
      next();
    });
    app.get('/healthz', (_req, res) => {
      res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'starting', database: database.kind });
    });
    app.use(vppNotificationRouter(vpp, log));
    app.use(deviceRoutes({ mdm, enrollment, verifier: () => verifier, clientCertHeader: config.clientCertHeader, maxBodyBytes: config.maxDeviceBodyBytes, log }));
    app.use(adminApi({
      storage, mdm, enrollment, push, adminToken, log,
      setPushCertificate: async (input) => {
        const stored = await storePushCertificate(storage, secrets, input);
        await usePushCertificate(stored);
        void push.drain();
        return { topic: stored.topic, notAfter: stored.notAfter, notBefore: stored.notBefore };
      },
      pushCertificate: () => pushCert && { topic: pushCert.topic, notAfter: pushCert.notAfter, notBefore: pushCert.notBefore },
      setRefreshSchedule: async (s) => { await storage.putSetting('device_refresh_schedule', s); await applyRefreshSchedule(s); },
      runRefreshNow: async () => runDeviceRefresh(refreshDeps, await loadRefreshSchedule(storage)),
      sandboxInfo: sandbox && (() => ({ apnsControlUrl: sandbox!.apnsControlUrl, apnsUrl: sandbox!.apns.url, appsAndBooksUrl: sandbox!.appsAndBooks.url, demoSToken: sandbox!.demoSToken })),
      extraRouters: [vppAdminRouter(vpp)],
      deviceExtras: async (udid) => ({ apps: await storage.vpp.deviceApps(udid) }),
    }));
    app.use(webPage());

    const server = http.createServer({ keepAliveTimeout: 65_000 }, app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    cleanups.push(() => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }));
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    if (!publicUrl) publicUrl = url;
    if (publicUrl.startsWith('http://')) log.warn('PUBLIC_URL is plain http: fine for simulated devices and local tests; real devices need https', { publicUrl });
    ready = true;
    void push.drain();
    const startupMs = Date.now() - started;
    log.info('server ready', { url, publicUrl, database: database.kind, startupMs, sandbox: config.sandbox });

    return {
      url, config, adminToken, storage, database, events, push, mdm, vpp, log, sandbox, startupMs,
      close: async () => { ready = false; await closeAll(); },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
