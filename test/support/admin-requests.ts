// Generated admin API requests, one operation of the OpenAPI document (GET /api/v1/openapi.json) at a
// time: path parameters (ids that exist, and hostile strings), query strings, and bodies shaped by the
// operation's schema with wrong types, deep nesting, huge strings, NUL, lone surrogates and prototype keys.
// A request is plain data, so fast-check prints and shrinks it; `toHttp` turns it into what is sent.
import fc from 'fast-check';
import { isOpen } from './known-open-findings.js';

type Schema = { type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; enum?: unknown[]; items?: Schema; $ref?: string };
interface OpenApiDocument {
  paths: Record<string, Record<string, { parameters?: Array<{ name: string; in: string }>; requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
  components?: { schemas?: Record<string, Schema> };
}

export interface Operation { method: string; path: string; pathParams: string[]; queryParams: string[]; body?: Schema; documented: boolean }

/** Every path and method of the document, plus for each path one method it does not list. */
export function operationsOf(doc: OpenApiDocument): Operation[] {
  const resolve = (s?: Schema): Schema | undefined => (s?.$ref ? doc.components?.schemas?.[s.$ref.split('/').pop()!] : s);
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    const pathParams = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    for (const [method, op] of Object.entries(methods)) {
      ops.push({
        method: method.toUpperCase(), path, pathParams, documented: true,
        queryParams: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name),
        body: resolve(op.requestBody?.content?.['application/json']?.schema),
      });
    }
    const missing = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].find((m) => !(m.toLowerCase() in methods));
    if (missing) ops.push({ method: missing, path, pathParams, queryParams: [], documented: false });
  }
  return ops;
}

/** Every property name the document mentions: the keys a generated body is made of. */
export function propertyNames(doc: OpenApiDocument): string[] {
  const names = new Set<string>();
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (o.properties && typeof o.properties === 'object') Object.keys(o.properties).forEach((k) => names.add(k));
    Object.values(o).forEach(walk);
  };
  walk(doc);
  return [...names].sort();
}

/** A JSON value as data: objects as entries (so duplicate and __proto__ keys survive), numbers as raw text when odd. */
export type JsonSpec = null | boolean | number | string | { number: string } | JsonSpec[] | { entries: Array<[string, JsonSpec]> };
export type BodySpec =
  | { json: JsonSpec } | { text: string } | { hex: string }
  | { deep: number; kind: 'array' | 'object' } | { hugeString: number };
export type ParamValue = { known: number } | { text: string } | { raw: string };

export interface AdminRequest { op: number; params: ParamValue[]; query: Array<[string, string]>; body: BodySpec | null; contentType: string | null }

export function jsonText(v: JsonSpec): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if ('number' in v) return v.number;
  return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`;
}

export function bodyBytes(b: BodySpec): Buffer {
  if ('json' in b) return Buffer.from(jsonText(b.json));
  if ('text' in b) return Buffer.from(b.text);
  if ('hex' in b) return Buffer.concat([Buffer.from('{"name":"'), Buffer.from(b.hex, 'hex'), Buffer.from('"}')]);
  if ('deep' in b) return Buffer.from(b.kind === 'array' ? `${'['.repeat(b.deep)}${']'.repeat(b.deep)}` : `${'{"a":'.repeat(b.deep)}1${'}'.repeat(b.deep)}`);
  return Buffer.from(`{"name":"${'x'.repeat(b.hugeString)}","email":"a@b.example"}`);
}

// Percent-encodes every byte outside RFC 3986's unreserved set; lone surrogates go out as U+FFFD, as any client's would.
const encodeSegment = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

/** Method, URL path with query, headers and body of a request; `pools` holds existing ids per parameter name. */
export function toHttp(ops: Operation[], pools: Record<string, string[]>, r: AdminRequest) {
  const op = ops[r.op % ops.length]!;
  let i = 0;
  const path = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const p = r.params[i++] ?? { text: 'x' };
    if ('raw' in p) return p.raw;
    const pool = pools[name] ?? [];
    return encodeSegment('known' in p ? pool[p.known % Math.max(pool.length, 1)] ?? 'none' : p.text);
  });
  const query = r.query.map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`).join('&');
  const body = r.body ? bodyBytes(r.body) : undefined;
  return { op, method: op.method, url: `/api/v1${path}${query ? `?${query}` : ''}`, body, contentType: r.contentType };
}

// ---- generators ----

const SPECIAL_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', 'k'.repeat(300)];
const SPECIAL_STRINGS = ['', ' ', '\u0000', 'a\u0000b', '\ud800', 'x\udfff', '😀', '\u202e', "' OR 1=1 --", '../../etc/passwd', '%00', 'null', '1e999', '<script>', '${jndi:ldap://x}'];
const NUMBERS = ['1e999', '-0', '123456789012345678901234567890', '1.5', '-1', '0x10', 'NaN'];

const anyJson: fc.Arbitrary<JsonSpec> = fc.letrec<{ v: JsonSpec }>((tie) => ({
  v: fc.oneof({ depthSize: 'small' },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 20 }), fc.constantFrom(...SPECIAL_STRINGS), fc.constantFrom(...NUMBERS).map((number) => ({ number })),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...SPECIAL_KEYS)), tie('v')), { maxLength: 4 }).map((entries) => ({ entries })),
  ),
})).v;

function stringLike(known: string[]): fc.Arbitrary<JsonSpec> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...known) },
    // Plausible new values (an id, an email address), so that writes get accepted too.
    { weight: 2, arbitrary: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._@-]{1,24}$/), fc.emailAddress()) },
    { weight: 3, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 2, arbitrary: fc.constantFrom(...SPECIAL_STRINGS) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 20_000 }).map((n) => 'y'.repeat(n)) },
  );
}

/** Values for a schema: mostly the right type (strings often ids that exist), sometimes any JSON at all. */
function forSchema(s: Schema | undefined, keys: string[], known: string[]): fc.Arbitrary<JsonSpec> {
  const type = Array.isArray(s?.type) ? s.type[0] : s?.type;
  let right: fc.Arbitrary<JsonSpec>;
  if (s?.enum) right = fc.constantFrom(...(s.enum as JsonSpec[]));
  else if (type === 'string') right = stringLike(known);
  else if (type === 'integer' || type === 'number') right = fc.oneof(fc.integer({ min: -5, max: 20_000 }), fc.integer(), fc.constantFrom(...NUMBERS).map((number) => ({ number })));
  else if (type === 'boolean') right = fc.boolean();
  else if (type === 'object' || s?.properties) {
    const props = Object.entries(s?.properties ?? {});
    const declared = props.length > 0
      ? fc.tuple(...props.map(([k, p]) => fc.option(forSchema(p, keys, known).map((v) => [k, v] as [string, JsonSpec]), { freq: 4 })))
      : fc.constant([] as Array<[string, JsonSpec] | null>);
    const required = (s?.required ?? []).filter((k) => !(s?.properties ?? {})[k]).map((k) => fc.tuple(fc.constant(k), stringLike(known)));
    const extra = fc.array(fc.tuple(fc.constantFrom(...keys, ...SPECIAL_KEYS), anyJson), { maxLength: 2 });
    right = fc.tuple(declared, fc.tuple(...required), fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: extra }))
      .map(([d, r, e]) => ({ entries: [...d.filter((x): x is [string, JsonSpec] => x !== null), ...r, ...e] }));
  } else right = anyJson;
  return fc.oneof({ weight: 5, arbitrary: right }, { weight: 1, arbitrary: anyJson });
}

// While deep admin JSON still gets 500 the generic fuzz stays below the depth that breaks (test of its own).
const MAX_DEPTH = isOpen('admin-deep-json-500') ? 1_000 : 100_000;

function body(op: Operation, keys: string[], known: string[]): fc.Arbitrary<BodySpec | null> {
  const shaped = forSchema(op.body ?? { type: 'object' }, keys, known).map((json) => ({ json }));
  return fc.oneof(
    { weight: op.body ? 8 : 2, arbitrary: shaped },
    { weight: 2, arbitrary: anyJson.map((json) => ({ json })) },
    { weight: 2, arbitrary: fc.constantFrom('', 'null', '"text"', '1', '[]', '{', '{"a":', '{"a":1,"a":2}', '{"__proto__":{"polluted":1}}',
      '{"constructor":{"prototype":{"polluted":1}}}', 'not json', '{"a":1} trailing', '\ufeff{}', '{"a":"\\u0000"}', '{"a":"\\ud800"}').map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.constantFrom('ff', 'c328', 'eda080', '00', 'c0af').map((hex) => ({ hex })) },
    { weight: 1, arbitrary: fc.record({ deep: fc.integer({ min: 2, max: MAX_DEPTH }), kind: fc.constantFrom('array' as const, 'object' as const) }) },
    { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 1_200_000 }).map((hugeString) => ({ hugeString })) },
    { weight: op.body || op.method === 'POST' ? 2 : 12, arbitrary: fc.constant(null) },
  );
}

const param: fc.Arbitrary<ParamValue> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(10).map((known) => ({ known })) },
  { weight: 3, arbitrary: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom(...SPECIAL_STRINGS.filter(Boolean)), fc.integer({ min: 200, max: 6_000 }).map((n) => 'z'.repeat(n))).map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.constantFrom('%zz', '%ED%A0%80', '%C0%AF', '..', '%2e%2e', 'a%2Fb', '%00', '%', '%%', ';', 'a?b=c').map((raw) => ({ raw })) },
);

function query(op: Operation, keys: string[], known: string[]): fc.Arbitrary<Array<[string, string]>> {
  const name = fc.oneof(
    { weight: 3, arbitrary: op.queryParams.length > 0 ? fc.constantFrom(...op.queryParams, 'graceMs') : fc.constant('graceMs') },
    { weight: 1, arbitrary: fc.constantFrom(...keys, '__proto__', 'constructor', 'userId[a]', 'userId[]', 'a.b') },
  );
  const value = fc.oneof(fc.constantFrom(...known), fc.string({ maxLength: 20 }), fc.constantFrom('', '0', '-1', '1.5', '1e999', ...SPECIAL_STRINGS));
  const nulFree = isOpen('admin-nul-in-query-500') ? value.filter((v) => !v.includes('\u0000')) : value;
  const pairs = fc.array(fc.tuple(name, nulFree), { maxLength: 3 });
  // Repeated names have a test of their own while the server still ignores them.
  return isOpen('admin-repeated-query-accepted') ? pairs.map((ps) => ps.filter(([k], i) => ps.findIndex(([k2]) => k2 === k) === i)) : pairs;
}

const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=utf-16',
  'text/plain', 'application/x-www-form-urlencoded', 'application/merge-patch+json'];

export function adminRequests(ops: Operation[], keys: string[], known: string[]): fc.Arbitrary<AdminRequest> {
  // Mostly the documented operations; the methods a path does not list only need to be refused.
  const weighted = ops.flatMap((o, i) => Array<number>(o.documented ? 4 : 1).fill(i));
  return fc.constantFrom(...weighted).chain((i) => {
    const op = ops[i]!;
    return fc.record({
      op: fc.constant(i),
      params: fc.array(param, { minLength: op.pathParams.length, maxLength: op.pathParams.length }),
      query: fc.oneof({ weight: 3, arbitrary: fc.constant([] as Array<[string, string]>) }, { weight: 1, arbitrary: query(op, keys, known) }),
      body: body(op, keys, known),
      contentType: fc.oneof({ weight: 8, arbitrary: fc.constant('application/json') }, { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) }, { weight: 1, arbitrary: fc.constant(null) }),
    });
  });
}
