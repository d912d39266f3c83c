// What a scenario is made of: a timeline of what happened when, the admin API as a person would call it,
// and waiting for a step with a deadline. A step that does not happen ends the scenario with a StepFailed
// naming the step and what was last seen, so the scenario exits non-zero instead of hanging.
import type { SimulatorHttpClient } from '../http.js';

export class StepFailed extends Error {
  override name = 'StepFailed';
}

/** Lines of `[  12.3s] what happened`, from the scenario's start. */
export class Timeline {
  private readonly started = Date.now();
  constructor(private readonly write: (line: string) => void) {}

  say(text: string): void {
    this.write(`[${((Date.now() - this.started) / 1000).toFixed(1).padStart(6)}s] ${text}\n`);
  }

  section(title: string): void {
    this.write(`\n== ${title}\n`);
  }
}

/** The admin JSON API under /api/v1, with the admin token. Non-2xx answers throw, naming the call. */
export class AdminApi {
  constructor(
    private readonly http: SimulatorHttpClient,
    private readonly server: string,
    private readonly token: string,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.http.json<T>(`${this.server}/api/v1${path}`, { token: this.token });
  }

  post<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.http.json<T>(`${this.server}/api/v1${path}`, { token: this.token, method: 'POST', body });
  }

  delete(path: string): Promise<unknown> {
    return this.http.json(`${this.server}/api/v1${path}`, { token: this.token, method: 'DELETE' });
  }

  /** The status code and body, for calls whose refusal is an answer (e.g. 409 for a token already linked). */
  async attempt(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await this.http.request(`${this.server}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = res.body.toString('utf8');
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }
}

/**
 * Polls `probe` until it gives a value. `lastSeen` describes the state when the deadline passes, so the
 * failure says what the step was waiting for and what happened instead.
 */
export async function waitFor<T>(step: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, lastSeen?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const seen = lastSeen?.();
      throw new StepFailed(`${step} did not happen within ${Math.round(timeoutMs / 1000)} s${seen ? `; last seen: ${seen}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
