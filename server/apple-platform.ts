import fs from 'node:fs/promises';
import { checkEventPolling, type Config } from './config.js';
import type { PushCertificateInput } from './push/push-certificate.js';

/**
 * Where Apple's services are for this server: Apple's own (from the configuration), or stand-ins that a caller
 * passes in — the sandbox (sandbox/) passes simulated APNs and Apps and Books this way, so the server never
 * loads simulator code itself.
 */
export interface ApplePlatform {
  /** Names it in logs: "Apple" or "sandbox". */
  name: string;
  /** APNs endpoint, and the CA to trust for it (unset: the system's). */
  apns: { url: string; caPem?: string };
  /** Apps and Books API base URL. */
  vppUrl: string;
  /** Told of every push certificate the server starts using. */
  pushCertificateInUse?(certPem: string): void;
  /** A push certificate to store when none is configured. */
  initialPushCertificate?(): Promise<PushCertificateInput>;
  /** Served at GET /sandbox for clients of the stand-ins (the simulator CLI finds the simulated APNs there). */
  describe?(): Record<string, unknown>;
  close?(): Promise<void>;
}

export async function appleFromConfig(config: Config): Promise<ApplePlatform> {
  checkEventPolling(config, config.vppUrl);
  return {
    name: 'Apple',
    apns: { url: config.apnsUrl, caPem: config.apnsCaFile ? await fs.readFile(config.apnsCaFile, 'utf8') : undefined },
    vppUrl: config.vppUrl,
  };
}
