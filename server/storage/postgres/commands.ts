import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { CommandOwner, CommandRecord, CommandStatus, CommandStore } from '../ports.js';
import { commands } from '../schema.js';
import type { Db } from './db.js';

const PENDING: CommandStatus[] = ['Queued', 'Sent', 'NotNow'];

export class PostgresCommands implements CommandStore {
  constructor(private readonly db: Db) {}

  async enqueue(c: Parameters<CommandStore['enqueue']>[0]): Promise<CommandRecord> {
    return (await this.db.insert(commands).values({ ...c, ownerRef: c.ownerRef ?? null }).returning())[0]!;
  }
  async enqueueIdempotent(c: Parameters<CommandStore['enqueueIdempotent']>[0]): Promise<{ command: CommandRecord; replayed: boolean }> {
    // The partial unique index commands_idempotency_key_idx decides between two concurrent retries in the insert.
    const [inserted] = await this.db.insert(commands).values({ ...c, ownerRef: c.ownerRef ?? null })
      .onConflictDoNothing({ target: [commands.udid, commands.idempotencyKey], where: sql`idempotency_key IS NOT NULL` }).returning();
    if (inserted) return { command: inserted, replayed: false };
    const [existing] = await this.db.select().from(commands).where(and(eq(commands.udid, c.udid), eq(commands.idempotencyKey, c.idempotencyKey)));
    if (!existing) throw new Error(`command with idempotency key ${c.idempotencyKey} for ${c.udid} neither inserted nor found`);
    return { command: existing, replayed: true };
  }
  async get(commandUuid: string): Promise<CommandRecord | undefined> {
    return (await this.db.select().from(commands).where(eq(commands.commandUuid, commandUuid)))[0];
  }
  async list(udid: string): Promise<CommandRecord[]> {
    return this.db.select().from(commands).where(eq(commands.udid, udid)).orderBy(asc(commands.seq));
  }
  async enqueueOnePending(c: Parameters<CommandStore['enqueueOnePending']>[0]): Promise<CommandRecord | undefined> {
    // The partial unique index commands_one_pending_install_idx refuses a second pending one in the very
    // statement that inserts it, whichever process races; other owners have no such index.
    if (c.owner !== 'vpp-install') throw new Error(`one pending command per ownerRef is kept for vpp-install only, not ${c.owner}`);
    return (await this.db.insert(commands).values(c).onConflictDoNothing().returning())[0];
  }
  async cancelPending(udid: string, owner: CommandOwner, ownerRef: string): Promise<CommandRecord[]> {
    return this.db.update(commands).set({ status: 'Cancelled', updatedAt: new Date() })
      .where(and(eq(commands.udid, udid), eq(commands.owner, owner), eq(commands.ownerRef, ownerRef), inArray(commands.status, PENDING))).returning();
  }
  async hasPending(udid: string, owner: CommandOwner): Promise<boolean> {
    const rows = await this.db.select({ seq: commands.seq }).from(commands)
      .where(and(eq(commands.udid, udid), eq(commands.owner, owner), inArray(commands.status, PENDING))).limit(1);
    return rows.length > 0;
  }
  async enqueueMany(cs: Array<Parameters<CommandStore['enqueue']>[0]>): Promise<void> {
    if (cs.length === 0) return;
    // One array parameter per column: any number of rows in one statement (a VALUES list hits the 65,535-parameter limit).
    const col = (f: (c: (typeof cs)[number]) => string | null) => sql.param(cs.map(f));
    await this.db.execute(sql`
      INSERT INTO commands (command_uuid, udid, request_type, payload, owner, owner_ref)
      SELECT * FROM unnest(${col((c) => c.commandUuid)}::text[], ${col((c) => c.udid)}::text[], ${col((c) => c.requestType)}::text[],
                           ${col((c) => c.payload)}::text[], ${col((c) => c.owner)}::text[], ${col((c) => c.ownerRef ?? null)}::text[])`);
  }
}
