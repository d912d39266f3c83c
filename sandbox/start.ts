import path from 'node:path';
import { startServer, type RunningServer, type StartOptions } from '../server/app.js';
import { ConfigError, loadConfig } from '../server/config.js';
import type { Logger } from '../server/log.js';
import { StateFileError } from '../simulator/state-file.js';
import { startSandboxPlatform, type Sandbox } from './platform.js';

// `npm start -- --sandbox`: the real server with simulated APNs and Apps and Books in-process. The entry
// (main.ts) imports this module only when asked, so a production start never loads simulator code.

export type SandboxServer = RunningServer & { sandbox: Sandbox };

export async function startSandboxServer(options: Omit<StartOptions, 'apple'> = {}): Promise<SandboxServer> {
  const { env = process.env, logSink: _logSink, onGeneratedAdminToken: _announce, ...overrides } = options;
  // The simulated services keep their state next to the server's: DATA_DIR/sandbox.
  const config = loadConfig(env, overrides);
  const stateDir = path.join(config.dataDir, 'sandbox');
  let log: Logger | undefined;
  const onStateFileError = (e: Error) => {
    if (log) log.error({ stateDir, error: e.message }, 'sandbox: cannot save the simulated services\' state');
    else process.emitWarning(`sandbox: cannot save the simulated services' state: ${e.message}`);
  };
  const { platform, sandbox } = await startSandboxPlatform({ stateDir, onStateFileError, eventPollMs: config.vppEventPollMs }).catch((err: unknown) => {
    // A state file that cannot be read is the operator's to fix (the message names it), not a crash.
    throw err instanceof StateFileError ? new ConfigError(err.message) : err;
  });
  let server: RunningServer;
  try {
    // The server closes the platform when it closes.
    server = await startServer({ ...options, apple: platform });
  } catch (err) {
    await platform.close!();
    throw err;
  }
  log = server.log;
  server.log.warn({ apnsUrl: sandbox.apns.url, apnsControlUrl: sandbox.apnsControlUrl, appsAndBooksUrl: sandbox.appsAndBooks.url, stateDir },
    'sandbox mode: simulated APNs and Apps and Books in-process; nothing reaches Apple');
  return Object.assign(server, { sandbox });
}
