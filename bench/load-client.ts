// The bench's handle on the load generator child (load-generator.ts): one long-lived process on the load
// CPU, given one job at a time. The same generator, with the same connections, drives the bare baseline
// and the server.
import { fileURLToPath } from 'node:url';
import { IpcWorker } from './ipc-worker.js';

/** A request as prepared before the timed phase; the generator adds Host and Content-Length. */
export interface PreparedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

/** One request of a chain and what the server's answer must contain ('' = an empty body) when verifying. */
export interface ChainStep {
  request: PreparedRequest;
  expect?: string;
}

export type LoadJob =
  | { mode: 'rotate'; port: number; connections: number; durationMs: number; requests: PreparedRequest[] }
  /**
   * Each connection takes the next chain and sends its steps in order; done when every chain is, or with
   * `repeatForMs` (for a baseline, which keeps no state) once the chains were sent again until that time.
   */
  | { mode: 'chains'; port: number; connections: number; verify: boolean; chains: ChainStep[][]; repeatForMs?: number };

export interface LoadResult {
  completed: number;
  /** Chains sent to the end (each step answered as expected when verifying). */
  chainsCompleted: number;
  errors: number;
  errorSamples: string[];
  statuses: Record<string, number>;
  elapsedMs: number;
  latencyMs: { p50: number; p90: number; p99: number };
  /** CPU the generator itself used: near its elapsed time means the generator, not the target, was the limit. */
  generatorCpuMs: number;
}

const GENERATOR = fileURLToPath(new URL('./load-generator.ts', import.meta.url));

export class LoadGenerator {
  private constructor(private readonly worker: IpcWorker) {}

  static start(cpu: number | undefined): LoadGenerator {
    return new LoadGenerator(IpcWorker.start('the load generator', GENERATOR, cpu));
  }

  run(job: LoadJob): Promise<LoadResult> {
    return this.worker.call<LoadResult>(job);
  }

  stop(): Promise<void> {
    return this.worker.stop();
  }
}
