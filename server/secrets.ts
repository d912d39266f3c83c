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

/** Reads a secret from the environment, else from DATA_DIR, else generates it there (development set-up). */
export async function loadOrCreateFileSecret(opts: { value?: string; dataDir: string; file: string; generate: () => string; log: Logger; what: string; announce?: (value: string) => void }): Promise<string> {
  if (opts.value) return opts.value;
  const file = path.join(opts.dataDir, opts.file);
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(opts.dataDir, { recursive: true });
  const value = opts.generate();
  try {
    await fs.writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' });
    opts.log.warn({ file }, `generated ${opts.what}`);
    opts.announce?.(value);
    return value;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await fs.readFile(file, 'utf8')).trim();
    throw err;
  }
}
