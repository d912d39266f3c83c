import { sql } from 'drizzle-orm';
import type { MetricsStore, QueueDepths } from '../ports.js';
import type { Db } from './db.js';

export class PostgresMetrics implements MetricsStore {
  constructor(private readonly db: Db) {}

  /** Commands still owed an answer (Queued, Sent, NotNow), by status, and wake-ups waiting to be pushed. */
  async queueDepths(): Promise<QueueDepths> {
    const res = await this.db.execute<{ status: string; count: number }>(sql`
      SELECT status, count(*)::int AS count FROM commands WHERE status IN ('Queued', 'Sent', 'NotNow') GROUP BY status
      UNION ALL SELECT 'push_queue', count(*)::int FROM push_queue`);
    const commands: Record<string, number> = { Queued: 0, Sent: 0, NotNow: 0 };
    let pushes = 0;
    for (const r of res.rows) {
      if (r.status === 'push_queue') pushes = r.count;
      else commands[r.status] = r.count;
    }
    return { commands, pushes };
  }
}
