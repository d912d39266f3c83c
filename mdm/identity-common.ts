// Shared by identity.ts, signature.ts and push-certificate.ts (kept apart so they import no cycle).

import crypto from 'node:crypto';

export interface CertifiedKey {
  certPem: string;
  keyPem: string;
}

/** Bad certificate/key input; the message names what is wrong. */
export class IdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityError';
  }
}

/** Any Mdm-Signature or client-certificate failure; the message says why. */
export class SignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignatureError';
  }
}

// Passed explicitly rather than via x509.cryptoProvider.set() so these modules change no global state.
export const webcrypto = crypto.webcrypto as unknown as Crypto;

export const RSA_ALGORITHM = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

export const DAY_MS = 86_400_000;
// Devices' clocks can run a little behind ours; a certificate "not yet valid" to them is useless.
export const BACKDATE_MS = 5 * 60_000;

export async function generateRsaKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(RSA_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export function privateKeyPem(key: CryptoKey): string {
  return crypto.KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}
