import type pg from 'pg';
import type { Storage } from '../ports.js';
import { bundleAssignments, bundleReservations } from '../schema.js';
import { PostgresAppleEvents } from './apple-events.js';
import { PostgresAudit } from './audit.js';
import { PostgresCatalogue } from './catalogue.js';
import { PostgresCommands } from './commands.js';
import { drizzleOn } from './db.js';
import { PostgresDeviceRequests } from './device-requests.js';
import { PostgresDevices } from './devices.js';
import { PostgresEnrollments } from './enrollments.js';
import { PostgresInstances } from './instances.js';
import { PostgresInstalls } from './installs.js';
import { PostgresLedger } from './ledger.js';
import { PostgresMetrics } from './metrics.js';
import { PostgresNotifications } from './notifications.js';
import { PostgresPushQueue } from './push-queue.js';
import { PostgresSettings } from './settings.js';
import { PostgresSubscriptions } from './subscriptions.js';
import { PostgresTargetList } from './target-lists.js';
import { PostgresUsers } from './users.js';
import { PostgresVppUsers } from './vpp-users.js';

/**
 * Every port over one PostgreSQL pool (PGlite is reached through the same pool; see database.ts). `embedded`:
 * the database is this process's own PGlite, which no other server process shares.
 */
export function postgresStorage(pool: pg.Pool, opts: { embedded?: boolean } = {}): Storage {
  const db = drizzleOn(pool);
  return {
    settings: new PostgresSettings(db),
    users: new PostgresUsers(db),
    enrollments: new PostgresEnrollments(db),
    devices: new PostgresDevices(db),
    deviceRequests: new PostgresDeviceRequests(pool, { prepared: !opts.embedded }),
    commands: new PostgresCommands(db),
    pushQueue: new PostgresPushQueue(db),
    subscriptions: new PostgresSubscriptions(db),
    catalogue: new PostgresCatalogue(db),
    assignments: new PostgresTargetList(db, bundleAssignments),
    reservations: new PostgresTargetList(db, bundleReservations),
    ledger: new PostgresLedger(db),
    installs: new PostgresInstalls(db),
    vppUsers: new PostgresVppUsers(db),
    appleEvents: new PostgresAppleEvents(db),
    notifications: new PostgresNotifications(db),
    instances: new PostgresInstances(pool, opts.embedded ?? false),
    audit: new PostgresAudit(db),
    metrics: new PostgresMetrics(db),
  };
}
