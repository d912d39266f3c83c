// Micro-benchmarks, a child process on the server CPU: mdm/plist.ts parsePlistDict on the real device
// bodies in test/fixtures/device-captures against plain `plist.parse`, and mdm/signature.ts's verifier on
// Mdm-Signatures over the same bodies against one bare RSA PKCS#1 v1.5 verify of node:crypto over the body.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'plist';
import { createServerCA, createSignatureVerifier, issueDeviceIdentity } from '../mdm/identity.js';
import { parsePlistDict } from '../mdm/plist.js';
import { signMdmMessage } from '../simulator/signing.js';
import { serveJobs } from './ipc-worker.js';

const CAPTURES = fileURLToPath(new URL('../test/fixtures/device-captures/', import.meta.url));
const ROUNDS = 5;

export interface MicroResult {
  /** µs per operation, median of interleaved rounds. */
  plist: { value: number; baseline: number; bodyBytes: number[] };
  signature: { value: number; uncached: number; baseline: number };
}

/** µs per call of `fn` over `inputs` in turn, running for about `ms`. */
function timePerOp<T>(inputs: T[], fn: (input: T) => unknown, ms: number): number {
  let n = 0;
  const started = performance.now();
  let now = started;
  while (now - started < ms) {
    for (let i = 0; i < 64; i++) fn(inputs[n++ % inputs.length]!);
    now = performance.now();
  }
  return ((now - started) * 1000) / n;
}

/** Rounds of a then b, alternating so drift in the machine's load hits both alike; medians. */
function interleaved(...cases: Array<() => number>): number[] {
  const samples = cases.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) cases.forEach((c, i) => samples[i]!.push(c()));
  return samples.map((s) => s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!);
}

async function run(job: { ms: number }): Promise<MicroResult> {
  const bodies = fs.readdirSync(CAPTURES).filter((f) => f.endsWith('.plist')).sort().map((f) => fs.readFileSync(path.join(CAPTURES, f)));
  const each = job.ms / ROUNDS;
  // Warm the JIT before the measured rounds.
  timePerOp(bodies, (b) => parsePlistDict(b), each);
  timePerOp(bodies, (b) => parse(b.toString('utf8')), each);
  const [plistValue, plistBaseline] = interleaved(
    () => timePerOp(bodies, (b) => parsePlistDict(b), each),
    () => timePerOp(bodies, (b) => parse(b.toString('utf8')), each));

  const ca = await createServerCA('Bench CA');
  const identities = await Promise.all([0, 1].map((i) => issueDeviceIdentity(ca, { commonName: `bench-device-${i}` })));
  const signed = bodies.flatMap((body) => identities.map((id) => ({ body, signature: signMdmMessage(body, id) })));
  const cached = createSignatureVerifier(ca.certPem);
  // With room for one certificate and two identities taking turns, every verification chains anew.
  const missing = createSignatureVerifier(ca.certPem, { cacheSize: 1 });
  const keys = identities.map((id) => crypto.createPrivateKey(id.keyPem));
  const publicKeys = keys.map((k) => crypto.createPublicKey(k));
  const raw = bodies.flatMap((body) => keys.map((k, i) => ({ body, key: publicKeys[i]!, signature: crypto.sign('sha256', body, k) })));
  const verifyRaw = (r: (typeof raw)[number]) => {
    if (!crypto.verify('sha256', r.body, r.key, r.signature)) throw new Error('raw signature does not verify');
  };
  for (const s of signed) cached.verifyMdmSignature(s.signature, s.body);
  timePerOp(raw, verifyRaw, each);
  const [sigValue, sigUncached, sigBaseline] = interleaved(
    () => timePerOp(signed, (s) => cached.verifyMdmSignature(s.signature, s.body), each),
    () => timePerOp(signed, (s) => missing.verifyMdmSignature(s.signature, s.body), each),
    () => timePerOp(raw, verifyRaw, each));
  return {
    plist: { value: plistValue!, baseline: plistBaseline!, bodyBytes: bodies.map((b) => b.length) },
    signature: { value: sigValue!, uncached: sigUncached!, baseline: sigBaseline! },
  };
}

serveJobs(run);
