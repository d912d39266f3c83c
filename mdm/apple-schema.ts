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
import { compareOsVersions } from './os-version.js';

export { compareOsVersions };

export type SchemaResult = { ok: true } | { ok: false; errors: string[] };

interface KeySpec {
  key: string;
  type: string;
  presence?: string;
  rangelist?: unknown[];
  format?: string;
  repetition?: { min?: number; max?: number };
  subkeys?: KeySpec[];
  supportedOS?: Record<string, { introduced?: string; removed?: string; userenrollment?: { mode?: string } } | undefined>;
}
interface SchemaFile {
  title?: string;
  payload: { requesttype?: string; payloadtype?: string; supportedOS?: KeySpec['supportedOS'] };
  payloadkeys?: KeySpec[];
  responsekeys?: KeySpec[];
}
interface Schemas {
  commands: Map<string, SchemaFile>;
  checkin: Map<string, SchemaFile>;
  profiles: Map<string, SchemaFile>;
}

const SCHEMA_ROOT = fileURLToPath(new URL('./apple-schema/mdm/', import.meta.url));

// Values Apple's own examples use although the key's rangelist leaves them out. install-application-command's
// two examples (Enterprise and App Store) and managed-application-list-command's response both carry
// `ManagementFlags 0`, while application.install.yaml lists only 1, 4, 5: what Apple sends itself is taken.
const EXAMPLE_VALUES: Readonly<Record<string, readonly unknown[]>> = {
  'InstallApplication:ManagementFlags': [0],
};

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

/** Every RequestType Apple's schemas describe (mdm/apple-schema/mdm/commands). */
export function knownRequestTypes(): string[] {
  return [...schemas().commands.keys()].sort();
}

/** A command dict (RequestType and its keys, without the CommandUUID envelope) against its YAML. */
export function validateCommand(command: Record<string, unknown>): SchemaResult {
  const rt = command.RequestType;
  if (typeof rt !== 'string') return fail([`RequestType: expected <string>, got ${typeName(rt)}`]);
  const schema = schemas().commands.get(rt);
  if (!schema) return fail([`RequestType: unknown request type '${rt}'`]);
  const errors: string[] = [];
  checkDict(command, schema.payloadkeys ?? [], '', { userEnrollment: false, allowUnknown: false, requestType: rt }, errors, new Set(['RequestType']));
  return result(errors);
}

/**
 * Why an iOS/iPadOS device at `osVersion` cannot take this (schema-valid) command, by the `supportedOS.iOS` of the
 * command and of each key it carries: `introduced: n/a` (not on iOS), introduced after the device's version, or
 * `removed` at or before it. Empty when it can. iPadOS shares the iOS entry in Apple's YAML. Requirements the
 * server cannot see (supervision, Shared iPad) are left to the device, which answers with an error.
 */
export function commandPlatformProblems(command: Record<string, unknown>, osVersion: string | undefined): string[] {
  const rt = String(command.RequestType);
  const schema = schemas().commands.get(rt);
  if (!schema) return [`RequestType: unknown request type '${rt}'`];
  const problems: string[] = [];
  const own = osProblem(schema.payload.supportedOS, osVersion);
  if (own) return [`${rt} ${own}`];
  walkPlatform(command, schema.payloadkeys ?? [], '', osVersion, problems, new Set(['RequestType']));
  return problems;
}

function osProblem(supported: KeySpec['supportedOS'], osVersion: string | undefined): string | undefined {
  const ios = supported?.iOS;
  if (!ios) return undefined;
  const introduced = ios.introduced;
  if (introduced === 'n/a') return 'is not supported on iOS or iPadOS (Apple: supportedOS.iOS.introduced n/a)';
  if (osVersion === undefined) return undefined;
  if (introduced && compareOsVersions(osVersion, introduced) < 0) return `needs iOS ${introduced} or later; the device runs ${osVersion}`;
  if (ios.removed && ios.removed !== 'n/a' && compareOsVersions(osVersion, ios.removed) >= 0) return `was removed in iOS ${ios.removed}; the device runs ${osVersion}`;
  return undefined;
}

function walkPlatform(dict: Record<string, unknown>, specs: KeySpec[], prefix: string, osVersion: string | undefined, problems: string[], skip: Set<string> = new Set()): void {
  const byName = new Map(specs.map((s) => [s.key, s]));
  for (const [k, v] of Object.entries(dict)) {
    const spec = byName.get(k);
    if (skip.has(k) || !spec) continue;
    walkValue(v, spec, prefix + k, osVersion, problems);
  }
}

function walkValue(v: unknown, spec: KeySpec, path: string, osVersion: string | undefined, problems: string[]): void {
  const own = osProblem(spec.supportedOS, osVersion);
  if (own) { problems.push(`${path} ${own}`); return; }
  if (spec.type === '<string>' && typeof v === 'string' && spec.subkeys?.length) {
    const choice = spec.subkeys.find((s) => s.key === v);
    const chosen = choice && osProblem(choice.supportedOS, osVersion);
    if (chosen) problems.push(`${path} '${v}' ${chosen}`);
  } else if (spec.type === '<dictionary>' && isDict(v) && spec.subkeys?.length) {
    walkPlatform(v, spec.subkeys, `${path}.`, osVersion, problems);
  } else if (spec.type === '<array>' && Array.isArray(v) && spec.subkeys?.length) {
    v.forEach((el, i) => {
      const item = itemSpec(el, spec.subkeys!);
      if (item) walkValue(el, item, `${path}[${i}]`, osVersion, problems);
    });
  }
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
  /** The command being checked, for Apple's example values beyond a rangelist (EXAMPLE_VALUES). */
  requestType?: string;
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
  if (spec.rangelist && !spec.rangelist.some((r) => r === v) && !EXAMPLE_VALUES[`${ctx.requestType}:${path}`]?.includes(v)) {
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
      arr.forEach((el, i) => {
        const alternative = itemSpec(el, spec.subkeys!);
        if (alternative) checkValue(el, alternative, `${path}[${i}]`, ctx, errors);
        else errors.push(`${path}[${i}]: matches none of ${spec.subkeys!.map((k) => k.key).join(', ')}`);
      });
      break;
    }
  }
}

/**
 * The spec an array item follows. One subkey: that one. Several (Settings' Wallpaper, DataRoaming, …): the
 * dictionary whose discriminating key, a required key with a single allowed value (Settings' `Item`), the item
 * carries with that value.
 */
function itemSpec(el: unknown, alternatives: KeySpec[]): KeySpec | undefined {
  if (alternatives.length === 1) return alternatives[0];
  if (!isDict(el)) return undefined;
  return alternatives.find((alt) => (alt.subkeys ?? []).some((k) => k.presence === 'required' && k.rangelist?.length === 1 && el[k.key] === k.rangelist[0]));
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
