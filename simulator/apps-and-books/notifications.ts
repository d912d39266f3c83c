// Delivery of Apple's notifications to the MDM's notificationUrl: best effort, as Apple does it — three
// attempts, 2xx means delivered, at most 100 elements per notification — so the MDM must also poll /status.
// https://developer.apple.com/documentation/devicemanagement/app-and-book-management, WWDC21 session 10137.
import { randomUUID } from 'node:crypto';
import type { Outcome } from './events.js';
import type { Lifecycle } from './lifecycle.js';
import type { EventState, Location } from './state.js';
import type { SimNotificationLogEntry } from './types.js';

const NOTIFICATION_CHUNK = 100; // Apple: at most 100 elements per notification
const ATTEMPTS = 3;

type Item = Record<string, unknown>;

export class Notifier {
  readonly log: SimNotificationLogEntry[] = [];
  /** Drop every notification but TEST_NOTIFICATION (the notificationsLost quirk). */
  losing = false;

  constructor(
    private readonly lifecycle: Lifecycle,
    private readonly retryDelayMs: number,
  ) {}

  /** Sends one notification to the location's subscription, if it subscribed to `notificationType`. */
  notify(loc: Location, notificationType: string, notification: Item): void {
    if (this.lifecycle.closed || this.losing || !loc.notificationUrl || !loc.notificationTypes.includes(notificationType)) return;
    const body = { notification, notificationId: randomUUID(), notificationType, uId: loc.uId };
    const entry: SimNotificationLogEntry = {
      notificationId: body.notificationId,
      notificationType,
      uId: loc.uId,
      url: loc.notificationUrl,
      attempts: 0,
      delivered: false,
      done: false,
      body,
    };
    this.log.push(entry);
    void this.deliver(entry, loc.notificationUrl, loc.notificationAuthToken, body);
  }

  /** ASSET_MANAGEMENT for an associate, disassociate or revoke event: SUCCESS, then one FAILURE per failure. */
  assetEvent(loc: Location, ev: EventState, o: Outcome): void {
    this.chunked(loc, o.succeeded, (assignments) => ({ assignments, eventId: ev.eventId, result: 'SUCCESS', type: ev.eventType }), 'ASSET_MANAGEMENT');
    for (const f of o.failures) {
      this.chunked(
        loc,
        o.failedPairs.get(f) ?? [],
        (assignments) => ({
          assignments,
          error: { errorMessage: f.errorMessage, errorNumber: f.errorNumber },
          eventId: ev.eventId,
          result: 'FAILURE',
          type: ev.eventType,
        }),
        'ASSET_MANAGEMENT',
      );
    }
  }

  /** USER_MANAGEMENT for a create, update or retire event. */
  userEvent(loc: Location, ev: EventState, o: Outcome): void {
    this.chunked(loc, o.succeeded, (users) => ({ eventId: ev.eventId, result: 'SUCCESS', type: ev.eventType, users }), 'USER_MANAGEMENT');
    for (const f of o.failures) {
      this.chunked(
        loc,
        o.failedPairs.get(f) ?? [],
        (users) => ({ error: { errorMessage: f.errorMessage, errorNumber: f.errorNumber }, eventId: ev.eventId, result: 'FAILURE', type: ev.eventType, users }),
        'USER_MANAGEMENT',
      );
    }
  }

  /**
   * The TEST_NOTIFICATION Apple sends when a subscription changes: one attempt, logged like the others.
   * Resolves to the HTTP status, or undefined when nothing answered.
   */
  async test(url: string, token: string | undefined, uId: string): Promise<number | undefined> {
    const payload = { notification: {}, notificationId: randomUUID(), notificationType: 'TEST_NOTIFICATION', uId };
    const entry: SimNotificationLogEntry = {
      notificationId: payload.notificationId,
      notificationType: 'TEST_NOTIFICATION',
      uId,
      url,
      attempts: 1,
      delivered: false,
      done: false,
      body: payload,
    };
    this.log.push(entry);
    let status: number | undefined;
    try {
      status = await this.post(url, token, payload);
    } catch {
      status = undefined;
    }
    entry.lastStatus = status;
    entry.done = true;
    entry.delivered = status !== undefined && status >= 200 && status < 300;
    return status;
  }

  private chunked(loc: Location, items: Item[], make: (chunk: Item[]) => Item, type: string): void {
    for (let i = 0; i < items.length; i += NOTIFICATION_CHUNK) this.notify(loc, type, make(items.slice(i, i + NOTIFICATION_CHUNK)));
  }

  private async deliver(entry: SimNotificationLogEntry, url: string, token: string | undefined, body: Item): Promise<void> {
    try {
      for (let attempt = 1; attempt <= ATTEMPTS && !this.lifecycle.closed; attempt++) {
        entry.attempts = attempt;
        try {
          entry.lastStatus = await this.post(url, token, body);
          if (entry.lastStatus >= 200 && entry.lastStatus < 300) {
            entry.delivered = true;
            return;
          }
        } catch {
          entry.lastStatus = undefined;
        }
        if (attempt < ATTEMPTS && !this.lifecycle.closed) await this.lifecycle.sleep(this.retryDelayMs);
      }
    } finally {
      entry.done = true;
    }
  }

  private async post(url: string, token: string | undefined, payload: Item): Promise<number> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(payload),
      signal: AbortSignal.any([this.lifecycle.signal, AbortSignal.timeout(5000)]),
    });
    await res.arrayBuffer().catch(() => undefined);
    return res.status;
  }
}
