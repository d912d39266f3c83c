// Apple's device-management YAML schemas (mdm/apple-schema/, MIT, from apple/device-management) as a validator.
//
// How the YAML expresses presence, and how it is read here for an iOS/iPadOS server:
// - `presence: required` on a key whose `supportedOS.iOS.introduced` is `n/a` (e.g. Authenticate's
//   DeviceName/Model/ModelName, TokenUpdate's NotOnConsole) only binds macOS and other platforms: optional here.
// - `supportedOS.iOS.userenrollment.mode`: `required` makes a key required only in User Enrollment
//   (EnrollmentID), `forbidden` makes it required-if-declared-required only outside it and an error inside it
//   (UDID). A check-in is a User Enrollment one when it carries EnrollmentID and no UDID.
// - A dictionary subkey named `ANY` (or `ANY …`) describes every undeclared key; a dictionary without
//   subkeys takes anything. An array's single subkey describes its items; `repetition` on that item bounds
//   the array's length. A `<string>` with subkeys (DeviceInformation's Queries items) must be one of the
//   subkeys' names. `rangelist` and `format` constrain values.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export type SchemaResult = { ok: true } | { ok: false; errors: string[] };

interface KeySpec {
  key: string;
  type: string;
  presence?: string;
  rangelist?: unknown[];
  format?: string;
  repetition?: { min?: number; max?: number };
  subkeys?: KeySpec[];
  supportedOS?: Record<string, { introduced?: string; userenrollment?: { mode?: string } } | undefined>;
}
interface SchemaFile {
  title?: string;
  payload: { requesttype?: string; payloadtype?: string };
  payloadkeys?: KeySpec[];
  responsekeys?: KeySpec[];
}
interface Schemas {
  commands: Map<string, SchemaFile>;
  checkin: Map<string, SchemaFile>;
  profiles: Map<string, SchemaFile>;
}

const SCHEMA_ROOT = fileURLToPath(new URL('./apple-schema/mdm/', import.meta.url));

// mdm/apple-schema/ holds all of Apple's commands, but the server queues only those it builds in
// ./commands.ts and whose results it handles; accepting another RequestType is a product decision, not a
// side effect of the schema files that happen to be present. Device reports are checked against any schema.
const ISSUED_REQUEST_TYPES: ReadonlySet<string> = new Set([
  'DeviceConfigured',
  'DeviceInformation',
  'InstallApplication',
  'InstalledApplicationList',
  'InviteToProgram',
  'ManagedApplicationList',
  'ProfileList',
  'RemoveApplication',
]);

let cache: Schemas | undefined;

function schemas(): Schemas {
  if (!cache) {
    cache = {
      commands: loadDir('commands', (f) => f.payload.requesttype),
      checkin: loadDir('checkin', (f) => f.payload.requesttype),
      profiles: loadDir('profiles', (f) => f.payload.payloadtype),
    };
  }
  return cache;
}

function loadDir(dir: string, name: (f: SchemaFile) => string | undefined): Map<string, SchemaFile> {
  const out = new Map<string, SchemaFile>();
  const base = `${SCHEMA_ROOT}${dir}/`;
  for (const file of readdirSync(base).filter((f) => f.endsWith('.yaml')).sort()) {
    const parsed = parseYaml(readFileSync(base + file, 'utf8')) as SchemaFile;
    const n = name(parsed);
    if (!n) throw new Error(`apple-schema: ${dir}/${file} names no request or payload type`);
    out.set(n, parsed);
  }
  return out;
}

export function knownRequestTypes(): string[] {
  return [...schemas().commands.keys()].filter((rt) => ISSUED_REQUEST_TYPES.has(rt));
}

/** A command dict (RequestType and its keys, without the CommandUUID envelope) against its YAML. */
export function validateCommand(command: Record<string, unknown>): SchemaResult {
  const rt = command.RequestType;
  if (typeof rt !== 'string') return fail([`RequestType: expected <string>, got ${typeName(rt)}`]);
  const schema = ISSUED_REQUEST_TYPES.has(rt) ? schemas().commands.get(rt) : undefined;
  if (!schema) return fail([`RequestType: unknown request type '${rt}'`]);
  const errors: string[] = [];
  checkDict(command, schema.payloadkeys ?? [], '', { userEnrollment: false, allowUnknown: false }, errors, new Set(['RequestType']));
  return result(errors);
}

/**
 * A check-in dict against mdm/checkin/<MessageType>. Undeclared keys are accepted by default because devices
 * send keys newer than the schema snapshot (e.g. Authenticate's Challenge in a macOS capture).
 */
export function validateCheckIn(dict: Record<string, unknown>, opts: { allowUnknownKeys?: boolean } = {}): SchemaResult {
  const mt = dict.MessageType;
  if (typeof mt !== 'string') return fail([`MessageType: expected <string>, got ${typeName(mt)}`]);
  const schema = schemas().checkin.get(mt);
  if (!schema) return fail([`MessageType: no schema for '${mt}'`]);
  const userEnrollment = dict.UDID === undefined && dict.EnrollmentID !== undefined;
  const errors: string[] = [];
  checkDict(dict, schema.payloadkeys ?? [], '', { userEnrollment, allowUnknown: opts.allowUnknownKeys ?? true }, errors);
  return result(errors);
}

// Keys every payload carries (Apple's "common payload keys"); the per-type YAML files do not list them.
const PAYLOAD_COMMON: KeySpec[] = [
  { key: 'PayloadType', type: '<string>', presence: 'required' },
  { key: 'PayloadVersion', type: '<integer>', presence: 'required' },
  { key: 'PayloadIdentifier', type: '<string>', presence: 'required' },
  { key: 'PayloadUUID', type: '<string>', presence: 'required' },
  { key: 'PayloadDisplayName', type: '<string>', presence: 'optional' },
  { key: 'PayloadDescription', type: '<string>', presence: 'optional' },
  { key: 'PayloadOrganization', type: '<string>', presence: 'optional' },
  { key: 'PayloadContent', type: '<any>', presence: 'optional' },
];

/** One payload of a configuration profile against mdm/profiles/<PayloadType>.yaml. */
export function validateProfilePayload(payload: Record<string, unknown>): SchemaResult {
  const pt = payload.PayloadType;
  if (typeof pt !== 'string') return fail([`PayloadType: expected <string>, got ${typeName(pt)}`]);
  const schema = schemas().profiles.get(pt);
  if (!schema) return fail([`PayloadType: no schema for '${pt}'`]);
  const declared = schema.payloadkeys ?? [];
  const names = new Set(declared.map((k) => k.key));
  const specs = [...PAYLOAD_COMMON.filter((k) => !names.has(k.key)), ...declared];
  const errors: string[] = [];
  checkDict(payload, specs, '', { userEnrollment: false, allowUnknown: false }, errors);
  return result(errors);
}

// Keys of every ServerURL report, whatever the command; RequestType is echoed by some devices (see
// device-captures/DeviceInformation.1.plist), the User* keys come on the user channel.
const RESPONSE_COMMON: KeySpec[] = [
  { key: 'UDID', type: '<string>' },
  { key: 'EnrollmentID', type: '<string>' },
  { key: 'EnrollmentUserID', type: '<string>' },
  { key: 'UserID', type: '<string>' },
  { key: 'UserShortName', type: '<string>' },
  { key: 'UserLongName', type: '<string>' },
  { key: 'CommandUUID', type: '<string>' },
  { key: 'RequestType', type: '<string>' },
  { key: 'Status', type: '<string>', rangelist: ['Idle', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow'] },
  {
    key: 'ErrorChain',
    type: '<array>',
    subkeys: [
      {
        key: 'ErrorChainItem',
        type: '<dictionary>',
        subkeys: [
          { key: 'ErrorCode', type: '<integer>', presence: 'required' },
          { key: 'ErrorDomain', type: '<string>', presence: 'required' },
          { key: 'LocalizedDescription', type: '<string>' },
          { key: 'USEnglishDescription', type: '<string>' },
        ],
      },
    ],
  },
];

/**
 * A device's report for a command against the command's responsekeys (plus the common report keys).
 * Required response keys are only required when the report says Acknowledged (or has no Status).
 * Undeclared keys are errors by default: this is meant to check what the simulator sends.
 */
export function validateCommandResponse(
  requestType: string,
  response: Record<string, unknown>,
  opts: { allowUnknownKeys?: boolean } = {},
): SchemaResult {
  const schema = schemas().commands.get(requestType);
  if (!schema) return fail([`RequestType: unknown request type '${requestType}'`]);
  const status = response.Status;
  const answered = status === undefined || status === 'Acknowledged';
  const declared = (schema.responsekeys ?? []).map((k) =>
    answered || k.presence !== 'required' ? k : { ...k, presence: 'optional' },
  );
  const names = new Set(declared.map((k) => k.key));
  const specs = [...RESPONSE_COMMON.filter((k) => !names.has(k.key)), ...declared];
  const errors: string[] = [];
  checkDict(response, specs, '', { userEnrollment: false, allowUnknown: opts.allowUnknownKeys ?? false }, errors);
  return result(errors);
}

interface Ctx {
  userEnrollment: boolean;
  allowUnknown: boolean;
}

function checkDict(
  dict: Record<string, unknown>,
  specs: KeySpec[],
  prefix: string,
  ctx: Ctx,
  errors: string[],
  alsoAllowed: Set<string> = new Set(),
): void {
  const byName = new Map<string, KeySpec>();
  let wildcard: KeySpec | undefined;
  for (const s of specs) {
    if (s.key === 'ANY' || s.key.startsWith('ANY ')) wildcard = s;
    else byName.set(s.key, s);
  }
  for (const [k, v] of Object.entries(dict)) {
    const path = prefix + k;
    if (alsoAllowed.has(k)) continue;
    const spec = byName.get(k) ?? wildcard;
    if (!spec) {
      if (!ctx.allowUnknown) errors.push(`${path}: unknown key (not declared in Apple's schema)`);
      continue;
    }
    if (v === undefined) continue;
    if (ctx.userEnrollment && iosUserEnrollmentMode(spec) === 'forbidden') {
      errors.push(`${path}: not allowed in a User Enrollment`);
    }
    checkValue(v, spec, path, ctx, errors);
  }
  for (const s of byName.values()) {
    if (dict[s.key] === undefined && isRequired(s, ctx)) errors.push(`${prefix}${s.key}: required key missing`);
  }
}

function iosUserEnrollmentMode(spec: KeySpec): string | undefined {
  return spec.supportedOS?.iOS?.userenrollment?.mode;
}

function isRequired(spec: KeySpec, ctx: Ctx): boolean {
  const ios = spec.supportedOS?.iOS;
  if (ios?.introduced === 'n/a') return false;
  const ue = ios?.userenrollment?.mode;
  if (ctx.userEnrollment) {
    if (ue === 'required') return true;
    if (ue === 'forbidden') return false;
  } else if (ue === 'required') {
    return false;
  }
  return spec.presence === 'required';
}

function checkValue(v: unknown, spec: KeySpec, path: string, ctx: Ctx, errors: string[]): void {
  if (!hasType(v, spec.type)) {
    errors.push(`${path}: expected ${spec.type}, got ${typeName(v)}`);
    return;
  }
  if (spec.rangelist && !spec.rangelist.some((r) => r === v)) {
    errors.push(`${path}: expected one of ${spec.rangelist.join(',')}`);
  }
  if (spec.format && typeof v === 'string' && !new RegExp(spec.format).test(v)) {
    errors.push(`${path}: does not match format ${spec.format}`);
  }
  switch (spec.type) {
    case '<string>':
      if (spec.subkeys?.length && !spec.subkeys.some((s) => s.key === v)) {
        errors.push(`${path}: unknown value '${String(v)}'`);
      }
      break;
    case '<dictionary>':
      if (spec.subkeys?.length) checkDict(v as Record<string, unknown>, spec.subkeys, `${path}.`, ctx, errors);
      break;
    case '<array>': {
      const arr = v as unknown[];
      const item = spec.subkeys?.[0];
      if (!item) break;
      const rep = item.repetition;
      if (rep?.min !== undefined && arr.length < rep.min) errors.push(`${path}: expected at least ${rep.min} items, got ${arr.length}`);
      if (rep?.max !== undefined && arr.length > rep.max) errors.push(`${path}: expected at most ${rep.max} items, got ${arr.length}`);
      arr.forEach((el, i) => checkValue(el, item, `${path}[${i}]`, ctx, errors));
      break;
    }
  }
}

function hasType(v: unknown, type: string): boolean {
  switch (type) {
    case '<string>':
      return typeof v === 'string';
    case '<integer>':
      return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
    case '<real>':
      // An integral <real> arrives as a whole JS number (and plist writes it as <integer>): accept it.
      return typeof v === 'number' && Number.isFinite(v);
    case '<boolean>':
      return typeof v === 'boolean';
    case '<data>':
      return v instanceof Uint8Array;
    case '<date>':
      return v instanceof Date && !Number.isNaN(v.getTime());
    case '<array>':
      return Array.isArray(v);
    case '<dictionary>':
      return isDict(v);
    case '<any>':
      return true;
    default:
      throw new Error(`apple-schema: unsupported type ${type}`);
  }
}

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return '<string>';
  if (typeof v === 'boolean') return '<boolean>';
  if (typeof v === 'bigint') return '<integer>';
  if (typeof v === 'number') return Number.isInteger(v) ? '<integer>' : '<real>';
  if (Array.isArray(v)) return '<array>';
  if (v instanceof Uint8Array) return '<data>';
  if (v instanceof Date) return '<date>';
  if (typeof v === 'object') return '<dictionary>';
  return typeof v;
}

function fail(errors: string[]): SchemaResult {
  return { ok: false, errors };
}

function result(errors: string[]): SchemaResult {
  return errors.length ? { ok: false, errors } : { ok: true };
}
