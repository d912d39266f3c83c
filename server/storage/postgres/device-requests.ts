import type pg from 'pg';
import type {
  BindingFacts, CommandRecord, ConnectReport, DeviceRecord, DeviceRequestStore, EnrollmentRecord, IdentityRecord, TokenUpdateFacts,
} from '../ports.js';
import { commands, devices, enrollments, identities } from '../schema.js';
import { queryOne, rowReader } from './rows.js';

// The device hot paths, one statement each (issue 10: each statement costs far more than the SQL in it).
// Raw SQL because drizzle cannot say a statement whose writes hang off its reads (data-modifying CTEs), and
// the text is built once here rather than per request. Every sub-statement sees the same snapshot: the binding
// facts are the device and identity as they were before this request.

const identity = rowReader<IdentityRecord>(identities);
const enrollment = rowReader<EnrollmentRecord>(enrollments);
const device = rowReader<DeviceRecord>(devices);
const command = rowReader<CommandRecord>(commands);

// $1 UDID, $2 the signing certificate's fingerprint. `bound` is the acceptance rule of DeviceService's binding
// check (the device's own certificate, a live identity, not checked out); where they differed the service would
// refuse a request whose writes were already done, so the service checks that they agree.
const FACTS = `
  i AS (SELECT * FROM identities WHERE fingerprint = $2::text),
  d AS (SELECT * FROM devices WHERE udid = $1::text),
  bound AS (SELECT 1 FROM i, d WHERE i.revoked_at IS NULL AND d.checked_out_at IS NULL AND d.cert_fingerprint = $2::text)`;
const ONE_ROW = 'FROM (SELECT 1) one LEFT JOIN i ON true LEFT JOIN d ON true';

const BINDING = `WITH ${FACTS}
SELECT to_jsonb(i) AS identity, to_jsonb(e) AS enrollment, to_jsonb(d) AS device
${ONE_ROW} LEFT JOIN enrollments e ON e.token = i.enrollment_token`;

// $3 the report's Status, $4 its CommandUUID (null with Idle), $5 result, $6 ErrorChain, $7 now.
// A NotNow never reopens a finished command. The next command skips NotNow'd ones for the rest of a connection
// (any report but Idle) and is not the reported one, which this snapshot still shows as Sent. The NotNow mark:
// cleared by Idle (a new connection), set by NotNow, and cleared when another status ends the connection —
// the service then pushes the device again (DeviceService.connect).
const CONNECT = `WITH ${FACTS},
  r AS (UPDATE commands SET status = $3::text, result = $5::jsonb, error_chain = $6::jsonb, updated_at = $7::timestamptz
    WHERE command_uuid = $4::text AND udid = $1::text AND EXISTS (SELECT 1 FROM bound)
      AND ($3::text <> 'NotNow' OR status IN ('Queued','Sent','NotNow'))
    RETURNING *),
  n AS (UPDATE commands SET status = 'Sent', sent_at = $7::timestamptz, updated_at = $7::timestamptz
    WHERE command_uuid = (
        SELECT command_uuid FROM commands
        WHERE udid = $1::text AND status IN ('Queued','Sent','NotNow') AND (status <> 'NotNow' OR $3::text = 'Idle')
          AND command_uuid IS DISTINCT FROM $4::text
        ORDER BY seq LIMIT 1)
      AND status IN ('Queued','Sent','NotNow') AND (status <> 'NotNow' OR $3::text = 'Idle') AND EXISTS (SELECT 1 FROM bound)
    RETURNING *),
  seen AS (UPDATE devices SET last_seen_at = $7::timestamptz, silent_flagged_at = NULL,
      not_now_at = CASE
        WHEN $3::text = 'Idle' THEN NULL
        WHEN $3::text = 'NotNow' THEN coalesce(not_now_at, $7::timestamptz)
        WHEN EXISTS (SELECT 1 FROM n) THEN not_now_at
        ELSE NULL END
    WHERE udid = $1::text AND EXISTS (SELECT 1 FROM bound)
    RETURNING 1)
SELECT to_jsonb(i) AS identity, to_jsonb(d) AS device, to_jsonb(r) AS recorded, to_jsonb(n) AS next, EXISTS (SELECT 1 FROM seen) AS applied
${ONE_ROW} LEFT JOIN r ON true LEFT JOIN n ON true`;

// $3 Token (hex), $4 PushMagic, $5 AwaitingConfiguration, $6 the sealed UnlockToken (null: keep the stored one;
// Apple may send it only once), $7 now.
const TOKEN_UPDATE = `WITH ${FACTS},
  t AS (UPDATE devices SET enrolled = true, enrolled_at = coalesce(enrolled_at, $7::timestamptz),
      push_token = $3::text, push_magic = $4::text, token_dead = false, push_error = NULL, push_error_at = NULL,
      awaiting_configuration = $5::boolean, unlock_token = coalesce($6::text, unlock_token),
      token_updated_at = $7::timestamptz, last_seen_at = $7::timestamptz, updated_at = $7::timestamptz
    WHERE udid = $1::text AND EXISTS (SELECT 1 FROM bound)
    RETURNING 1)
SELECT to_jsonb(i) AS identity, to_jsonb(d) AS device, EXISTS (SELECT 1 FROM t) AS applied,
  EXISTS (SELECT 1 FROM commands WHERE udid = $1::text AND status IN ('Queued','Sent','NotNow')) AS commands_waiting
${ONE_ROW}`;

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

export class PostgresDeviceRequests implements DeviceRequestStore {
  /** `prepared`: named statements (PostgreSQL); see queryOne. */
  constructor(private readonly pool: pg.Pool, private readonly opts: { prepared: boolean }) {}

  private query(name: string, text: string, values: unknown[]) {
    return queryOne(this.pool, this.opts.prepared ? `device-requests/${name}` : undefined, text, values);
  }

  async binding(udid: string, fingerprint: string): Promise<BindingFacts<{ identity: IdentityRecord; enrollment: EnrollmentRecord | null }>> {
    const row = await this.query('binding', BINDING, [udid, fingerprint]);
    const found = identity(row.identity);
    return { identity: found && { identity: found, enrollment: enrollment(row.enrollment) ?? null }, device: device(row.device) };
  }

  async connect(q: ConnectReport): Promise<BindingFacts & { applied?: { recorded?: CommandRecord; next?: CommandRecord } }> {
    const row = await this.query('connect', CONNECT, [
      q.udid, q.fingerprint, q.status, q.status === 'Idle' ? null : q.commandUuid ?? null, json(q.result), json(q.errorChain), q.now,
    ]);
    return { ...facts(row), applied: row.applied ? { recorded: command(row.recorded), next: command(row.next) } : undefined };
  }

  async tokenUpdate(udid: string, fingerprint: string, u: TokenUpdateFacts): Promise<BindingFacts & { applied?: { commandsWaiting: boolean } }> {
    const row = await this.query('token-update', TOKEN_UPDATE, [
      udid, fingerprint, u.pushToken, u.pushMagic, u.awaitingConfiguration, u.unlockToken ?? null, u.now,
    ]);
    return { ...facts(row), applied: row.applied ? { commandsWaiting: row.commands_waiting === true } : undefined };
  }
}

function facts(row: Record<string, unknown>): BindingFacts {
  const found = identity(row.identity);
  return { identity: found && { identity: found }, device: device(row.device) };
}
