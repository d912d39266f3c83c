import path from 'node:path';
import { LOG_LEVELS, type LogLevel } from './log.js';

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
  /** First question (ManagedApplicationList, with a push) about an install a device accepted; then doubling. */
  vppInstallCheckMs: number;
  /** An install a device has not finished after this long is given up, and sent again by the next sync. */
  vppInstallTimeoutMs: number;
  /** Name shown to Apple as this installation's mdmInfo.name. */
  installationName: string;
}

export class ConfigError extends Error {}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
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
    vppInstallCheckMs: overrides.vppInstallCheckMs ?? intFrom(env, 'VPP_INSTALL_CHECK_SECONDS', 30) * 1000,
    vppInstallTimeoutMs: overrides.vppInstallTimeoutMs ?? intFrom(env, 'VPP_INSTALL_TIMEOUT_SECONDS', 3600) * 1000,
    installationName: overrides.installationName ?? env.INSTALLATION_NAME ?? 'vpp-mdm',
  };
  if (config.publicUrl && !/^https?:\/\//.test(config.publicUrl)) {
    throw new ConfigError(`PUBLIC_URL must start with https:// (or http:// for local testing), got "${config.publicUrl}"`);
  }
  return config;
}
