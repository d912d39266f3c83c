import { Agenda } from 'agenda';
import { PostgresBackend } from '@agendajs/postgres-backend';
import type { Logger } from './log.js';
import type { Database } from './storage/database.js';

// Jobs run by agenda on the server's own database: schedules and locks are shared by every server process,
// so a job runs on one of them at a time. Each part of the server defines its jobs next to what they run
// (devices/refresh-jobs.ts, push/push-jobs.ts, licensing/licensing-jobs.ts).
export type Scheduler = Agenda;

export function createScheduler(database: Database, log: Logger): Scheduler {
  // On PGlite agenda shares the single connection (see database.ts) and polls: LISTEN/NOTIFY would pin it.
  // On PostgreSQL it shares the server's pool too, whose connections have error listeners (database.ts).
  const backend = new PostgresBackend({ pool: database.pool, disableNotifications: database.kind === 'pglite' });
  // The LISTEN connection breaking (PostgreSQL restarted) is emitted here, and reconnected by the channel
  // itself; unheard, it would be an uncaught exception that ends the process.
  backend.notificationChannel?.on('error', (err: Error) => log.warn({ error: err.message }, 'job notification channel lost its connection; reconnecting'));
  const agenda = new Agenda({ backend, processEvery: 1000, defaultLockLifetime: 5 * 60_000 });
  agenda.on('error', (err: Error) => log.error({ error: err.message }, 'job scheduler error'));
  return agenda;
}
