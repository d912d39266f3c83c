// What the simulated APNs keeps across a restart: the device tokens devices registered (with their topic and
// whether they were unregistered), its TLS identity (so a restart needs no new keys) and its two ports (so
// simulated devices in another process reconnect to the same control URL).
import { z } from 'zod';
import type { TokenState } from './apns-push.js';

const FORMAT = 'vpp-mdm simulated APNs 1';
const Port = z.number().int().min(1).max(65535);

export const SavedApns = z.object({
  format: z.literal(FORMAT),
  tls: z.object({ host: z.string(), caPem: z.string(), certPem: z.string(), keyPem: z.string() }),
  port: Port.optional(),
  controlPort: Port.optional(),
  tokens: z.array(z.object({ token: z.string().regex(/^[0-9a-f]+$/), topic: z.string().min(1), unregisteredAt: z.number().optional() })),
});
export type SavedApns = z.infer<typeof SavedApns>;

export function snapshotApns(a: {
  tls: SavedApns['tls'];
  port?: number;
  controlPort?: number;
  tokens: ReadonlyMap<string, TokenState>;
}): SavedApns {
  return {
    format: FORMAT,
    tls: a.tls,
    port: a.port,
    controlPort: a.controlPort,
    tokens: [...a.tokens].map(([token, t]) => ({ token, topic: t.topic, ...(t.unregisteredAt !== undefined ? { unregisteredAt: t.unregisteredAt } : {}) })),
  };
}
