// Apps and Books location token (sToken): base64 of JSON {"token","expDate","orgName"}, e.g.
// {"token":"…","expDate":"2030-11-08T22:33:22+0000","orgName":"ORG12345"}. The whole base64 string is what
// goes into `Authorization: Bearer …`; the decoded fields are only for validating and showing the admin.

export type STokenErrorReason = 'notBase64' | 'notJson' | 'missingField' | 'badDate' | 'expired';

export class STokenError extends Error {
  readonly reason: STokenErrorReason;
  constructor(reason: STokenErrorReason, message: string) {
    super(message);
    this.name = 'STokenError';
    this.reason = reason;
  }
}

export interface SToken {
  /** The exact string the admin uploaded (trimmed): this is the Bearer credential. */
  raw: string;
  token: string;
  expDate: Date;
  orgName: string;
}

const DAY_MS = 86_400_000;

/** Apple writes offsets without a colon (`+0000`), which not every Date parser accepts. */
const APPLE_DATE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)(Z|[+-]\d{2}:?\d{2})$/;

/** Parses Apple's `2030-11-08T22:33:22+0000` (also accepts `Z` and `+00:00`). Returns undefined if malformed. */
export function parseAppleDate(s: string): Date | undefined {
  const m = APPLE_DATE.exec(s.trim());
  if (!m) return undefined;
  let offset = m[2]!;
  if (offset !== 'Z' && !offset.includes(':')) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  const d = new Date(`${m[1]}${offset}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Formats a date the way Apple does in sTokens and `tokenExpirationDate`: `2030-11-08T22:33:22+0000`. */
export function formatAppleDate(d: Date): string {
  return `${d.toISOString().slice(0, 19)}+0000`;
}

/** Builds an sToken string (used by the simulator and tests; real tokens come from Apple Business/School Manager). */
export function encodeSToken(fields: { token: string; expDate: Date; orgName: string }): string {
  const json = JSON.stringify({ token: fields.token, expDate: formatAppleDate(fields.expDate), orgName: fields.orgName });
  return Buffer.from(json, 'utf8').toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function parseSToken(raw: string, now: Date = new Date()): SToken {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw new STokenError('notBase64', 'sToken is empty');
  }
  // Tokens downloaded as a .vpptoken file sometimes carry line breaks; they are not part of the credential.
  const compact = raw.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.length % 4 === 1) {
    throw new STokenError('notBase64', 'sToken is not base64: it must be the contents of the .vpptoken file as downloaded');
  }
  const decoded = Buffer.from(compact, 'base64').toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoded);
  } catch {
    throw new STokenError('notJson', 'sToken does not decode to JSON: expected base64 of {"token","expDate","orgName"}');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new STokenError('notJson', 'sToken decodes to JSON that is not an object: expected {"token","expDate","orgName"}');
  }
  const obj = parsed as Record<string, unknown>;
  const missing = ['token', 'expDate', 'orgName'].filter((k) => typeof obj[k] !== 'string' || (obj[k] as string).trim() === '');
  if (missing.length > 0) {
    throw new STokenError('missingField', `sToken is missing ${missing.join(', ')} (each must be a non-empty string)`);
  }
  const expDate = parseAppleDate(obj.expDate as string);
  if (!expDate) {
    throw new STokenError('badDate', `sToken expDate "${String(obj.expDate)}" is not a date like 2030-11-08T22:33:22+0000`);
  }
  if (expDate.getTime() <= now.getTime()) {
    throw new STokenError(
      'expired',
      `sToken for ${String(obj.orgName)} expired on ${expDate.toISOString()}: download a new one from Apple Business/School Manager`,
    );
  }
  return { raw: compact, token: obj.token as string, expDate, orgName: obj.orgName as string };
}

/** Whole days left before the token expires (0 on its last day, negative once expired). Callers warn under 30. */
export function daysUntilExpiry(t: SToken, now: Date = new Date()): number {
  return Math.floor((t.expDate.getTime() - now.getTime()) / DAY_MS);
}
