import { startServer } from './app.js';
import { ConfigError } from './config.js';
import { DatabaseError } from './storage/database.js';

// `npm start` (add `-- --sandbox` for simulated APNs and Apps and Books).
const args = process.argv.slice(2);
if (args.includes('--help')) {
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

try {
  const server = await startServer({
    ...(args.includes('--sandbox') ? { sandbox: true } : {}),
    onGeneratedAdminToken: (token) => console.log(`\nGenerated an admin API token (stored in DATA_DIR/admin-token):\n\n  ${token}\n`),
  });
  console.log(`MDM server listening on ${server.url} (database: ${server.database.kind}${server.sandbox ? ', sandbox' : ''}, ready in ${server.startupMs} ms)`);
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
  if (err instanceof ConfigError || err instanceof DatabaseError) {
    console.error(`cannot start: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
