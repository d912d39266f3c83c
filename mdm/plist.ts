import { build, parse } from 'plist';
import { clip } from './clip.js';
import { readPlainPlist } from './plist-reader.js';

export class PlistError extends Error {
  override name = 'PlistError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

// The one DOCTYPE shape Apple devices send (and plist.build writes), plus the bare and SYSTEM forms.
// Anything else — above all an internal subset `[...]` — is refused before the XML parser sees it.
const ALLOWED_DOCTYPE =
  /^<!DOCTYPE\s+plist(?:\s+PUBLIC\s+(?:"[^"]*"|'[^']*')\s+(?:"[^"]*"|'[^']*')|\s+SYSTEM\s+(?:"[^"]*"|'[^']*'))?\s*>/;
// Without a DTD only the five predefined entities and character references are well-formed XML.
const UNDECLARED_ENTITY_REF = /&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/;

/**
 * XML plist body → its top-level dict. `<data>` values come back as Buffers, `<date>` as Dates.
 * Anything that is not a well-formed XML plist with a `<dict>` root throws a PlistError.
 */
export function parsePlistDict(body: Buffer | string): Record<string, unknown> {
  return checkedPlistDict(body, (text) => readPlainPlist(text) ?? parseQuietly(text));
}

/** parsePlistDict read by the plist package alone: the reference plist-reader.ts must agree with (tests). */
export function referencePlistDict(body: Buffer | string): Record<string, unknown> {
  return checkedPlistDict(body, parseQuietly);
}

function checkedPlistDict(body: Buffer | string, read: (text: string) => unknown): Record<string, unknown> {
  let text: string;
  if (typeof body === 'string') {
    text = body;
  } else {
    if (body.length === 0) throw new PlistError('empty body: expected an XML plist');
    if (body.subarray(0, 6).toString('latin1') === 'bplist') {
      throw new PlistError('binary plists are not accepted (bplist magic found); send an XML plist');
    }
    try {
      text = utf8.decode(body);
    } catch {
      throw new PlistError('body is not valid UTF-8 text');
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const start = text.search(/\S/);
  if (start === -1) throw new PlistError('empty body: expected an XML plist');
  // plist.parse would otherwise treat these as binary or OpenStep input.
  if (text.startsWith('bplist', start)) {
    throw new PlistError('binary plists are not accepted (bplist magic found); send an XML plist');
  }
  if (text[start] !== '<') throw new PlistError('not an XML plist: body does not start with "<"');

  if (/<!ENTITY/i.test(text)) {
    throw new PlistError('XML entity declarations (<!ENTITY) are not accepted (entity expansion / external entity risk)');
  }
  const doctypes = [...text.matchAll(/<!DOCTYPE/gi)];
  if (doctypes.length > 1) throw new PlistError('more than one DOCTYPE declaration');
  if (doctypes.length === 1) {
    const rest = text.slice(doctypes[0].index);
    const m = ALLOWED_DOCTYPE.exec(rest);
    if (!m) {
      const close = rest.indexOf('>');
      const decl = close === -1 ? rest : rest.slice(0, close + 1);
      if (decl.includes('[')) throw new PlistError('DOCTYPE with an internal DTD subset is not accepted');
      throw new PlistError('unsupported DOCTYPE: only <!DOCTYPE plist PUBLIC "…" "…"> is accepted');
    }
  }
  if (UNDECLARED_ENTITY_REF.test(text)) {
    throw new PlistError('malformed XML plist: reference to an undeclared entity or a bare "&"');
  }
  checkXmlCharacters(text);
  checkNesting(text);
  checkScalars(text);

  const value = read(text);
  if (!isPlainDict(value)) {
    throw new PlistError(`plist root is ${describe(value)}, expected <dict>`);
  }
  return normalise(value, '') as Record<string, unknown>;
}

/** XML plist text for a dict; Buffer/Uint8Array values become `<data>`, Dates `<date>`. */
export function buildPlist(value: Record<string, unknown>): string {
  return build(value as Parameters<typeof build>[0]);
}

// @xmldom/xmldom (inside plist) reports every problem with console.error unless given an onError handler,
// which plist.parse does not let us pass. Device input must not write to our logs, and its non-fatal
// "errors" (e.g. a mismatched structure it repaired) must reject the body, so capture them for the
// duration of this synchronous call.
function parseQuietly(text: string): unknown {
  const xmlErrors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => {
    const first = String(args[0] ?? '');
    if (first.startsWith('[xmldom error]') || first.startsWith('[xmldom fatalError]')) {
      xmlErrors.push(first.replace(/^\[xmldom \w+\]\s*/, '').trim());
    }
  };
  let value: unknown;
  try {
    value = parse(text);
  } catch (err) {
    const reason = xmlErrors[0] ?? (err instanceof Error ? err.message : String(err));
    throw new PlistError(`malformed XML plist: ${oneLine(reason)}`);
  } finally {
    console.error = original;
  }
  if (xmlErrors.length > 0) throw new PlistError(`malformed XML plist: ${oneLine(xmlErrors[0])}`);
  return value;
}

// XML 1.0 forbids these characters, raw or as references; the parser lets them through and the database
// would then refuse them (NUL in text, lone surrogates in JSON), so they are refused here, at the boundary.
const ILLEGAL_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const CHAR_REF = /&#(?:x([0-9a-fA-F]+)|([0-9]+));/g;
/** Deeper than any real MDM message; bounds recursion in everything that walks a parsed plist. */
export const MAX_PLIST_DEPTH = 64;

function legalCodePoint(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

function checkXmlCharacters(text: string): void {
  const raw = ILLEGAL_XML_CHAR.exec(text);
  if (raw) throw new PlistError(`malformed XML plist: character U+${raw[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`);
  for (const m of text.matchAll(CHAR_REF)) {
    const cp = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number.parseInt(m[2]!, 10);
    if (!legalCodePoint(cp)) throw new PlistError(`malformed XML plist: character reference ${m[0]} names a character XML does not allow`);
  }
}

// Every scan here stops at the next "<" or ">" ([^<>]*), so each is linear in the body: a pattern that can
// run to the end of the text from every "<dict" (as [^>]*? can when no ">" follows) is quadratic, and a
// signed 2 MiB body of "<dict <dict …" held the event loop for minutes.
function checkNesting(text: string): void {
  let depth = 0;
  for (const m of text.matchAll(/<(\/?)(dict|array)\b([^<>]*)>/g)) {
    if (m[3]!.endsWith('/')) continue;
    depth += m[1] === '/' ? -1 : 1;
    if (depth > MAX_PLIST_DEPTH) throw new PlistError(`plist nested deeper than ${MAX_PLIST_DEPTH} levels`);
  }
}

// plist.parse reads <integer> with parseInt, <real> with parseFloat and <date> with new Date, so "1e400" is
// 1, "0x10" is 0 and "2024" a date; of a <key> it keeps the first text node only ("Sta<!---->tus" is "Sta",
// "<key><dict/></key>" is "null"), it drops elements inside <string> and <data>, and a key without a value
// becomes "". Apple's format allows none of these, so they are refused here. (A CDATA section holding plist
// markup could be misread by this scan; Apple's writers escape text and never emit CDATA.)
const SCALAR = /<(key|string|integer|real|date|data)(?:\s[^<>]*)?>([^<]*)(<\/\1\s*>|<!--|<!\[CDATA\[)?/g;
const STRICT: Record<string, { form: RegExp; says: string }> = {
  integer: { form: /^\s*[+-]?\d+\s*$/, says: 'is not a valid number' },
  real: { form: /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/, says: 'is not a valid number' },
  date: { form: /^\s*\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\s*$/, says: 'is not a valid <date>' },
};
const KEY_WITHOUT_VALUE = /<key(?:\s[^<>]*)?>([^<]*)<\/key\s*>\s*<\/dict\s*>|<key\s*\/>\s*<\/dict\s*>/;

function checkScalars(text: string): void {
  let key: { name: string; end: number } | undefined;
  for (const m of text.matchAll(SCALAR)) {
    const [whole, tag, content, close] = m as unknown as [string, string, string, string | undefined];
    const end = m.index + whole.length;
    // A "<" that neither closes the element nor opens a comment or CDATA (in a <string>) is markup inside a
    // scalar. At the end of the text the XML parser's "unclosed element" says more, so it is left to it.
    if (close === undefined ? end < text.length : close.startsWith('<!') && tag !== 'string') {
      throw new PlistError(`malformed XML plist: <${tag}> may hold only text`);
    }
    if (close === undefined) continue;
    if (tag === 'key') { key = { name: content, end }; continue; }
    const rule = STRICT[tag];
    if (rule && !rule.form.test(content)) {
      const name = key && /^\s*$/.test(text.slice(key.end, m.index)) ? clip(key.name, 80) : `an <${tag}> value`;
      throw new PlistError(`malformed XML plist: ${name} ${rule.says}`);
    }
  }
  const dangling = KEY_WITHOUT_VALUE.exec(text);
  if (dangling) throw new PlistError(`malformed XML plist: key ${clip(dangling[1] ?? '', 80)} has no value`);
}

function oneLine(s: string): string {
  return clip(s.replace(/\s+/g, ' ').trim(), 200);
}

function isPlainDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an <array>';
  if (v instanceof Uint8Array) return '<data>';
  if (v instanceof Date) return 'a <date>';
  if (typeof v === 'string') return 'a <string>';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return 'empty';
}

// plist yields Uint8Array for <data> and NaN / Invalid Date for unparsable <integer>, <real>, <date>
// instead of failing; callers want Buffers and a clear rejection.
function normalise(v: unknown, path: string): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new PlistError(`malformed XML plist: ${clip(path, 80) || 'value'} is not a valid number`);
    return v;
  }
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new PlistError(`malformed XML plist: ${clip(path, 80) || 'value'} is not a valid <date>`);
    return v;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = normalise(v[i], `${path}[${i}]`);
    return v;
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = normalise(o[k], path ? `${path}.${k}` : k);
    return o;
  }
  return v;
}

/**
 * JSON (an admin's raw command) → plist values. JSON has no <data> or <date>, so they are written as one-key
 * objects: `{"$data": "<base64>"}` becomes <data>, `{"$date": "<ISO 8601>"}` becomes <date>; everything else
 * maps as JSON does (number → <integer> when whole, else <real>). Throws PlistError naming the path of a bad value.
 */
export function plistValueFromJson(value: unknown, path = ''): unknown {
  if (Array.isArray(value)) return value.map((v, i) => plistValueFromJson(v, `${path}[${i}]`));
  if (value === null) throw new PlistError(`${path || 'value'}: null has no plist type; leave the key out`);
  if (typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const only = entries.length === 1 ? entries[0]! : undefined;
  if (only && only[0] === '$data') {
    const b64 = only[1];
    if (typeof b64 !== 'string' || !BASE64.test(b64)) throw new PlistError(`${path}: {"$data": …} needs a standard base64 string`);
    return Buffer.from(b64, 'base64');
  }
  if (only && only[0] === '$date') {
    const iso = only[1];
    const at = typeof iso === 'string' && ISO_DATE.test(iso) ? new Date(iso) : undefined;
    if (!at || Number.isNaN(at.getTime())) throw new PlistError(`${path}: {"$date": …} needs an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z`);
    return at;
  }
  if (entries.some(([k]) => k === '$data' || k === '$date')) throw new PlistError(`${path}: $data and $date stand alone in their object`);
  return Object.fromEntries(entries.map(([k, v]) => [k, plistValueFromJson(v, path ? `${path}.${k}` : k)]));
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
