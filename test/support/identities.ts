// Shared by the identity tests: a server CA, another CA, device identities (valid, foreign, expired), the
// verifier for the first CA, and openssl in a scratch folder as an independent judge. Call
// useIdentityFixtures() at the top of a test file; the exported bindings are filled before its tests run.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  createServerCA,
  createSignatureVerifier,
  IdentityError,
  issueDeviceIdentity,
  SignatureError,
  type CertifiedKey,
  type MdmSignatureVerifier,
} from '../../mdm/identity.js';

export const run = promisify(execFile);
export const webcrypto = crypto.webcrypto as unknown as Crypto;

export type DeviceIdentity = Awaited<ReturnType<typeof issueDeviceIdentity>>;

export let tmp: string;
export let ca: CertifiedKey;
export let otherCa: CertifiedKey;
export let device: DeviceIdentity;
export let foreignDevice: DeviceIdentity;
export let expiredDevice: DeviceIdentity;
export let verifier: MdmSignatureVerifier;

export const body = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string>' +
    '<key>UDID</key><string>00008030-001A2B3C4D5E6F70</string><key>Topic</key><string>com.apple.mgmt.External.x</string></dict></plist>\n',
);

export function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to throw');
}

export function expectSignatureError(f: () => unknown, message: RegExp): void {
  const err = thrown(f);
  expect(err).toBeInstanceOf(SignatureError);
  expect(err.message).toMatch(message);
}

export function expectIdentityError(f: () => unknown, message: RegExp): void {
  const err = thrown(f);
  expect(err).toBeInstanceOf(IdentityError);
  expect(err.message).toMatch(message);
}

export function derOf(pem: string): Buffer {
  return Buffer.from(new crypto.X509Certificate(pem).raw);
}

export async function openssl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('openssl', args, { cwd: tmp, encoding: 'utf8' });
}

export async function opensslFails(args: string[]): Promise<string> {
  try {
    await openssl(args);
  } catch (e) {
    return (e as { stderr: string }).stderr;
  }
  throw new Error(`openssl ${args.join(' ')} unexpectedly succeeded`);
}

export function useIdentityFixtures(): void {
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'identity-test-'));
    [ca, otherCa] = await Promise.all([createServerCA('Test MDM CA'), createServerCA('Somebody Else CA')]);
    [device, foreignDevice, expiredDevice] = await Promise.all([
      issueDeviceIdentity(ca, { commonName: 'enrollment-1' }),
      issueDeviceIdentity(otherCa, { commonName: 'foreign' }),
      issueDeviceIdentity(ca, { commonName: 'expired', validDays: -1 }),
    ]);
    verifier = createSignatureVerifier(ca.certPem);
    await fs.writeFile(path.join(tmp, 'ca.pem'), ca.certPem);
    await fs.writeFile(path.join(tmp, 'ca.key'), ca.keyPem);
    await fs.writeFile(path.join(tmp, 'device.pem'), device.certPem);
    await fs.writeFile(path.join(tmp, 'device.key'), device.keyPem);
    await fs.writeFile(path.join(tmp, 'body.plist'), body);
  });

  afterAll(async () => {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });
}
