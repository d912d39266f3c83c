// Apple's asynchronous events: a manage request answers an eventId at once and takes effect later, when
// GET /status and the notifications report its outcome. An Outcome collects what one event did, with
// failures grouped the way Apple's `failures` array groups them (one entry per error and asset).
import { randomUUID } from 'node:crypto';
import { ApiError, appleMessage } from './apple-api.js';
import type { Lifecycle } from './lifecycle.js';
import { meta, touch, type EventState, type EventType, type Failure, type Location } from './state.js';

export type Target = { serialNumber?: string; clientUserId?: string };

export interface Outcome {
  numCompleted: number;
  failures: Failure[];
  /** Per failure, the asset/target pairs it covers (what a FAILURE notification lists). */
  failedPairs: Map<Failure, Array<Record<string, unknown>>>;
  succeeded: Array<Record<string, unknown>>;
}

export function newOutcome(): Outcome {
  return { numCompleted: 0, failures: [], failedPairs: new Map(), succeeded: [] };
}

export function fail(
  o: Outcome,
  errorNumber: number,
  asset: { adamId: string; pricingParam: string } | undefined,
  target: Target,
  message?: string,
): void {
  const errorMessage = message ?? appleMessage(errorNumber);
  let f = o.failures.find(
    (x) =>
      x.errorNumber === errorNumber &&
      x.errorMessage === errorMessage &&
      (asset ? x.errorInfo.assets?.[0]?.adamId === asset.adamId && x.errorInfo.assets[0]!.pricingParam === asset.pricingParam : !x.errorInfo.assets),
  );
  if (!f) {
    f = { errorNumber, errorMessage, errorInfo: asset ? { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }] } : {} };
    o.failures.push(f);
    o.failedPairs.set(f, []);
  }
  if (target.serialNumber !== undefined) (f.errorInfo.serialNumbers ??= []).push(target.serialNumber);
  if (target.clientUserId !== undefined) (f.errorInfo.clientUserIds ??= []).push(target.clientUserId);
  o.failedPairs.get(f)!.push({ ...(asset ?? {}), ...target });
}

/** Every pair of a request fails with one asynchronous error (e.g. 9644 while Apple is in maintenance). */
export function failAll(errorNumber: number, pairs: Array<{ asset?: { adamId: string; pricingParam: string }; target: Target }>): Outcome {
  const o = newOutcome();
  for (const p of pairs) fail(o, errorNumber, p.asset, p.target);
  return o;
}

function finish(ev: EventState, o: Outcome): void {
  ev.numCompleted = o.numCompleted;
  ev.failures = o.failures;
  // Apple's "failed assignment event" is FAILED with 14 of 16 tasks done and one failure naming client-4
  // (managing-assets; status-failed-partial.json): any failure makes the event FAILED, and the targets the
  // failures do not name succeeded. https://developer.apple.com/documentation/devicemanagement/managing-assets
  ev.eventStatus = o.failures.length > 0 ? 'FAILED' : 'COMPLETE';
}

/** Runs each event after a delay, or holds them all until released (to test a restart mid-event). */
export class EventRunner {
  private held = false;
  private readonly heldEvents: Array<() => void> = [];
  // Completions not run yet, by eventId, so a closing service can run them all (completeAll).
  private readonly pending = new Map<string, () => void>();
  private quiet = false;

  constructor(
    private readonly lifecycle: Lifecycle,
    public delayMs: number,
  ) {}

  /** Registers a PENDING event; after the delay `apply` runs, then `report` sends its notifications. */
  start(
    loc: Location,
    eventType: EventType,
    numRequested: number,
    apply: () => Outcome,
    report: (ev: EventState, o: Outcome) => void,
  ): EventState {
    const ev: EventState = { eventId: randomUUID(), eventType, eventStatus: 'PENDING', numRequested, numCompleted: 0, failures: [], polls: 0, refusedPolls: 0 };
    loc.events.set(ev.eventId, ev);
    const complete = () => {
      if (this.lifecycle.closed || !this.pending.delete(ev.eventId)) return;
      // The whole event is applied in one synchronous step, so concurrent events never over-assign a license.
      try {
        const o = apply();
        finish(ev, o);
        touch(loc);
        if (!this.quiet) report(ev, o);
      } catch (err) {
        ev.failures.push({ errorNumber: 9603, errorMessage: appleMessage(9603), errorInfo: {} });
        ev.eventStatus = 'FAILED';
      }
    };
    this.pending.set(ev.eventId, complete);
    this.lifecycle.after(this.delayMs, () => {
      if (this.held) this.heldEvents.push(complete);
      else complete();
    });
    return ev;
  }

  /**
   * Completes every pending event now, held or not, without notifications: for a service that closes but
   * keeps its state, as Apple's events complete while an MDM is down (the MDM learns the outcome from /status).
   */
  completeAll(): void {
    this.quiet = true;
    this.heldEvents.length = 0;
    for (const complete of [...this.pending.values()]) complete();
  }

  hold(): void {
    this.held = true;
  }

  /** Completes the held events in the order they were due. */
  release(): void {
    this.held = false;
    for (const complete of this.heldEvents.splice(0)) complete();
  }
}

/**
 * A /status poll of a PENDING event that came too soon after the last PENDING answer. Apple asks "While the
 * returned eventStatus is PENDING, wait at least 30 seconds between subsequent status queries to avoid
 * unnecessary load on the server" (subscribing-to-notifications) but documents no error for breaking it; the
 * simulator refuses with Apple's own "too many requests" answer, 429 with 9646 and Retry-After, which a client
 * already has to handle. https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
 */
export class PollTooSoon extends ApiError {
  constructor(readonly retryAfterSeconds: number) {
    super(9646);
  }
}

/** GET /status?eventId= */
export function eventStatus(loc: Location, url: URL, now: number, minPollIntervalMs: number): Record<string, unknown> {
  const eventId = url.searchParams.get('eventId');
  if (!eventId) throw new ApiError(9602);
  const ev = loc.events.get(eventId);
  if (!ev) throw new ApiError(9708);
  ev.polls++;
  // The rule is about the client: after a PENDING answer it must wait, even if the event completed meanwhile.
  if (ev.lastPendingAnswerAt !== undefined && now - ev.lastPendingAnswerAt < minPollIntervalMs) {
    ev.refusedPolls++;
    throw new PollTooSoon(Math.max(1, Math.ceil((ev.lastPendingAnswerAt + minPollIntervalMs - now) / 1000)));
  }
  ev.lastPendingAnswerAt = ev.eventStatus === 'PENDING' ? now : undefined;
  const out: Record<string, unknown> = {
    eventStatus: ev.eventStatus,
    eventType: ev.eventType,
    numCompleted: ev.numCompleted,
    numRequested: ev.numRequested,
    ...meta(loc),
  };
  if (ev.failures.length > 0) out.failures = ev.failures.map((f) => structuredClone(f));
  return out;
}
