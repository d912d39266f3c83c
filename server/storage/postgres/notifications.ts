import type { NotificationStore } from '../ports.js';
import { vppNotifications } from '../schema.js';
import type { Db } from './db.js';

export class PostgresNotifications implements NotificationStore {
  constructor(private readonly db: Db) {}

  async record(subscriptionId: string, notificationId: string, type: string): Promise<boolean> {
    const rows = await this.db.insert(vppNotifications).values({ subscriptionId, notificationId, notificationType: type })
      .onConflictDoNothing().returning({ notificationId: vppNotifications.notificationId });
    return rows.length > 0;
  }
}
