// npm run simulate -- --server URL --devices N --users M --os 9.3..17.5 [--token T] [--command DeviceInformation]
//
// Enrolls a fleet of simulated devices against a server started with `npm start -- --sandbox`, queues one
// command for every device, waits for the answers, and prints a summary. Progress and errors (as they happen)
// go to stderr; the users and devices created and the summary table to stdout. Ctrl-C stops it with the
// summary. `--scenario vpp` plays the licensing story instead (./scenarios/vpp.ts).
import { parseArgs } from 'node:util';
import { createApnsControlClient } from './apns-client.js';
import { CliError, Interrupted, adminToken, createdIds, discoverSandbox, errorReporter, interruptible, intOption, numberOption, seconds, serverOption, table } from './cli-support.js';
import { Fleet, FleetError, pushNetworkFromControlClient, type FleetStats } from './fleet.js';
import { SimulatorHttpClient } from './http.js';
import { parseOsRange } from './models.js';
import { runVppScenario } from './scenarios/vpp.js';

const HELP = `Usage: npm run simulate -- [options]

Enrolls simulated iOS devices against an MDM server running in sandbox mode (npm start -- --sandbox),
queues a command for every device, and waits until every device has been pushed and has answered.

Options:
  --server URL        server base URL (default http://127.0.0.1:8080, or PUBLIC_URL)
  --token T           admin token (default: ADMIN_TOKEN, else DATA_DIR/admin-token)
  --devices N         number of devices (default 50)
  --users M           users to spread the devices over (default devices/10, at least 1)
  --os RANGE          iOS versions, e.g. 9.3..17.5 or 16.1 (default 9.3..17.5)
  --command C         command queued for every device: DeviceInformation (default),
                      InstalledApplicationList, ManagedApplicationList, ProfileList,
                      a JSON command dict, or none
  --busy F            fraction (0..1) of devices that answer NotNow until the others are done
  --timeout S         seconds to wait for all answers (default 300)
  --duration S        seconds to keep answering pushes after the command phase (default 0)
  --concurrency C     parallel enrollments and parallel syncs (default 32)
  --install-delay MS  time an accepted InstallApplication takes to install (default 50)
  --scenario vpp      play the licensing story instead (--scenario vpp --help for its options)
  -h, --help          this text

Prints the users and devices (UDIDs) it created, errors as they happen (refused check-ins and
connections, pushes APNs refused, admin API errors), and a summary at the end or on Ctrl-C.
`;

const DEFAULT_QUERIES = ['UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ProductName', 'SerialNumber', 'Model', 'ModelName', 'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'IMEI', 'WiFiMAC'];

interface CliOptions {
  server: string;
  token: string;
  devices: number;
  users: number;
  os: string;
  command?: Record<string, unknown>;
  busy: number;
  timeoutS: number;
  durationS: number;
  concurrency: number;
  installDelayMs: number;
}

function parseCli(argv: string[]): CliOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      devices: { type: 'string' },
      users: { type: 'string' },
      os: { type: 'string' },
      command: { type: 'string' },
      busy: { type: 'string' },
      timeout: { type: 'string' },
      duration: { type: 'string' },
      concurrency: { type: 'string' },
      'install-delay': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const devices = intOption('--devices', values.devices, 50, 0);
  const users = intOption('--users', values.users, Math.max(1, Math.ceil(devices / 10)), 0);
  const os = values.os ?? '9.3..17.5';
  parseOsRange(os);
  const busy = numberOption('--busy', values.busy, 0);
  if (busy < 0 || busy > 1) throw new CliError(`--busy must be between 0 and 1, got ${busy}`);
  return {
    server: serverOption(values.server),
    token: adminToken(values.token),
    devices,
    users,
    os,
    command: commandOption(values.command),
    busy,
    timeoutS: numberOption('--timeout', values.timeout, 300),
    durationS: numberOption('--duration', values.duration, 0),
    concurrency: intOption('--concurrency', values.concurrency, 32, 1),
    installDelayMs: intOption('--install-delay', values['install-delay'], 50, 0),
  };
}

function commandOption(raw: string | undefined): Record<string, unknown> | undefined {
  const name = raw ?? 'DeviceInformation';
  if (name === 'none') return undefined;
  if (name.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(name);
    } catch (err) {
      throw new CliError(`--command is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { RequestType?: unknown }).RequestType !== 'string') {
      throw new CliError('--command JSON must be a command dict with a RequestType');
    }
    return parsed as Record<string, unknown>;
  }
  switch (name) {
    case 'DeviceInformation':
      return { RequestType: 'DeviceInformation', Queries: DEFAULT_QUERIES };
    case 'InstalledApplicationList':
    case 'ManagedApplicationList':
    case 'ProfileList':
      return { RequestType: name };
    default:
      throw new CliError(`--command ${name}: use DeviceInformation, InstalledApplicationList, ManagedApplicationList, ProfileList, a JSON dict, or none`);
  }
}

function progressLine(phase: string, s: FleetStats, total: number, started: number): string {
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const statuses = Object.entries(s.commandsByStatus).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return `[${secs}s] ${phase}: enrolled ${s.enrolled}/${total}, synced ${s.devicesSynced}, syncs ${s.syncs}, running ${s.running}, queued ${s.queued}, pending ${s.awaiting}, answers: ${statuses}, errors ${s.errors}`;
}


/** The value of --scenario (as `--scenario x` or `--scenario=x`), if given. */
function scenarioOf(argv: string[]): string | undefined {
  const i = argv.findIndex((a) => a === '--scenario' || a.startsWith('--scenario='));
  if (i < 0) return undefined;
  return argv[i]!.includes('=') ? argv[i]!.slice('--scenario='.length) : (argv[i + 1] ?? '');
}

async function main(argv: string[]): Promise<number> {
  const scenario = scenarioOf(argv);
  if (scenario !== undefined) {
    if (scenario !== 'vpp') throw new CliError(`--scenario ${scenario || '(missing)'}: the one scenario is vpp`);
    return runVppScenario(argv);
  }
  const parsed = parseCli(argv);
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const o = parsed;
  const http = new SimulatorHttpClient({ maxSockets: o.concurrency + 8 });
  const { apnsControlUrl: controlUrl } = await discoverSandbox(http, o.server, o.token);
  const run = interruptible();
  const fleet = new Fleet({
    onError: errorReporter(),
    onNotice: (message) => process.stderr.write(`${message}\n`),
    serverUrl: o.server,
    adminToken: o.token,
    push: pushNetworkFromControlClient(createApnsControlClient(controlUrl)),
    devices: o.devices,
    users: o.users,
    os: o.os,
    enrollConcurrency: o.concurrency,
    syncConcurrency: o.concurrency,
    installDelayMs: o.installDelayMs,
    http,
  });
  const started = Date.now();
  let phase = 'users';
  const ticker = setInterval(() => process.stderr.write(progressLine(phase, fleet.stats(), o.devices, started) + '\n'), 1000);
  let enrollMs: number | undefined;
  let syncAllMs: number | undefined;
  let allAnswered = o.command === undefined;
  try {
    await run.step(fleet.start());
    await run.step(fleet.createUsers());
    phase = 'enrolling';
    const t0 = Date.now();
    await run.step(fleet.enrollAll());
    enrollMs = Date.now() - t0;
    process.stderr.write(`enrolled ${fleet.stats().enrolled}/${o.devices} in ${seconds(enrollMs)}\n`);
    process.stdout.write(createdIds(fleet));

    const busy = fleet.devices.filter((d) => d.enrolled).slice(0, Math.round(o.devices * o.busy));
    for (const d of busy) d.setBusy(true);
    if (o.command) {
      phase = `${String(o.command.RequestType)} for every device`;
      const t1 = Date.now();
      const deadline = t1 + o.timeoutS * 1000;
      await run.step(fleet.queueCommand(o.command));
      if (busy.length > 0) {
        // Let the busy devices answer NotNow while the rest finish, then free them: each re-polls by itself.
        const freeDevices = new Set(fleet.devices.filter((d) => !d.busy));
        while (Date.now() < deadline && fleet.devicesAwaitingAnswers().some((d) => freeDevices.has(d) || d.lastStatus !== 'NotNow')) {
          await run.step(new Promise((r) => setTimeout(r, 100)));
        }
        for (const d of busy) d.setBusy(false);
      }
      allAnswered = await run.step(fleet.waitForAnswers(Math.max(0, deadline - Date.now())));
      syncAllMs = Date.now() - t1;
      await run.step(fleet.idle());
    }
    if (o.durationS > 0) {
      phase = 'answering pushes';
      await run.step(new Promise((r) => setTimeout(r, o.durationS * 1000)));
      await run.step(fleet.idle());
    }
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
  } finally {
    clearInterval(ticker);
    // Interrupted: syncs in flight get a moment to finish, not the HTTP timeout.
    await (run.interrupted() ? Promise.race([fleet.close(), new Promise((r) => setTimeout(r, 2000))]) : fleet.close());
    http.close();
  }

  const s = fleet.stats();
  const rows: Array<[string, string]> = [
    ['server', o.server],
    ...(run.interrupted() ? [['run', 'interrupted (Ctrl-C)'] as [string, string]] : []),
    ['devices enrolled', `${s.enrolled}/${s.devices} (${s.enrollFailures} failed)`],
    ['users', String(s.users)],
    ['OS range', o.os],
    ['devices synced', `${s.devicesSynced}/${s.devices}`],
    ['connections (syncs)', String(s.syncs)],
    ['pushes received', `${s.pushesReceived} (${s.pushesCoalesced} coalesced, ${s.pushesDropped} dropped)`],
  ];
  for (const [rt, byStatus] of Object.entries(s.commandsByRequestType)) {
    rows.push([`commands ${rt}`, Object.entries(byStatus).map(([k, v]) => `${k} ${v}`).join(', ')]);
  }
  if (Object.keys(s.commandsByRequestType).length === 0) rows.push(['commands', 'none']);
  rows.push(
    ['unanswered', String(s.awaiting)],
    ['apps installed', String(s.appsInstalled)],
    ['invitations accepted', String(s.invitationsAccepted)],
    ['errors', String(s.errors)],
    ['time to enroll', seconds(enrollMs)],
    ['time to sync all', o.command ? `${seconds(syncAllMs)}${allAnswered ? '' : ' (timed out)'}` : '-'],
    ['peak RSS (simulator)', `${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MB`],
  );
  process.stdout.write(table(rows) + '\n');
  for (const e of s.errorSamples) process.stdout.write(`error: ${e}\n`);
  if (run.interrupted()) return 130;
  return allAnswered && s.enrollFailures === 0 && s.errors === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const known = err instanceof CliError || err instanceof FleetError || (err instanceof Error && err.name === 'DeviceModelError');
    const parseError = err instanceof TypeError && 'code' in err && String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`simulate: ${(err as Error).message}\n`);
    if (parseError) process.stderr.write('run with --help for the options\n');
    else if (!known) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    process.exit(2);
  },
);
