// What every phase of the bench works with: the options, the processes, the simulated world and fleet.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Fleet } from '../simulator/fleet.js';
import { summariseProfile } from './inspector.js';
import type { LoadGenerator } from './load-client.js';
import type { BenchOptions } from './options.js';
import type { Placement } from './processes.js';
import type { BareServer, BenchServer, PostgresProcesses } from './server.js';
import type { ReplayDevice, World } from './world.js';

export interface BenchContext {
  opts: BenchOptions;
  place: Placement;
  server: BenchServer;
  bare: BareServer;
  /** The PostgreSQL processes, whose CPU is the database's share of a request (absent on PGlite). */
  db?: PostgresProcesses;
  /** The server's PostgreSQL database (absent on PGlite, which lives inside the server process). */
  databaseUrl?: string;
  load: LoadGenerator;
  world: World;
  fleet: Fleet;
  replay: ReplayDevice[];
  /** Functions and modules with the most server self time, per profiled phase (--profile). */
  profiles: Record<string, { functions: string[]; modules: string[] }>;
  log(message: string): void;
}

/** Runs `fn`; with --profile, records a CPU profile of the server meanwhile and keeps its summary. */
export async function profiled<T>(ctx: BenchContext, name: string, fn: () => Promise<T>): Promise<T> {
  if (!ctx.opts.profileDir) return fn();
  const inspector = await ctx.server.inspector();
  await inspector.startProfile();
  try {
    return await fn();
  } finally {
    const profile = await inspector.stopProfile();
    inspector.close();
    await fs.mkdir(ctx.opts.profileDir, { recursive: true });
    const file = path.join(ctx.opts.profileDir, `server-${name}.cpuprofile`);
    await fs.writeFile(file, JSON.stringify(profile));
    ctx.profiles[name] = summariseProfile(profile);
    ctx.log(`profile of ${name}: ${file}`);
  }
}
