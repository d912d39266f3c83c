import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from './log.js';

// Private keys, sTokens and notification tokens are stored encrypted (AES-256-GCM) with SECRETS_KEY, so a
// database dump alone does not hand out the server's identity or the organisation's VPP token.
export class SecretBox {
  private readonly key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('SECRETS_KEY must decode to 32 bytes (64 hex characters or 44 base64 characters)');
    this.key = key;
  }
  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }
  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split(':');
    if (version !== 'v1' || !iv || !tag || body === undefined) throw new Error('stored secret is not in the expected format');
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('cannot decrypt a stored secret: SECRETS_KEY differs from the key it was stored with');
    }
  }
}

export function decodeKey(raw: string): Buffer {
  const trimmed = raw.trim();
  return /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
}

/**
 * DATA_DIR holds the secrets key, the admin token and the embedded database: only the server's user may enter
 * it. A directory someone made readable by others is tightened (and said so), not trusted as it is.
 */
export async function ensurePrivateDir(dir: string, log: Logger): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await makePrivate(dir, 0o700, log);
}

/** Removes group and other permissions from `file`, warning when it had any. */
export async function makePrivate(file: string, mode: number, log: Logger): Promise<void> {
  const found = (await fs.stat(file)).mode & 0o777;
  if ((found & 0o077) === 0) return;
  await fs.chmod(file, mode);
  log.warn({ file, was: found.toString(8), now: mode.toString(8) }, 'made private: it was open to other users of this machine');
}

/** Reads a secret from the environment, else from DATA_DIR, else generates it there (development set-up). */
export async function loadOrCreateFileSecret(opts: { value?: string; dataDir: string; file: string; generate: () => string; log: Logger; what: string; announce?: (value: string, file: string) => void }): Promise<string> {
  if (opts.value) return opts.value;
  const file = path.join(opts.dataDir, opts.file);
  await ensurePrivateDir(opts.dataDir, opts.log);
  try {
    const value = (await fs.readFile(file, 'utf8')).trim();
    await makePrivate(file, 0o600, opts.log);
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = opts.generate();
  try {
    await fs.writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' });
    // The log stream may be collected anywhere: it says where the secret is, never what it is.
    opts.log.warn({ file }, `generated ${opts.what}`);
    opts.announce?.(value, file);
    return value;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await fs.readFile(file, 'utf8')).trim();
    throw err;
  }
}
