import { createServerCA, type CertifiedKey } from '../../mdm/identity.js';
import type { SecretBox } from '../secrets.js';
import type { SettingsStore } from '../storage/ports.js';

// The server's own CA, which issues the device identities: kept in the database (private key sealed) so every
// server process on one PostgreSQL shares it.

export interface SealedKeyPair { certPem: string; sealedKey: string }

export async function loadOrCreateServerCA(settings: SettingsStore, secrets: SecretBox): Promise<CertifiedKey> {
  const existing = await settings.get<SealedKeyPair>('server_ca');
  if (existing) return { certPem: existing.certPem, keyPem: secrets.open(existing.sealedKey) };
  const ca = await createServerCA('vpp-mdm device CA');
  // Two processes starting at once: the first stored CA wins and both use it.
  const stored = await settings.putIfAbsent<SealedKeyPair>('server_ca', { certPem: ca.certPem, sealedKey: secrets.seal(ca.keyPem) });
  return { certPem: stored.certPem, keyPem: secrets.open(stored.sealedKey) };
}
