// A bench child process (load generator, raw APNs pusher, micro-benchmarks) on a chosen CPU, given one job
// at a time over the IPC channel; the child answers each `{id, job}` with `{id, result}` or `{id, error}`.
import { BenchError, TS_CHILD_FLAGS, onCpu, spawnChild, type Child } from './processes.js';

export class IpcWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();

  private constructor(private readonly child: Child, private readonly name: string) {
    child.process.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error === undefined) p.resolve(msg.result);
      else p.reject(new BenchError(`${name} failed: ${msg.error}`));
    });
    child.process.on('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new BenchError(`${name} exited (${code ?? signal}):\n${child.output()}`));
      this.pending.clear();
    });
  }

  /** Runs the TypeScript file `script` on `cpu` (anywhere when undefined). */
  static start(name: string, script: string, cpu: number | undefined): IpcWorker {
    return new IpcWorker(spawnChild(onCpu(cpu, [process.execPath, ...TS_CHILD_FLAGS, script]), { ipc: true }), name);
  }

  get pid(): number {
    return this.child.pid;
  }

  call<T>(job: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.process.send({ id, job });
    });
  }

  async stop(): Promise<void> {
    if (this.child.process.connected) this.child.process.disconnect();
    await this.child.stop(5_000);
  }
}

/** The child's side: answers every job with `handle(job)`'s result; exits when the bench goes away. */
export function serveJobs(handle: (job: any) => Promise<unknown>, onExit?: () => void): void {
  process.on('message', (msg: { id: number; job: unknown }) => {
    handle(msg.job).then(
      (result) => process.send!({ id: msg.id, result }),
      (err: Error) => process.send!({ id: msg.id, error: err.stack ?? err.message }),
    );
  });
  process.on('disconnect', () => {
    onExit?.();
    process.exit(0);
  });
}
