import { startServer, type RunningServer, type StartOptions } from './server/app.js';
import { ConfigError, loadConfig } from './server/config.js';
import { PortInUseError, assertPortFree } from './server/http/port.js';
import { DatabaseError } from './server/storage/database.js';

// `npm start` (add `-- --sandbox`, or MDM_SANDBOX=1, for simulated APNs and Apps and Books). The sandbox is
// imported only when asked: a production start never loads simulator code (test/architecture.test.ts).
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`usage: npm start [-- --sandbox]

Environment: PORT, HOST, PUBLIC_URL, DATABASE_URL (unset: embedded PGlite in DATA_DIR), DATA_DIR, ADMIN_TOKEN,
APNS_URL, APNS_CA_FILE, VPP_URL, CLIENT_CERT_HEADER, CLIENT_CERT_TRUSTED_PROXIES, SECRETS_KEY, LOG_LEVEL, MDM_SANDBOX=1,
HTTPS_PROXY, NO_PROXY, DEVICE_IDENTITY_VALID_DAYS, IDENTITY_RENEW_BEFORE_DAYS, NOT_NOW_REPUSH_SECONDS. See README.md.`);
  process.exit(0);
}
const unknown = args.filter((a) => a !== '--sandbox');
if (unknown.length) {
  console.error(`unknown argument(s): ${unknown.join(' ')} (try --help)`);
  process.exit(2);
}
const sandbox = args.includes('--sandbox') || process.env.MDM_SANDBOX === '1' || process.env.MDM_SANDBOX === 'true';

/**
 * A generated token is shown once on a terminal. stdout that is not a terminal is a log stream (a service
 * manager, a container's log, a CI job): it gets only the file's path.
 */
function announceAdminToken(token: string, file: string): void {
  if (process.stdout.isTTY) console.log(`\nGenerated an admin API token (kept in ${file}):\n\n  ${token}\n`);
  else console.log(`Generated an admin API token into ${file} (not printed: stdout is not a terminal)`);
}

try {
  // Before the database or the sandbox's state is opened: they belong to whichever server holds the port.
  const { host, port } = loadConfig(process.env);
  await assertPortFree(host, port);
  const options: StartOptions = { onGeneratedAdminToken: announceAdminToken };
  const server: RunningServer = sandbox
    ? await (await import('./sandbox/start.js')).startSandboxServer(options)
    : await startServer(options);
  console.log(`MDM server listening on ${server.url} (database: ${server.database.kind}${sandbox ? ', sandbox' : ''}, ready in ${server.startupMs} ms)`);
  let closing = false;
  // Requests in flight and running jobs get config.shutdownGraceMs each (http-server.ts, app.ts); a close
  // that hangs beyond that, or a second signal, ends the process anyway.
  const shutdown = async (signal: string) => {
    if (closing) {
      server.log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    closing = true;
    server.log.info({ signal }, 'shutting down');
    const limit = setTimeout(() => {
      server.log.error({ graceMs: server.config.shutdownGraceMs }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, 3 * server.config.shutdownGraceMs + 5000);
    limit.unref();
    await server.close();
    server.log.info({ signal }, 'shut down');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
} catch (err) {
  if (err instanceof ConfigError || err instanceof DatabaseError || err instanceof PortInUseError) {
    console.error(`cannot start: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
