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
APNS_URL, APNS_CA_FILE, VPP_URL, CLIENT_CERT_HEADER, SECRETS_KEY, LOG_LEVEL, MDM_SANDBOX=1. See README.md.`);
  process.exit(0);
}
const unknown = args.filter((a) => a !== '--sandbox');
if (unknown.length) {
  console.error(`unknown argument(s): ${unknown.join(' ')} (try --help)`);
  process.exit(2);
}
const sandbox = args.includes('--sandbox') || process.env.MDM_SANDBOX === '1' || process.env.MDM_SANDBOX === 'true';

try {
  // Before the database or the sandbox's state is opened: they belong to whichever server holds the port.
  const { host, port } = loadConfig(process.env);
  await assertPortFree(host, port);
  const options: StartOptions = {
    onGeneratedAdminToken: (token) => console.log(`\nGenerated an admin API token (stored in DATA_DIR/admin-token):\n\n  ${token}\n`),
  };
  const server: RunningServer = sandbox
    ? await (await import('./sandbox/start.js')).startSandboxServer(options)
    : await startServer(options);
  console.log(`MDM server listening on ${server.url} (database: ${server.database.kind}${sandbox ? ', sandbox' : ''}, ready in ${server.startupMs} ms)`);
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    server.log.info({ signal }, 'shutting down');
    await server.close();
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
