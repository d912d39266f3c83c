import net from 'node:net';
import path from 'node:path';
import { isLoopbackHost } from '../mdm/profile.js';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { ProxyConfigError, checkProxySettings } from './outbound-proxy.js';

// Every setting of SPEC §3, read from the environment once at start-up.
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl?: string;
  dataDir: string;
  adminToken?: string;
  apnsUrl: string;
  apnsCaFile?: string;
  vppUrl: string;
  clientCertHeader?: string;
  /** Peers (addresses or CIDRs) allowed to send clientCertHeader: the TLS-terminating proxies. */
  clientCertTrustedProxies: string[];
  secretsKey?: string;
  logLevel: LogLevel;
  /** How long an enrollment token stays valid. */
  enrollmentTtlMs: number;
  /** Largest device request body accepted (check-in and connect). */
  maxDeviceBodyBytes: number;
  /** Device request bodies all requests together may hold in memory before 503. */
  maxDeviceBodyBytesInFlight: number;
  /** Open connections the HTTP server keeps; more are closed at once. */
  maxConnections: number;
  /** Time a client has to send its request headers, and its whole request. */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** On SIGTERM, how long requests in flight and running jobs may take before they are cut. */
  shutdownGraceMs: number;
  /** Interval at which the durable push queue is drained for retries. */
  pushRetryPollMs: number;
  /**
   * Time between two GET /status polls of one PENDING Apple event. Apple: "While the returned eventStatus is
   * PENDING, wait at least 30 seconds between subsequent status queries" — the default, and the floor against
   * Apple's own service. In the sandbox the simulated service refuses polls faster than this same value.
   */
  vppEventPollMs: number;
  /**
   * How long an Apple event waits for its notification before it is first polled. Apple: "If your device
   * management service doesn't receive a notification for an event within 5 minutes, check the event status".
   */
  vppEventNotificationWaitMs: number;
  /** How often the ledger is reconciled with Apple's /assignments. */
  vppReconcileMs: number;
  /** When Apple's service refuses an association for now (5xx, 429) after the client's retries: try again this much later. */
  vppAssociateRetryMs: number;
  /** First question (ManagedApplicationList, with a push) about an install a device accepted; then doubling. */
  vppInstallCheckMs: number;
  /** An install a device has not finished after this long is given up, and sent again by the next sync. */
  vppInstallTimeoutMs: number;
  /** Name shown to Apple as this installation's mdmInfo.name. */
  installationName: string;
  /** After a connection in which NotNow was followed by another status, push the device again this much later. */
  notNowRepushMs: number;
  /** Outbound proxy for APNs and Apps and Books (HTTPS_PROXY, HTTP_PROXY, NO_PROXY; server/outbound-proxy.ts). */
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
  /** A second bearer token GET /metrics accepts besides the admin token (for a scraper that must not administer). */
  metricsToken?: string;
  /** PostgreSQL shared_buffers of the embedded PGlite, in MB (its WASM memory holds them). */
  pgliteSharedBuffersMb: number;
  /** Signer certificates kept verified in memory (~4.5 KB each); a device beyond them costs ~0.3 ms more per request. */
  signatureCacheSize: number;
  /** Device identities issued ahead of enrollments (server/devices/identity-pool.ts); 0: none. */
  identityPoolSize: number;
  /** How long a device identity issued here is valid, in days (fractions allowed). */
  deviceIdentityValidDays: number;
  /** Renew a device identity this many days before it expires (fractions allowed); less than the validity. */
  identityRenewBeforeDays: number;
  /** How often the identity renewal job looks for devices due. */
  identityRenewEveryMs: number;
}

export class ConfigError extends Error {}

/** Apple's minimum between /status polls of a PENDING event (subscribing-to-notifications). */
export const APPLE_MIN_STATUS_POLL_MS = 30_000;

/**
 * VPP_EVENT_POLL_MS may go below Apple's 30 s only where Apple's service is not the one polled (a simulator
 * or the sandbox); against an apple.com host it is refused.
 */
export function checkEventPolling(config: Pick<Config, 'vppEventPollMs'>, vppUrl: string): void {
  let host = '';
  try { host = new URL(vppUrl).hostname; } catch { return; }
  if ((host === 'apple.com' || host.endsWith('.apple.com')) && config.vppEventPollMs < APPLE_MIN_STATUS_POLL_MS) {
    throw new ConfigError(`VPP_EVENT_POLL_MS must be at least ${APPLE_MIN_STATUS_POLL_MS} against Apple's service (Apple asks for 30 s between status polls of a pending event), got ${config.vppEventPollMs}`);
  }
}

/** 24 characters of a random alphabet carry well over 128 bits; the generated tokens have 32. */
export const MIN_ADMIN_TOKEN_LENGTH = 24;

/** Why a configured admin token is too weak to guard the API, or undefined. */
export function weakAdminToken(token: string): string | undefined {
  const hint = `use at least ${MIN_ADMIN_TOKEN_LENGTH} characters from a random generator, e.g. \`openssl rand -base64 32\``;
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) return `ADMIN_TOKEN is ${token.length} characters; ${hint}`;
  if (new Set(token).size < 8) return `ADMIN_TOKEN repeats too few different characters to be hard to guess; ${hint}`;
  return undefined;
}

/** Addresses and CIDRs (`10.0.0.0/8`, `::1`) as a BlockList; ConfigError naming `name` for an entry that is neither. */
export function peerList(entries: string[], name = 'CLIENT_CERT_TRUSTED_PROXIES'): net.BlockList {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [address, bits, more] = entry.split('/');
    const family = net.isIP(address ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (!family || more !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new ConfigError(`${name}: "${entry}" is not an IP address or CIDR (like 10.0.0.0/8 or fd00::/8)`);
    }
    list.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

function listFrom(raw: string | undefined): string[] | undefined {
  return raw === undefined || raw.trim() === '' ? undefined : raw.split(',').map((s) => s.trim()).filter(Boolean);
}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

function positiveFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a positive number, got "${raw}"`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const port = overrides.port ?? intFrom(env, 'PORT', 8080);
  const host = overrides.host ?? env.HOST ?? '127.0.0.1';
  const logLevel = (overrides.logLevel ?? env.LOG_LEVEL ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of debug, info, warn, error, silent; got "${logLevel}"`);
  }
  const config: Config = {
    port,
    host,
    publicUrl: (overrides.publicUrl ?? env.PUBLIC_URL ?? '').replace(/\/+$/, ''),
    databaseUrl: overrides.databaseUrl ?? (env.DATABASE_URL || undefined),
    dataDir: path.resolve(overrides.dataDir ?? env.DATA_DIR ?? './data'),
    adminToken: overrides.adminToken ?? (env.ADMIN_TOKEN || undefined),
    apnsUrl: overrides.apnsUrl ?? env.APNS_URL ?? 'https://api.push.apple.com',
    apnsCaFile: overrides.apnsCaFile ?? (env.APNS_CA_FILE || undefined),
    vppUrl: (overrides.vppUrl ?? env.VPP_URL ?? 'https://vpp.itunes.apple.com/mdm/v2').replace(/\/+$/, ''),
    clientCertHeader: (overrides.clientCertHeader ?? (env.CLIENT_CERT_HEADER || undefined))?.toLowerCase(),
    clientCertTrustedProxies: overrides.clientCertTrustedProxies ?? listFrom(env.CLIENT_CERT_TRUSTED_PROXIES) ?? ['127.0.0.1', '::1'],
    secretsKey: overrides.secretsKey ?? (env.SECRETS_KEY || undefined),
    logLevel,
    enrollmentTtlMs: overrides.enrollmentTtlMs ?? intFrom(env, 'ENROLLMENT_TTL_SECONDS', 7 * 24 * 3600) * 1000,
    maxDeviceBodyBytes: overrides.maxDeviceBodyBytes ?? intFrom(env, 'MAX_DEVICE_BODY_BYTES', 2 * 1024 * 1024),
    maxDeviceBodyBytesInFlight: overrides.maxDeviceBodyBytesInFlight ?? intFrom(env, 'DEVICE_BODY_BYTES_IN_FLIGHT', 64 * 1024 * 1024),
    maxConnections: overrides.maxConnections ?? intFrom(env, 'MAX_CONNECTIONS', 4096),
    headersTimeoutMs: overrides.headersTimeoutMs ?? intFrom(env, 'HEADERS_TIMEOUT_MS', 10_000),
    requestTimeoutMs: overrides.requestTimeoutMs ?? intFrom(env, 'REQUEST_TIMEOUT_MS', 30_000),
    shutdownGraceMs: overrides.shutdownGraceMs ?? intFrom(env, 'SHUTDOWN_GRACE_MS', 10_000),
    pushRetryPollMs: overrides.pushRetryPollMs ?? intFrom(env, 'PUSH_RETRY_POLL_MS', 2000),
    vppEventPollMs: overrides.vppEventPollMs ?? intFrom(env, 'VPP_EVENT_POLL_MS', APPLE_MIN_STATUS_POLL_MS),
    vppEventNotificationWaitMs: overrides.vppEventNotificationWaitMs ?? intFrom(env, 'VPP_EVENT_NOTIFICATION_WAIT_MS', 5 * 60_000),
    vppReconcileMs: overrides.vppReconcileMs ?? intFrom(env, 'VPP_RECONCILE_MS', 15 * 60_000),
    vppAssociateRetryMs: overrides.vppAssociateRetryMs ?? intFrom(env, 'VPP_ASSOCIATE_RETRY_SECONDS', 60) * 1000,
    vppInstallCheckMs: overrides.vppInstallCheckMs ?? intFrom(env, 'VPP_INSTALL_CHECK_SECONDS', 30) * 1000,
    vppInstallTimeoutMs: overrides.vppInstallTimeoutMs ?? intFrom(env, 'VPP_INSTALL_TIMEOUT_SECONDS', 3600) * 1000,
    installationName: overrides.installationName ?? env.INSTALLATION_NAME ?? 'vpp-mdm',
    notNowRepushMs: overrides.notNowRepushMs ?? intFrom(env, 'NOT_NOW_REPUSH_SECONDS', 300) * 1000,
    // Both spellings, as curl and undici read them.
    httpsProxy: overrides.httpsProxy ?? (env.HTTPS_PROXY || env.https_proxy || undefined),
    httpProxy: overrides.httpProxy ?? (env.HTTP_PROXY || env.http_proxy || undefined),
    noProxy: overrides.noProxy ?? (env.NO_PROXY || env.no_proxy || undefined),
    metricsToken: overrides.metricsToken ?? (env.METRICS_TOKEN || undefined),
    pgliteSharedBuffersMb: overrides.pgliteSharedBuffersMb ?? (intFrom(env, 'PGLITE_SHARED_BUFFERS_MB', 32) || 128),
    signatureCacheSize: overrides.signatureCacheSize ?? (intFrom(env, 'SIGNATURE_CACHE_SIZE', 2048) || 1),
    identityPoolSize: overrides.identityPoolSize ?? intFrom(env, 'IDENTITY_POOL_SIZE', 64),
    deviceIdentityValidDays: overrides.deviceIdentityValidDays ?? positiveFrom(env, 'DEVICE_IDENTITY_VALID_DAYS', 730),
    identityRenewBeforeDays: overrides.identityRenewBeforeDays ?? positiveFrom(env, 'IDENTITY_RENEW_BEFORE_DAYS', 60),
    identityRenewEveryMs: overrides.identityRenewEveryMs ?? intFrom(env, 'IDENTITY_RENEW_CHECK_SECONDS', 3600) * 1000,
  };
  peerList(config.clientCertTrustedProxies);
  const weak = config.adminToken && weakAdminToken(config.adminToken);
  if (weak) throw new ConfigError(weak);
  if (config.maxDeviceBodyBytesInFlight < config.maxDeviceBodyBytes) {
    throw new ConfigError(`DEVICE_BODY_BYTES_IN_FLIGHT (${config.maxDeviceBodyBytesInFlight}) must be at least MAX_DEVICE_BODY_BYTES (${config.maxDeviceBodyBytes})`);
  }
  if (config.requestTimeoutMs > 0 && config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`HEADERS_TIMEOUT_MS (${config.headersTimeoutMs}) must not exceed REQUEST_TIMEOUT_MS (${config.requestTimeoutMs})`);
  }
  if (config.identityRenewBeforeDays >= config.deviceIdentityValidDays) {
    throw new ConfigError(`IDENTITY_RENEW_BEFORE_DAYS (${config.identityRenewBeforeDays}) must be less than DEVICE_IDENTITY_VALID_DAYS ` +
      `(${config.deviceIdentityValidDays}): a renewed identity would be due for renewal at once`);
  }
  try {
    checkProxySettings(config);
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new ConfigError(err.message);
    throw err;
  }
  if (config.publicUrl) checkPublicUrl(config.publicUrl);
  return config;
}

/**
 * PUBLIC_URL is where devices reach the server: the enrollment profile's ServerURL and CheckInURL, and the
 * Apps and Books notification URL. Apple requires https for all of them (mdm/apple-schema profiles/com.apple.mdm.yaml:
 * ServerURL and CheckInURL `format: ^https://.*$`; Apps and Books error 9712 for an http notification URL).
 * Plain http is kept for loopback only, where nothing but simulated devices and local tests can connect.
 */
export function checkPublicUrl(publicUrl: string): void {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    throw new ConfigError(`PUBLIC_URL is not a URL: "${publicUrl}"; set it to the https:// address devices reach this server at`);
  }
  if (url.protocol === 'https:') return;
  if (url.protocol !== 'http:') throw new ConfigError(`PUBLIC_URL must start with https://, got "${publicUrl}"`);
  if (!isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      `PUBLIC_URL "${publicUrl}" is plain http on a host devices reach over the network: Apple requires https for the MDM ServerURL ` +
      `and CheckInURL, so real devices would refuse the enrollment profile. Put a TLS terminating proxy (with a certificate devices trust) ` +
      `in front of this server and set PUBLIC_URL=https://${url.host}${url.pathname === '/' ? '' : url.pathname}; plain http is allowed ` +
      `only for loopback addresses (127.0.0.1, ::1, localhost), for local tests and simulated devices`,
    );
  }
}
