import path from 'node:path';
import { z } from 'zod';
import { generateSandboxPushCertificate } from '../mdm/identity.js';
import type { ApplePlatform } from '../server/apple-platform.js';
import { startSimulatedApns } from '../simulator/apns.js';
import { startSimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { demoSandboxAssets } from '../simulator/sandbox-catalogue.js';
import { StateFileWriter, readStateFile } from '../simulator/state-file.js';

export type SimulatedApns = Awaited<ReturnType<typeof startSimulatedApns>>;
export type SimulatedAppsAndBooks = Awaited<ReturnType<typeof startSimulatedAppsAndBooks>>;

export interface Sandbox {
  apns: SimulatedApns;
  apnsControlUrl: string;
  appsAndBooks: SimulatedAppsAndBooks;
  /** The demo sToken (simulator/sandbox-catalogue.ts): issued on the first start, the same after a restart. */
  demoSToken: string;
  /** Where the simulated services keep their state (DATA_DIR/sandbox), unless started without one. */
  stateDir?: string;
}

const SandboxFile = z.object({ demoSToken: z.string().min(1) });

/**
 * Simulated APNs and Apps and Books, in this process, as the server's Apple platform: a generated push
 * certificate (trusted by the simulated APNs) when none is stored, and nothing reaching Apple. With a
 * `stateDir` (the sandbox server passes DATA_DIR/sandbox) both keep their state there, so a restarted sandbox
 * is the same Apple: the same demo sToken, the same licenses, every device token still known to APNs.
 */
export async function startSandboxPlatform(opts: { stateDir?: string; onStateFileError?: (err: Error) => void; eventPollMs?: number } = {}): Promise<{ platform: ApplePlatform; sandbox: Sandbox }> {
  const { stateDir, onStateFileError } = opts;
  const file = (name: string) => (stateDir ? path.join(stateDir, name) : undefined);
  const apns = await startSimulatedApns({ host: '127.0.0.1', stateFile: file('apns.json'), onStateFileError });
  // The simulated service refuses /status polls faster than the server's own VPP_EVENT_POLL_MS: a shorter
  // setting (tests, demos) shortens both, and the rule is still enforced.
  const appsAndBooks = await startSimulatedAppsAndBooks({
    host: '127.0.0.1', eventDelayMs: 50, minStatusPollIntervalMs: opts.eventPollMs, stateFile: file('apps-and-books.json'), onStateFileError,
  }).catch(async (err) => { await apns.close(); throw err; });
  let demoSToken: string;
  try {
    demoSToken = await demoToken(appsAndBooks, file('sandbox.json'));
  } catch (err) {
    await Promise.all([appsAndBooks.close(), apns.close()]);
    throw err;
  }
  const sandbox: Sandbox = { apns, apnsControlUrl: apns.controlUrl, appsAndBooks, demoSToken, stateDir };
  let closed: Promise<void> | undefined;
  const platform: ApplePlatform = {
    name: 'sandbox',
    apns: { url: apns.url, caPem: apns.caPem },
    vppUrl: appsAndBooks.url,
    pushCertificateInUse: (certPem) => apns.trustPushCertificate(certPem),
    initialPushCertificate: async () => {
      const generated = await generateSandboxPushCertificate();
      return { certificate: generated.certPem, privateKey: generated.keyPem };
    },
    describe: () => ({ apnsControlUrl: apns.controlUrl, apnsUrl: apns.url, appsAndBooksUrl: appsAndBooks.url, demoSToken }),
    close: () => (closed ??= Promise.all([appsAndBooks.close(), apns.close()]).then(() => {})),
  };
  return { platform, sandbox };
}

/** The demo token of the previous start when the simulated service still knows it, else a new one (remembered). */
async function demoToken(appsAndBooks: SimulatedAppsAndBooks, file: string | undefined): Promise<string> {
  const saved = file ? readStateFile(file, SandboxFile) : undefined;
  if (saved && appsAndBooks.hasToken(saved.demoSToken)) return saved.demoSToken;
  const demoSToken = appsAndBooks.issueToken({ orgName: 'Sandbox School', locationName: 'Sandbox Campus', assets: demoSandboxAssets() });
  if (file) await new StateFileWriter(file, () => ({ demoSToken }), (e) => { throw e; }).close();
  return demoSToken;
}
