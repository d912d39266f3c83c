import { generateSandboxPushCertificate } from '../mdm/identity.js';
import type { ApplePlatform } from '../server/apple-platform.js';
import { startSimulatedApns } from '../simulator/apns.js';
import { startSimulatedAppsAndBooks } from '../simulator/apps-and-books.js';
import { demoSandboxAssets } from '../simulator/sandbox-catalogue.js';

export type SimulatedApns = Awaited<ReturnType<typeof startSimulatedApns>>;
export type SimulatedAppsAndBooks = Awaited<ReturnType<typeof startSimulatedAppsAndBooks>>;

export interface Sandbox {
  apns: SimulatedApns;
  apnsControlUrl: string;
  appsAndBooks: SimulatedAppsAndBooks;
  /** A new demo sToken each start, for the demo catalogue (simulator/sandbox-catalogue.ts). */
  demoSToken: string;
}

/**
 * Simulated APNs and Apps and Books, in this process, as the server's Apple platform: a generated push
 * certificate (trusted by the simulated APNs) when none is stored, and nothing reaching Apple.
 */
export async function startSandboxPlatform(opts: { eventPollMs?: number } = {}): Promise<{ platform: ApplePlatform; sandbox: Sandbox }> {
  const apns = await startSimulatedApns({ host: '127.0.0.1' });
  // The simulated service refuses /status polls faster than the server's own VPP_EVENT_POLL_MS: a shorter
  // setting (tests, demos) shortens both, and the rule is still enforced.
  const appsAndBooks = await startSimulatedAppsAndBooks({ host: '127.0.0.1', eventDelayMs: 50, minStatusPollIntervalMs: opts.eventPollMs })
    .catch(async (err) => { await apns.close(); throw err; });
  const demoSToken = appsAndBooks.issueToken({ orgName: 'Sandbox School', locationName: 'Sandbox Campus', assets: demoSandboxAssets() });
  const sandbox: Sandbox = { apns, apnsControlUrl: apns.controlUrl, appsAndBooks, demoSToken };
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
