// The service's timers and outgoing requests, so close() stops every pending event completion, notification
// retry and POST in flight at once.

export class Lifecycle {
  closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly outgoing = new AbortController();
  /** Runs after every timer callback (an event completing, a notification retried): state may have changed. */
  afterEachTimer?: () => void;

  /** Aborted on close: outgoing notification POSTs pass it on. */
  get signal(): AbortSignal {
    return this.outgoing.signal;
  }

  after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      try {
        fn();
      } finally {
        this.afterEachTimer?.();
      }
    }, ms);
    this.timers.add(t);
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.after(ms, resolve));
  }

  close(): void {
    this.closed = true;
    this.outgoing.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
