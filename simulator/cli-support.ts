// What the simulate CLI's modes share (the fleet run in ./cli.ts, the scenarios in ./scenarios/): options
// and their errors, the admin token, finding the sandbox, and saying what was created and what went wrong.
import fs from 'node:fs';
import path from 'node:path';
import type { SimulatedDevice } from './device.js';
import type { Fleet } from './fleet.js';
import { SimulatorHttpError, type SimulatorHttpClient } from './http.js';

/** A mistake in how the CLI was called or where it points: said in one line, without a stack. */
export class CliError extends Error {
  override name = 'CliError';
}

export function intOption(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new CliError(`${name} must be an integer ≥ ${min}, got "${raw}"`);
  return n;
}

export function numberOption(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new CliError(`${name} must be a non-negative number, got "${raw}"`);
  return n;
}

export function serverOption(given: string | undefined): string {
  const server = (given ?? process.env.PUBLIC_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/]+/.test(server)) throw new CliError(`--server must be an http(s) URL, got "${server}"`);
  return server;
}

export function adminToken(given: string | undefined): string {
  if (given) return given;
  if (process.env.ADMIN_TOKEN) return process.env.ADMIN_TOKEN;
  // A development server without ADMIN_TOKEN generates one into DATA_DIR; read it when we share the checkout.
  const file = path.resolve(process.env.DATA_DIR ?? './data', 'admin-token');
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return token;
  } catch {
    // fall through to the error below
  }
  throw new CliError(`no admin token: pass --token, set ADMIN_TOKEN, or run where the server keeps ${file}`);
}

/** What GET /sandbox says about the simulated Apple services of a `--sandbox` server. */
export interface SandboxInfo {
  apnsControlUrl: string;
  demoSToken?: string;
}

export async function discoverSandbox(http: SimulatorHttpClient, server: string, token: string): Promise<SandboxInfo> {
  const hint = 'start the server with `npm start -- --sandbox` (or MDM_SANDBOX=1) so its simulated APNs can wake these devices';
  let info: { apnsControlUrl?: unknown; demoSToken?: unknown };
  try {
    info = await http.json(`${server}/sandbox`, { token });
  } catch (err) {
    if (err instanceof SimulatorHttpError && err.code === 'HTTP_401') {
      throw new CliError(`the server at ${server} refused the admin token (401): pass the server's token with --token or ADMIN_TOKEN`);
    }
    if (err instanceof SimulatorHttpError && err.code === 'HTTP_404') {
      throw new CliError(`the server at ${server} is not in sandbox mode (GET /sandbox → 404): ${hint}`);
    }
    throw new CliError(`cannot reach the sandbox API at ${server}/sandbox (${(err as Error).message}): ${hint}`);
  }
  if (typeof info?.apnsControlUrl !== 'string') throw new CliError(`GET ${server}/sandbox gave no apnsControlUrl: ${hint}`);
  return { apnsControlUrl: info.apnsControlUrl, ...(typeof info.demoSToken === 'string' ? { demoSToken: info.demoSToken } : {}) };
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  return [line, ...rows.map((r) => `| ${widths.map((w, c) => (r[c] ?? '').padEnd(w)).join(' | ')} |`), line].join('\n');
}

export function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`;
}

const LISTED_DEVICES = 20;

/** The ids a person needs for the admin API (README walk-through): each user with their devices' UDIDs. */
export function createdIds(fleet: Fleet): string {
  const lines = ['created (ids for the admin API):'];
  const enrolled = fleet.devices.filter((d) => d.enrolled);
  const shown = enrolled.slice(0, LISTED_DEVICES);
  const line = (d: SimulatedDevice) => `    UDID ${d.udid}  serial ${d.serialNumber}  ${d.productName}  iOS ${d.osVersion}  "${d.deviceName}"`;
  for (const u of fleet.users) {
    const own = shown.filter((d) => d.userId === u.id);
    lines.push(`  user ${u.id}  ${u.email}  (Apple Account ${u.appleAccount})`, ...own.map(line));
  }
  lines.push(...shown.filter((d) => !d.userId).map(line));
  if (enrolled.length > shown.length) lines.push(`  … and ${enrolled.length - shown.length} more devices: GET /api/v1/devices lists them all`);
  return lines.join('\n') + '\n';
}

/** Says errors as they come: every one at first, then every hundredth, so a broken run is visible at once. */
export function errorReporter(write: (line: string) => void = (l) => process.stderr.write(l)): (message: string) => void {
  let n = 0;
  return (message) => {
    n++;
    if (n <= 20 || n % 100 === 0) write(`error #${n}: ${message}\n`);
    if (n === 20) write('(further errors: every hundredth is shown; the summary counts them all)\n');
  };
}

export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Ctrl-C ends the run early, with the summary; a second Ctrl-C ends the process at once. */
export function interruptible(): { interrupted: () => boolean; step<T>(p: Promise<T>): Promise<T> } {
  let hit = false;
  const stop = new Promise<never>((_resolve, reject) => {
    process.once('SIGINT', () => {
      hit = true;
      process.stderr.write('\ninterrupted: closing the devices and printing the summary (Ctrl-C again to quit now)\n');
      process.once('SIGINT', () => process.exit(130));
      reject(new Interrupted('interrupted'));
    });
  });
  stop.catch(() => {});
  return { interrupted: () => hit, step: (p) => Promise.race([p, stop]) };
}
