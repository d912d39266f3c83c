import { createServerCA, parsePushCertificate, type CertifiedKey } from '../mdm/identity.js';
import type { SecretBox } from './secrets.js';
import type { Storage } from './storage/ports.js';

// The server's own CA and the APNs push certificate, kept in the database (private keys sealed) so every
// server process on one PostgreSQL shares them.

interface SealedKeyPair { certPem: string; sealedKey: string }
export interface PushCertificateInfo { topic: string; notAfter: string; notBefore: string }

export async function loadOrCreateServerCA(storage: Storage, secrets: SecretBox): Promise<CertifiedKey> {
  const existing = await storage.settings.get<SealedKeyPair>('server_ca');
  if (existing) return { certPem: existing.certPem, keyPem: secrets.open(existing.sealedKey) };
  const ca = await createServerCA('vpp-mdm device CA');
  // Two processes starting at once: the first stored CA wins and both use it.
  const stored = await storage.settings.putIfAbsent<SealedKeyPair>('server_ca', { certPem: ca.certPem, sealedKey: secrets.seal(ca.keyPem) });
  return { certPem: stored.certPem, keyPem: secrets.open(stored.sealedKey) };
}

export async function storePushCertificate(storage: Storage, secrets: SecretBox, input: Parameters<typeof parsePushCertificate>[0]):
  Promise<PushCertificateInfo & CertifiedKey> {
  const parsed = parsePushCertificate(input);
  const info: PushCertificateInfo = { topic: parsed.topic, notAfter: parsed.notAfter.toISOString(), notBefore: parsed.notBefore.toISOString() };
  await storage.settings.put('push_certificate', { ...info, certPem: parsed.certPem, sealedKey: secrets.seal(parsed.keyPem) });
  return { ...info, certPem: parsed.certPem, keyPem: parsed.keyPem };
}

export async function loadPushCertificate(storage: Storage, secrets: SecretBox): Promise<(PushCertificateInfo & CertifiedKey) | undefined> {
  const s = await storage.settings.get<PushCertificateInfo & SealedKeyPair>('push_certificate');
  if (!s) return undefined;
  return { topic: s.topic, notAfter: s.notAfter, notBefore: s.notBefore, certPem: s.certPem, keyPem: secrets.open(s.sealedKey) };
}
