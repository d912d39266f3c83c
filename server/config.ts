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
  secretsKey?: string;
  logLevel: LogLevel;
  /** How long an enrollment token stays valid. */
  enrollmentTtlMs: number;
  /** Largest device request body accepted (check-in and connect). */
  maxDeviceBodyBytes: number;
  /** Interval at which the durable push queue is drained for retries. */
  pushRetryPollMs: number;
  /** How often pending Apple events (/status?eventId) are polled. */
  vppEventPollMs: number;
  /** How often the ledger is reconciled with Apple's /assignments. */
  vppReconcileMs: number;
  /** Name shown to Apple as this installation's mdmInfo.name. */
  installationName: string;
  /** After a connection in which NotNow was followed by another status, push the device again this much later. */
  notNowRepushMs: number;
  /** Outbound proxy for APNs and Apps and Books (HTTPS_PROXY, HTTP_PROXY, NO_PROXY; server/outbound-proxy.ts). */
  httpsProxy?: string;
  httpProxy?: string;
  noProxy?: string;
  /** How long a device identity issued here is valid, in days (fractions allowed). */
  deviceIdentityValidDays: number;
  /** Renew a device identity this many days before it expires (fractions allowed); less than the validity. */
  identityRenewBeforeDays: number;
  /** How often the identity renewal job looks for devices due. */
  identityRenewEveryMs: number;
}

export class ConfigError extends Error {}

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
    secretsKey: overrides.secretsKey ?? (env.SECRETS_KEY || undefined),
    logLevel,
    enrollmentTtlMs: overrides.enrollmentTtlMs ?? intFrom(env, 'ENROLLMENT_TTL_SECONDS', 7 * 24 * 3600) * 1000,
    maxDeviceBodyBytes: overrides.maxDeviceBodyBytes ?? intFrom(env, 'MAX_DEVICE_BODY_BYTES', 2 * 1024 * 1024),
    pushRetryPollMs: overrides.pushRetryPollMs ?? intFrom(env, 'PUSH_RETRY_POLL_MS', 2000),
    vppEventPollMs: overrides.vppEventPollMs ?? intFrom(env, 'VPP_EVENT_POLL_MS', 5000),
    vppReconcileMs: overrides.vppReconcileMs ?? intFrom(env, 'VPP_RECONCILE_MS', 15 * 60_000),
    installationName: overrides.installationName ?? env.INSTALLATION_NAME ?? 'vpp-mdm',
    notNowRepushMs: overrides.notNowRepushMs ?? intFrom(env, 'NOT_NOW_REPUSH_SECONDS', 300) * 1000,
    // Both spellings, as curl and undici read them.
    httpsProxy: overrides.httpsProxy ?? (env.HTTPS_PROXY || env.https_proxy || undefined),
    httpProxy: overrides.httpProxy ?? (env.HTTP_PROXY || env.http_proxy || undefined),
    noProxy: overrides.noProxy ?? (env.NO_PROXY || env.no_proxy || undefined),
    deviceIdentityValidDays: overrides.deviceIdentityValidDays ?? positiveFrom(env, 'DEVICE_IDENTITY_VALID_DAYS', 730),
    identityRenewBeforeDays: overrides.identityRenewBeforeDays ?? positiveFrom(env, 'IDENTITY_RENEW_BEFORE_DAYS', 60),
    identityRenewEveryMs: overrides.identityRenewEveryMs ?? intFrom(env, 'IDENTITY_RENEW_CHECK_SECONDS', 3600) * 1000,
  };
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
