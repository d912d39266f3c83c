import { Agenda } from 'agenda';
import { PostgresBackend } from '@agendajs/postgres-backend';
import type { Database } from './storage/database.js';

// Jobs run by agenda on the server's own database: schedules and locks are shared by every server process,
// so a job runs on one of them at a time. Each part of the server defines its jobs next to what they run
// (devices/refresh-jobs.ts, push/push-jobs.ts, licensing/licensing-jobs.ts).
export type Scheduler = Agenda;

export function createScheduler(database: Database): Scheduler {
  return new Agenda({
    // On PGlite agenda shares the single connection (see database.ts) and polls: LISTEN/NOTIFY would pin it.
    backend: database.kind === 'pglite'
      ? new PostgresBackend({ pool: database.pool, disableNotifications: true })
      : new PostgresBackend({ connectionString: database.url }),
    processEvery: 1000, defaultLockLifetime: 5 * 60_000,
  });
}
