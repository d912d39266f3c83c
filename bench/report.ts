// What a run leaves behind: results.json (machine, commit, date, settings, figures) and the printed table.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BenchOptions } from './options.js';
import { cpuModel, type Placement } from './processes.js';
import type { Figure } from './stats.js';

/** The keys of issue 10, in the order they are printed. */
export const FIGURE_KEYS = [
  'connect_round_trip', 'token_update', 'command_round_trip', 'apns_fanout', 'enrollment_rate',
  'bulk_enqueue', 'license_contention', 'memory_per_device', 'plist_parse', 'signature_verify',
] as const;
export type FigureKey = (typeof FIGURE_KEYS)[number];

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export interface Results {
  machine: Record<string, unknown>;
  commit: string | undefined;
  /** Uncommitted changes to tracked files when the run started. */
  dirty: boolean;
  date: string;
  mode: 'full' | 'quick';
  database: BenchOptions['database'];
  duration_s: number;
  settings: Record<string, unknown>;
  figures: Partial<Record<FigureKey, Figure>>;
  profiles?: Record<string, { functions: string[]; modules: string[] }>;
}

export function machine(place: Placement): Record<string, unknown> {
  return {
    cores: os.cpus().length, cpus_allowed: place.allCpus.length, cpu_model: cpuModel(), node: process.version, platform: `${os.platform()} ${os.release()}`,
    memory_gb: Math.round(os.totalmem() / 2 ** 30), load_average_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
    pinned: place.pinned, ...(place.pinned ? { server_cpu: place.serverCpu, load_cpu: place.loadCpu } : {}),
  };
}

export function commit(): { commit: string | undefined; dirty: boolean } {
  return { commit: git(['rev-parse', 'HEAD']), dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '' };
}

export async function writeResults(file: string, results: Results): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, JSON.stringify(results, null, 2) + '\n');
}

function num(x: unknown, unit = ''): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '-';
  const s = Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : String(x);
  return unit ? `${s} ${unit}` : s;
}

/** The server's CPU per operation, the figure that matters on a shared, noisy machine. */
function cpuColumn(f: Figure): string {
  const parts: string[] = [];
  if (typeof f.cpu_ms_per_op === 'number') parts.push(`${num(f.cpu_ms_per_op)} ms`);
  if (typeof f.db_cpu_ms_per_op === 'number') parts.push(`+ db ${num(f.db_cpu_ms_per_op)} ms`);
  if (typeof f.baseline_cpu_ms_per_op === 'number') parts.push(`(bare ${num(f.baseline_cpu_ms_per_op)})`);
  if (typeof f.cpu_ms_per_push === 'number') parts.push(`${num(f.cpu_ms_per_push)} ms/push${typeof f.db_cpu_ms_per_push === 'number' ? ` + db ${num(f.db_cpu_ms_per_push)} ms` : ''} (raw ${num(f.baseline_cpu_ms_per_push)})`);
  if (typeof f.burst_cpu_ms_per_profile === 'number') parts.push(`${num(f.burst_cpu_ms_per_profile)} ms/profile`);
  if (typeof f.cpu_ms_per_command === 'number') parts.push(`${num(f.cpu_ms_per_command)} ms/command`);
  if (typeof f.server_cpu_s === 'number') parts.push(`${num(f.server_cpu_s)} s${typeof f.db_cpu_s === 'number' ? ` + db ${num(f.db_cpu_s)} s` : ''} (bench ${num(f.bench_cpu_s)} s)`);
  return parts.join(' ');
}

function note(key: FigureKey, f: Figure): string {
  switch (key) {
    case 'apns_fanout': return `${num(f.pushes)} pushes`;
    case 'enrollment_rate': return `burst of ${num(f.burst_devices)}${f.sustained !== undefined ? `; sustained ${num(f.sustained)}/s on ${f.sustained_server_cpus} CPUs` : ''}`;
    case 'bulk_enqueue': return `${num(f.devices)} devices, one bulk call`;
    case 'license_contention': return `${num(f.devices)} devices, ${num(f.licenses)} licenses, Apple ${num(f.licensed_at_apple)}${f.settled ? '' : ', NOT settled'}`;
    case 'memory_per_device': return f.devices ? `at ${num(f.devices)} devices, RSS ${num(f.rss_mb)} MB` : String(f.why ?? '');
    case 'signature_verify': return `cache miss ${num(f.uncached_us)} µs`;
    default: return typeof f.spread === 'number' ? `rounds ±${Math.round(100 * f.spread)}%` : '';
  }
}

export function table(results: Results): string {
  const rows: string[][] = [['figure', 'value', 'baseline', 'ratio', 'server CPU', 'note']];
  for (const key of FIGURE_KEYS) {
    const f = results.figures[key];
    if (!f) continue;
    rows.push([key, f.value === null ? 'n/a' : num(f.value, f.unit), num(f.baseline, f.unit), num(f.ratio), cpuColumn(f), note(key, f)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
