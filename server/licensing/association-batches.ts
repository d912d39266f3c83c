/**
 * Work that gathers while a request for the same key is in flight, then goes as one: licenses taken for one
 * asset and target type wait here while an associate request for others is at Apple, and the next request
 * carries all that came meanwhile. Apple's /assets/associate takes many serial numbers or clientUserIds at
 * once (up to /service/config `limits`), so a burst of syncs costs one request, one event and one notification
 * per batch instead of per license. Nothing waits on a timer: an item that finds no request in flight goes at once.
 * https://developer.apple.com/documentation/devicemanagement/managing-assets (serialNumbers and clientUserIds are
 * arrays), https://developer.apple.com/documentation/devicemanagement/service-config (maxSerialNumbers, maxClientUserIds).
 */
export class Batches<T> {
  private readonly queues = new Map<string, Array<{ item: T; done: (failure: unknown) => void }>>();

  /** `send` returns, per item in order, the error that item's caller gets (undefined: none). */
  constructor(private readonly send: (items: T[]) => Promise<unknown[]>) {}

  /** Resolves (or rejects with the item's own error) once the request carrying `item` has been handled. */
  add(key: string, item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry = { item, done: (failure: unknown) => (failure === undefined ? resolve() : reject(failure)) };
      const queue = this.queues.get(key);
      if (queue) { queue.push(entry); return; }
      const fresh = [entry];
      this.queues.set(key, fresh);
      void this.drain(key, fresh);
    });
  }

  private async drain(key: string, queue: Array<{ item: T; done: (failure: unknown) => void }>): Promise<void> {
    try {
      while (queue.length) {
        const batch = queue.splice(0, queue.length);
        let failures: unknown[];
        try {
          failures = await this.send(batch.map((e) => e.item));
        } catch (err) {
          failures = batch.map(() => err);
        }
        batch.forEach((e, i) => e.done(failures[i]));
      }
    } finally {
      // No await between the empty check and this: an item added later starts a queue of its own.
      this.queues.delete(key);
    }
  }
}
