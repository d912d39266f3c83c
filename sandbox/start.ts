import { startServer, type RunningServer, type StartOptions } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { startSandboxPlatform, type Sandbox } from './platform.js';

// `npm start -- --sandbox`: the real server with simulated APNs and Apps and Books in-process. The entry
// (main.ts) imports this module only when asked, so a production start never loads simulator code.

export type SandboxServer = RunningServer & { sandbox: Sandbox };

export async function startSandboxServer(options: Omit<StartOptions, 'apple'> = {}): Promise<SandboxServer> {
  const { env = process.env, logSink: _logSink, onGeneratedAdminToken: _announce, ...overrides } = options;
  const { platform, sandbox } = await startSandboxPlatform({ eventPollMs: loadConfig(env, overrides).vppEventPollMs });
  let server: RunningServer;
  try {
    // The server closes the platform when it closes.
    server = await startServer({ ...options, apple: platform });
  } catch (err) {
    await platform.close!();
    throw err;
  }
  server.log.warn({ apnsUrl: sandbox.apns.url, apnsControlUrl: sandbox.apnsControlUrl, appsAndBooksUrl: sandbox.appsAndBooks.url },
    'sandbox mode: simulated APNs and Apps and Books in-process; nothing reaches Apple');
  return Object.assign(server, { sandbox });
}
