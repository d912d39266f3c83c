// Counts the database round trips a piece of server work makes: every statement sent on the server's pool
// from inside `count(...)` — including work it sets off and does not wait for (a sync's distribution), as long
// as the caller waits for that too. Other work on the pool meanwhile (jobs, push retries) is not counted.
import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';

export interface RoundTrips {
  /** Runs `work` and returns the statements it sent, in order (their SQL text). */
  count(work: () => Promise<unknown>): Promise<string[]>;
  restore(): void;
}

const textOf = (args: unknown[]): string => {
  const first = args[0] as string | { text?: string; name?: string };
  return typeof first === 'string' ? first : first.text ?? first.name ?? '?';
};

export function countRoundTrips(pool: pg.Pool): RoundTrips {
  const scope = new AsyncLocalStorage<string[]>();
  const original = { query: pool.query, connect: pool.connect };
  const note = (args: unknown[]) => scope.getStore()?.push(textOf(args).replace(/\s+/g, ' ').trim());
  // pool.query takes a client through connect(callback), whose callback may run in another request's context:
  // it is counted here, where it is asked for. A checked-out client (a transaction) counts each of its queries.
  pool.query = function (this: pg.Pool, ...args: unknown[]) {
    note(args);
    return (original.query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof pool.query;
  pool.connect = function (this: pg.Pool, ...args: unknown[]) {
    if (args.length > 0) return (original.connect as (...a: unknown[]) => unknown).apply(this, args);
    return (original.connect as () => Promise<pg.PoolClient>).call(this).then((client) => new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return (...args: unknown[]) => { note(args); return (target.query as (...a: unknown[]) => unknown).apply(target, args); };
      },
    }));
  } as typeof pool.connect;
  return {
    async count(work) {
      const statements: string[] = [];
      await scope.run(statements, work);
      return statements;
    },
    restore() {
      pool.query = original.query;
      pool.connect = original.connect;
    },
  };
}
