// The device endpoints buffer a body before they can check its signature, so a peer without any certificate
// decides how much memory they hold. This budget bounds the bytes all device requests together may hold:
// a request reserves its Content-Length (or the largest body, when chunked) before its body is read, and
// gives it back when its response is done. Beyond the budget: 503 with Retry-After, nothing read.
export class BodyBudget {
  private inFlight = 0;
  constructor(readonly capacity: number) {}

  /** A release function, or undefined when `bytes` do not fit now. */
  reserve(bytes: number): (() => void) | undefined {
    if (this.inFlight + bytes > this.capacity) return undefined;
    this.inFlight += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= bytes;
    };
  }

  get used(): number { return this.inFlight; }
}
