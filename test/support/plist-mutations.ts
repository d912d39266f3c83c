// Mutated MDM request bodies for fuzzing. An input is a recipe (plain data, so fast-check prints it
// readably and shrinks it): a seed message (a real device capture or a message the simulator sent), edits
// to its dictionary, then edits to its bytes. Each edit is one way real or hostile clients get plists wrong:
// type swaps, huge strings, deep nesting, duplicate keys, wrong MessageType/Status, oversized integers,
// odd dates, data where strings belong, NUL and lone surrogates, invalid UTF-8, binary plists, entity tricks.
import { buildBinary } from 'plist';
import fc from 'fast-check';

export type Endpoint = 'checkin' | 'connect';
export interface Seed { endpoint: Endpoint; name: string; text: string; dict: Record<string, unknown> }

/** A plist value to write, as data: the writer below turns it into XML, including shapes plist.build refuses. */
export type ValueSpec =
  | { string: string } | { huge: number; char: string } | { integer: string } | { real: string } | { bool: boolean }
  | { data: string } | { date: string } | { null: true } | { deep: number; kind: 'array' | 'dict' }
  | { array: ValueSpec[] } | { dict: Array<[string, ValueSpec]> };

export type DictEdit =
  | { op: 'set'; key: string; inside?: string; value: ValueSpec }
  | { op: 'drop'; key: string };

export type ByteEdit =
  | { op: 'truncate'; at: number }
  | { op: 'insertBytes'; at: number; hex: string }
  | { op: 'flipByte'; at: number; byte: number }
  | { op: 'inject'; into: 'string' | 'key'; nth: number; text: string }
  | { op: 'replaceContent'; element: 'string' | 'integer' | 'real' | 'date' | 'data' | 'true' | 'false'; nth: number; text: string }
  | { op: 'duplicateKey'; nth: number; value: ValueSpec; before: boolean }
  | { op: 'prolog'; trick: EntityTrick }
  | { op: 'binary' }
  | { op: 'encoding'; as: 'utf16le' | 'utf16be' | 'latin1' | 'bom' | 'declared-utf16' }
  | { op: 'noise'; at: number; text: string }
  | { op: 'retag'; from: string; to: string }
  | { op: 'repeat'; at: number; length: number; times: number };

export interface Recipe { seed: number; dictEdits: DictEdit[]; byteEdits: ByteEdit[] }

// ---- writing plists, including what plist.build will not write ----

class RawXml { constructor(readonly xml: string) {} }
const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function specXml(v: ValueSpec): string {
  if ('string' in v) return `<string>${escapeXml(v.string)}</string>`;
  if ('huge' in v) return `<string>${escapeXml(v.char.repeat(v.huge))}</string>`;
  if ('integer' in v) return `<integer>${v.integer}</integer>`;
  if ('real' in v) return `<real>${v.real}</real>`;
  if ('bool' in v) return v.bool ? '<true/>' : '<false/>';
  if ('data' in v) return `<data>${v.data}</data>`;
  if ('date' in v) return `<date>${v.date}</date>`;
  if ('null' in v) return '<null/>';
  if ('deep' in v) {
    const [open, close] = v.kind === 'array' ? ['<array>', '</array>'] : ['<dict><key>k</key>', '</dict>'];
    return `${open.repeat(v.deep)}<string>bottom</string>${close.repeat(v.deep)}`;
  }
  if ('array' in v) return `<array>${v.array.map(specXml).join('')}</array>`;
  return `<dict>${v.dict.map(([k, x]) => `<key>${escapeXml(k)}</key>${specXml(x)}`).join('')}</dict>`;
}

function valueXml(v: unknown): string {
  if (v instanceof RawXml) return v.xml;
  if (typeof v === 'string') return `<string>${escapeXml(v)}</string>`;
  if (typeof v === 'number') return Number.isInteger(v) ? `<integer>${v}</integer>` : `<real>${v}</real>`;
  if (typeof v === 'boolean') return v ? '<true/>' : '<false/>';
  if (v instanceof Uint8Array) return `<data>${Buffer.from(v).toString('base64')}</data>`;
  if (v instanceof Date) return `<date>${v.toISOString().replace(/\.\d{3}Z$/, 'Z')}</date>`;
  if (Array.isArray(v)) return `<array>${v.map(valueXml).join('')}</array>`;
  if (v && typeof v === 'object') return dictXml(v as Record<string, unknown>);
  return '<string></string>';
}
const dictXml = (d: Record<string, unknown>) => `<dict>${Object.entries(d).map(([k, v]) => `<key>${escapeXml(k)}</key>${valueXml(v)}`).join('')}</dict>`;

const XML_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n';
export const writePlist = (d: Record<string, unknown>) => `${XML_PROLOG}<plist version="1.0">${dictXml(d)}</plist>\n`;

// ---- applying a recipe ----

function applyDictEdit(dict: Record<string, unknown>, e: DictEdit): void {
  if (e.op === 'drop') { delete dict[e.key]; return; }
  const parent = e.inside !== undefined && isDict(dict[e.inside]) ? dict[e.inside] as Record<string, unknown> : dict;
  // defineProperty: a key named __proto__ must become a key, not the object's prototype.
  Object.defineProperty(parent, e.key, { value: new RawXml(specXml(e.value)), enumerable: true, writable: true, configurable: true });
}

const clone = (v: unknown): unknown => (Array.isArray(v) ? v.map(clone) : isDict(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)])) : v);
function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date) && !(v instanceof RawXml);
}

const position = (length: number, at: number) => Math.min(length, Math.max(0, Math.floor(at * length)));

/** The n-th (mod count) element `<tag>…</tag>` of the text, as [start of content, end of content]. */
function nthContent(text: string, tag: string, nth: number): [number, number] | undefined {
  const all = [...text.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))];
  if (all.length === 0) return undefined;
  const m = all[nth % all.length]!;
  const start = m.index! + tag.length + 2;
  return [start, start + m[1]!.length];
}

const ENTITY_TRICKS = {
  'internal entity': (t: string) => withDoctype(t, '<!DOCTYPE plist [ <!ENTITY e "expanded"> ]>', '&e;'),
  'billion laughs': (t: string) => withDoctype(t, `<!DOCTYPE plist [ <!ENTITY a "aaaaaaaaaa">${'bcdefghi'.split('').map((c, i) => `<!ENTITY ${c} "${`&${'abcdefghi'[i]};`.repeat(10)}">`).join('')} ]>`, '&i;'),
  'external entity': (t: string) => withDoctype(t, '<!DOCTYPE plist [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>', '&x;'),
  'parameter entity': (t: string) => withDoctype(t, '<!DOCTYPE plist [ <!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p; ]>', ''),
  'external DTD (PUBLIC)': (t: string) => withDoctype(t, '<!DOCTYPE plist PUBLIC "-//EVIL//DTD//EN" "http://127.0.0.1:9/evil.dtd">', ''),
  'external DTD (SYSTEM file)': (t: string) => withDoctype(t, '<!DOCTYPE plist SYSTEM "file:///dev/zero">', ''),
  'lower-case doctype': (t: string) => withDoctype(t, '<!doctype plist>', ''),
  'two doctypes': (t: string) => withDoctype(t, '<!DOCTYPE plist><!DOCTYPE plist>', ''),
  'entity declared in a comment': (t: string) => t.replace('<plist', '<!-- <!ENTITY x "y"> --><plist'),
  'undeclared entity': (t: string) => withDoctype(t, undefined, '&nbsp;'),
  'NUL character reference': (t: string) => withDoctype(t, undefined, '&#0;'),
  'surrogate character reference': (t: string) => withDoctype(t, undefined, '&#xD800;'),
  'out-of-range character reference': (t: string) => withDoctype(t, undefined, '&#x110000;'),
  'huge character reference': (t: string) => withDoctype(t, undefined, '&#99999999999999999999;'),
  'XInclude': (t: string) => t.replace(/<dict>/, '<dict><key>X</key><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'),
} as const;
export type EntityTrick = keyof typeof ENTITY_TRICKS;

/** Replaces the DOCTYPE (when `doctype` is given) and puts `reference` into the first string value. */
function withDoctype(text: string, doctype: string | undefined, reference: string): string {
  let out = doctype === undefined ? text : text.replace(/<!DOCTYPE[^>]*>\s*/i, '').replace(/(<\?xml[^>]*\?>\s*)?/, (m) => `${m}${doctype}\n`);
  if (reference) out = out.replace(/<string>/, `<string>${reference}`);
  return out;
}

function applyByteEdit(body: Buffer, e: ByteEdit, dict: Record<string, unknown>): Buffer {
  const text = () => body.toString('utf8');
  switch (e.op) {
    case 'truncate': return body.subarray(0, position(body.length, e.at));
    case 'insertBytes': { const p = position(body.length, e.at); return Buffer.concat([body.subarray(0, p), Buffer.from(e.hex, 'hex'), body.subarray(p)]); }
    case 'flipByte': { const out = Buffer.from(body); if (out.length) out[position(out.length - 1, e.at)] = e.byte; return out; }
    case 'inject': {
      const span = nthContent(text(), e.into, e.nth);
      if (!span) return body;
      const t = text();
      return Buffer.from(t.slice(0, span[0]) + e.text + t.slice(span[0]));
    }
    case 'replaceContent': {
      const t = text();
      if (e.element === 'true' || e.element === 'false') return Buffer.from(t.replace(`<${e.element}/>`, `<${e.element}>${e.text}</${e.element}>`));
      const span = nthContent(t, e.element, e.nth);
      return span ? Buffer.from(t.slice(0, span[0]) + e.text + t.slice(span[1])) : body;
    }
    case 'duplicateKey': {
      const keys = Object.keys(dict);
      if (keys.length === 0) return body;
      const entry = `<key>${escapeXml(keys[e.nth % keys.length]!)}</key>${specXml(e.value)}`;
      const t = text();
      const at = e.before ? t.indexOf('<dict>') + 6 : t.lastIndexOf('</dict>');
      return at < 6 ? body : Buffer.from(t.slice(0, at) + entry + t.slice(at));
    }
    case 'prolog': return Buffer.from(ENTITY_TRICKS[e.trick](text()));
    case 'binary': return Buffer.from(buildBinary(dict as Parameters<typeof buildBinary>[0]));
    case 'encoding': {
      const t = text();
      if (e.as === 'bom') return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]);
      if (e.as === 'declared-utf16') return Buffer.from(t.replace('encoding="UTF-8"', 'encoding="UTF-16"'));
      if (e.as === 'latin1') return Buffer.from(t.replace(/<string>/, '<string>é'), 'latin1');
      const le = Buffer.from(`\ufeff${t}`, 'utf16le');
      return e.as === 'utf16le' ? le : Buffer.from(le).swap16();
    }
    case 'noise': { const t = text(); const p = position(t.length, e.at); return Buffer.from(t.slice(0, p) + e.text + t.slice(p)); }
    case 'retag': return Buffer.from(text().replace(e.from, e.to));
    case 'repeat': {
      const start = position(body.length, e.at);
      const chunk = body.subarray(start, start + e.length);
      return Buffer.concat([body.subarray(0, start), ...Array.from({ length: e.times }, () => chunk), body.subarray(start)]);
    }
  }
}

/** The body a recipe describes. Seeds without dictionary edits keep their exact original text. */
export function bodyOf(seeds: readonly Seed[], r: Recipe): Buffer {
  const seed = seeds[r.seed % seeds.length]!;
  const dict = clone(seed.dict) as Record<string, unknown>;
  for (const e of r.dictEdits) applyDictEdit(dict, e);
  let body: Buffer = Buffer.from(r.dictEdits.length === 0 ? seed.text : writePlist(dict));
  for (const e of r.byteEdits) body = applyByteEdit(body, e, r.dictEdits.length === 0 ? seed.dict : unraw(dict));
  return body;
}
// buildBinary cannot write RawXml; a binary plist of an edited dict keeps only the plain values.
const unraw = (d: Record<string, unknown>) => Object.fromEntries(Object.entries(d).filter(([, v]) => !(v instanceof RawXml)));

// ---- generators ----

/** Keys worth setting: the ones the server reads, JavaScript's special names, and odd ones. */
const KEYS = [
  'MessageType', 'Status', 'UDID', 'Topic', 'Token', 'PushMagic', 'UnlockToken', 'AwaitingConfiguration', 'CommandUUID',
  'ErrorChain', 'EnrollmentID', 'UserID', 'OSVersion', 'SerialNumber', 'DeviceName', 'QueryResponses', 'RequestType',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '', ' UDID', 'udid', 'Ü∂ÎD', 'k'.repeat(5000),
];
const ENUM_VALUES = [
  'Authenticate', 'TokenUpdate', 'CheckOut', 'UserAuthenticate', 'DeclarativeManagement', 'GetBootstrapToken', 'authenticate', 'TOKENUPDATE',
  'Idle', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow', 'idle', 'Idle ', ' Acknowledged', 'Sleeping', '', '💥',
];
const STRINGS = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(...ENUM_VALUES),
  fc.constantFrom('com.apple.mgmt.External.someone-else', '00000000-0000-0000-0000-000000000000', '../../etc/passwd', "' OR 1=1 --", '%00', '${jndi:x}', '\u202e'),
);

const leafSpec: fc.Arbitrary<ValueSpec> = fc.oneof(
  { weight: 4, arbitrary: STRINGS.map((s) => ({ string: s })) },
  { weight: 1, arbitrary: fc.record({ huge: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1_000, max: 60_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 180_000 }) }), char: fc.constantFrom('x', 'é', '😀', '<', '&') }) },
  { weight: 2, arbitrary: fc.oneof(fc.integer().map(String), fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }).map(String),
    fc.constantFrom('9007199254740993', '18446744073709551616', '1e400', '1e+300', '0x10', '-0', ' 12 ', '12abc', '1.5', 'NaN', '', '+7')).map((integer) => ({ integer })) },
  { weight: 1, arbitrary: fc.oneof(fc.double().map(String), fc.constantFrom('1e999', '-1e999', 'nan', 'inf', '.5', '5.', '1e-400', 'abc')).map((real) => ({ real })) },
  { weight: 1, arbitrary: fc.boolean().map((bool) => ({ bool })) },
  { weight: 2, arbitrary: fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')), fc.constantFrom('!!!', '====', 'QQ', '')).map((data) => ({ data })) },
  { weight: 1, arbitrary: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom('0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00Z', '2024-02-30T25:61:61Z', 'yesterday', '1970-01-01', '')).map((date) => ({ date })) },
  { weight: 1, arbitrary: fc.constant({ null: true as const }) },
  { weight: 1, arbitrary: fc.record({ deep: fc.oneof(fc.integer({ min: 2, max: 70 }), fc.integer({ min: 60, max: 3_000 })), kind: fc.constantFrom('array' as const, 'dict' as const) }) },
);

const valueSpec: fc.Arbitrary<ValueSpec> = fc.letrec<{ v: ValueSpec }>((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    { weight: 6, arbitrary: leafSpec },
    { weight: 1, arbitrary: fc.array(tie('v'), { maxLength: 4 }).map((array) => ({ array })) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 12 })), tie('v')), { maxLength: 4 }).map((dict) => ({ dict })) },
    // ErrorChain-shaped, so the checks inside each item are reached.
    { weight: 1, arbitrary: fc.array(fc.record({ ErrorCode: tie('v'), ErrorDomain: tie('v') }), { minLength: 1, maxLength: 3 })
      .map((items) => ({ array: items.map((i) => ({ dict: [['ErrorCode', i.ErrorCode], ['ErrorDomain', i.ErrorDomain]] as Array<[string, ValueSpec]> })) })) },
  ),
})).v;

const dictEdit: fc.Arbitrary<DictEdit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...KEYS), value: valueSpec }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom(...KEYS), inside: fc.constantFrom('QueryResponses', 'ErrorChain'), value: valueSpec }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.constantFrom('MessageType', 'Status'), value: fc.constantFrom(...ENUM_VALUES).map((string) => ({ string })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('drop' as const), key: fc.constantFrom(...KEYS) }) },
);

/** Byte sequences that are not UTF-8, or are but are not XML characters. */
const BAD_BYTES = ['ff', 'fe', 'c0af', 'c328', 'eda080', 'edbfbf', 'f4908080', 'e282', '00', '01', 'efbfbe', 'efbfbf', '0c'];
// A relative position in the body; fast-check favours the ends, which for a truncation means an empty body every time.
const at = fc.integer({ min: 1, max: 999 }).map((n) => n / 1000);

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('truncate' as const), at }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('insertBytes' as const), at, hex: fc.oneof(fc.constantFrom(...BAD_BYTES), fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex'))) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flipByte' as const), at, byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('inject' as const), into: fc.constantFrom('string' as const, 'key' as const), nth: fc.nat(20),
    text: fc.constantFrom('\u0000', '&#0;', '&#x0;', '&#xD800;', '&#xDFFF;', '&#xFFFE;', '\u0001', '\u001f', '\uffff', '\ufffe', '&amp;', '&lt;', ']]>', '<![CDATA[x]]>', '<!-- c -->', '&#65;', '\u2028', '💥') }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('replaceContent' as const), element: fc.constantFrom('string' as const, 'integer' as const, 'real' as const, 'date' as const, 'data' as const, 'true' as const, 'false' as const), nth: fc.nat(20),
    text: fc.constantFrom('', ' ', '1e400', '0x10', '99999999999999999999999', '12abc', 'NaN', 'yes', '2024-02-30T25:61:61Z', '!!!', 'QUJD', '<dict/>', 'x<!-- -->y') }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('duplicateKey' as const), nth: fc.nat(20), value: valueSpec, before: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('prolog' as const), trick: fc.constantFrom(...(Object.keys(ENTITY_TRICKS) as EntityTrick[])) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'binary' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('encoding' as const), as: fc.constantFrom('utf16le' as const, 'utf16be' as const, 'latin1' as const, 'bom' as const, 'declared-utf16' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('noise' as const), at,
    text: fc.constantFrom('<!-- comment -->', '<![CDATA[x]]>', '<?pi x?>', '   \n\t', '<foo/>', '</dict>', '<dict>', '<key>k</key>', '<plist>', '>', '<', '&', '"', '\r\n') }) },
  { weight: 2, arbitrary: fc.constantFrom(
    ['<dict>', '<array>'], ['</dict>', ''], ['<string>', '<String>'], ['<key>', '<key >'], ['<plist version="1.0">', '<plist version="99">'],
    ['<plist version="1.0">', '<plist xmlns="urn:evil">'], ['</plist>', '</plist><plist><dict/></plist>'], ['<dict>', '<dict/><dict>'], ['<true/>', '<false/>'],
  ).map(([from, to]) => ({ op: 'retag' as const, from: from!, to: to! })) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('repeat' as const), at, length: fc.integer({ min: 1, max: 400 }), times: fc.integer({ min: 2, max: 200 }) }) },
);

export function recipe(seedCount: number): fc.Arbitrary<Recipe> {
  return fc.record({
    seed: fc.nat(seedCount - 1),
    dictEdits: fc.array(dictEdit, { maxLength: 3 }),
    byteEdits: fc.array(byteEdit, { maxLength: 2 }),
  }).filter((r) => r.dictEdits.length + r.byteEdits.length > 0);
}
