// Apple's documented Apps and Books examples (test/fixtures/apps-and-books, each with its source URL), and a
// comparison of JSON shapes: the same keys, with values of the same types.
import fs from 'node:fs';
import path from 'node:path';

const DIR = path.join(import.meta.dirname, '..', 'fixtures', 'apps-and-books');

export interface AppleExample {
  source: string;
  request: { method: string; path: string; query?: Record<string, string>; headers?: Record<string, string>; body?: any } | null;
  response: { status: number; body: any } | null;
  notes?: string;
}

export function appleExample(name: string): AppleExample {
  return JSON.parse(fs.readFileSync(path.join(DIR, name.endsWith('.json') ? name : `${name}.json`), 'utf8')) as AppleExample;
}

/** Every example file (errors.json, the error table, is not one). */
export function appleExampleNames(): string[] {
  return fs.readdirSync(DIR).filter((f) => f.endsWith('.json') && f !== 'errors.json').map((f) => f.replace(/\.json$/, '')).sort();
}

export interface AppleErrorRow { errorNumber: number; httpStatus: number | null; kind: 'synchronous' | 'asynchronous' | 'both' | 'v1'; message?: string }

export function appleErrors(): AppleErrorRow[] {
  return (JSON.parse(fs.readFileSync(path.join(DIR, 'errors.json'), 'utf8')) as { errors: AppleErrorRow[] }).errors;
}

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Where `ours` differs in shape from Apple's `apple`: a key one has and the other lacks, or a value of another
 * type, as `path: what`. Each of our array elements is compared with the Apple element it is closest to (Apple's
 * lists mix kinds: a user and a device assignment, a Registered and an Associated user).
 * `optional` keys (dotted paths, `[]` for array elements) may be missing on either side — fields Apple sends
 * only sometimes (tokenExpirationDate near expiry, nextPageIndex before the last page, …). With `subset`, ours
 * may leave out any of Apple's keys (the store lookup's long records) but may not add or retype one.
 */
export function shapeDifferences(apple: unknown, ours: unknown, opts: { optional?: string[]; subset?: boolean } = {}, at = ''): string[] {
  const optional = new Set(opts.optional ?? []);
  const ta = typeOf(apple);
  const to = typeOf(ours);
  if (ta !== to) return [`${at || '(root)'}: Apple has ${ta}, ours ${to}`];
  if (ta === 'array') {
    const examples = apple as unknown[];
    if (examples.length === 0) return [];
    return (ours as unknown[]).flatMap((o) => examples.map((e) => shapeDifferences(e, o, opts, `${at}[]`)).sort((x, y) => x.length - y.length)[0]!);
  }
  if (ta !== 'object') return [];
  const a = apple as Record<string, unknown>;
  const o = ours as Record<string, unknown>;
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(o)])) {
    const p = at ? `${at}.${k}` : k;
    if (!(k in o)) { if (!optional.has(p) && !opts.subset) out.push(`${p}: missing in ours`); continue; }
    if (!(k in a)) { if (!optional.has(p)) out.push(`${p}: not in Apple's example`); continue; }
    out.push(...shapeDifferences(a[k], o[k], opts, p));
  }
  return out;
}
