// A simulated service's state kept in one JSON file, so a restarted sandbox is the same Apple it was: read
// once at start, written after changes (debounced: a burst of requests is one write) and on close. Every
// write goes to a temporary file that is then renamed over the old one, so a crash mid-write leaves the
// previous state, never half of one.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import type { z } from 'zod';

export class StateFileError extends Error {
  override name = 'StateFileError';
}

const DEFAULT_DEBOUNCE_MS = 200;

/** Reads and validates a state file; undefined when there is none yet. A broken one is an error that names it. */
export function readStateFile<S extends z.ZodType>(file: string, schema: S): z.infer<S> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(`${file} is not valid JSON (${(err as Error).message}); move it away to start this simulated service afresh`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const detail = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new StateFileError(`${file} does not hold this simulator's state (${detail}); move it away to start afresh`);
  }
  return parsed.data;
}

/** Writes `snapshot()` to `file` some time after changed(), and at once on flush(). */
export class StateFileWriter {
  private timer?: NodeJS.Timeout;
  private lastWritten?: string;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly file: string,
    private readonly snapshot: () => unknown,
    private readonly onError: (err: Error) => void,
    private readonly debounceMs = DEFAULT_DEBOUNCE_MS,
  ) {}

  /** Something changed: write within debounceMs (one write for a burst of changes). */
  changed(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.debounceMs);
    // A pending write must not keep a finished test or CLI alive; close() writes what is left.
    this.timer.unref();
  }

  /** Writes now (if the state differs from what was last written) and resolves when it is on disk. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const text = JSON.stringify(this.snapshot(), null, 1) + '\n';
    // Writes run one after another, so an older snapshot never lands after a newer one.
    this.writing = this.writing.then(async () => {
      if (text === this.lastWritten) return;
      try {
        await writeAtomically(this.file, text);
        this.lastWritten = text;
      } catch (err) {
        this.onError(err as Error);
      }
    });
    return this.writing;
  }

  /** The last write, and no more after it. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  // Like the rest of DATA_DIR: private to the server's user.
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  // 0600: the state holds sTokens and notification tokens of the simulated service.
  await fsp.writeFile(tmp, text, { mode: 0o600 });
  await fsp.rename(tmp, file);
}

function listenOn(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Listens on `port`; when none is asked for, on the port of the previous run (so URLs handed out then, such
 * as invitation links and the APNs control URL, still work) if it is free, else on any free port.
 */
export async function listenOnSavedPort(server: net.Server, host: string, port: number | undefined, savedPort: number | undefined): Promise<void> {
  if (port === undefined && savedPort !== undefined) {
    try {
      await listenOn(server, savedPort, host);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EADDRINUSE' && code !== 'EACCES') throw err;
    }
  }
  await listenOn(server, port ?? 0, host);
}
