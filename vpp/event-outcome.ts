import type { EventFailure, EventStatus } from './client.js';
import type { AssetManagementNotification, NotificationErrorBody, UserManagementNotification } from './notifications.js';

// What an Apple event's outcome means for the licenses and users it was about: which failure, if any, applies
// to each, and how it reads. The outcome comes from GET /status once the event left PENDING, or — first, as
// Apple recommends — from its ASSET_MANAGEMENT / USER_MANAGEMENT notifications, which name each target.

/** Why we wait for an Apple event: to associate or disassociate licenses, to release another MDM's, to create a user. */
export const APPLE_EVENT_KINDS = ['associate', 'disassociate', 'reset', 'createUser'] as const;
export type AppleEventKind = (typeof APPLE_EVENT_KINDS)[number];

export interface Target { serialNumber?: string | null; clientUserId?: string }
export interface AssetKey { adamId: string; pricingParam: string }

const GENERIC_FAILURE: EventFailure = { errorNumber: 0, errorMessage: 'event failed' };

function namesTarget(f: EventFailure, who: Target): boolean {
  return Boolean((who.serialNumber && f.errorInfo?.serialNumbers?.includes(who.serialNumber)) || (who.clientUserId && f.errorInfo?.clientUserIds?.includes(who.clientUserId)));
}
const namesAnyTarget = (f: EventFailure) => Boolean(f.errorInfo?.serialNumbers?.length || f.errorInfo?.clientUserIds?.length);
/** A failure without assets in its errorInfo is about every asset of the request. */
function coversAsset(f: EventFailure, asset: AssetKey | undefined): boolean {
  const assets = f.errorInfo?.assets;
  return !asset || !assets?.length || assets.some((a) => a.adamId === asset.adamId && (a.pricingParam ?? asset.pricingParam) === asset.pricingParam);
}

/**
 * The failure that applies to one serial number or user (of one asset) in a finished event. Apple's "failed
 * assignment event" is FAILED with 14 of 16 done and one failure naming client-4 (managing-assets): FAILED
 * does not mean nothing happened, so a failure applies to the targets it names, or — naming none — to every
 * target of its assets. Only when nothing completed (numCompleted 0, or not given) did the whole request fail.
 * https://developer.apple.com/documentation/devicemanagement/managing-assets
 */
export function failureFor(status: Pick<EventStatus, 'eventStatus' | 'failures' | 'numCompleted'>, who: Target, asset?: AssetKey): EventFailure | undefined {
  const failures = status.failures ?? [];
  const named = failures.find((f) => namesTarget(f, who) && coversAsset(f, asset));
  if (named) return named;
  const general = failures.find((f) => !namesAnyTarget(f) && coversAsset(f, asset));
  if (general) return general;
  if (status.eventStatus === 'FAILED' && !status.numCompleted) return failures[0] ?? GENERIC_FAILURE;
  return undefined;
}

/** What a notification says about one target: settled (with the failure, if it failed), or nothing yet. */
export type NotifiedOutcome = { settled: true; failure?: EventFailure } | { settled: false };

const failureOf = (e: NotificationErrorBody | undefined): EventFailure => (e ? { errorNumber: e.errorNumber, errorMessage: e.errorMessage } : GENERIC_FAILURE);

/**
 * One license's outcome in an ASSET_MANAGEMENT notification: each lists the assignments it is about, with one
 * result for all of them (a FAILURE carries its error). An event's assignments may come in several
 * notifications of up to 100 each, so a license the notification does not list is not settled by it.
 * https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
 */
export function assetNotificationOutcome(n: AssetManagementNotification, license: AssetKey & Target): NotifiedOutcome {
  const listed = n.assignments.some((a) => a.adamId === license.adamId && a.pricingParam === license.pricingParam
    && ((license.serialNumber && a.serialNumber === license.serialNumber) || (license.clientUserId && a.clientUserId === license.clientUserId)));
  if (!listed) return { settled: false };
  return n.result === 'SUCCESS' ? { settled: true } : { settled: true, failure: failureOf(n.error) };
}

/** One user's outcome in a USER_MANAGEMENT notification, with the user as Apple lists them. */
export function userNotificationOutcome(n: UserManagementNotification, clientUserId: string):
  { settled: false } | { settled: true; user: UserManagementNotification['users'][number]; failure?: EventFailure } {
  const user = n.users.find((u) => u.clientUserId === clientUserId);
  if (!user) return { settled: false };
  return n.result === 'SUCCESS' ? { settled: true, user } : { settled: true, user, failure: failureOf(n.error) };
}

/**
 * What an asynchronous failure means (Apple's asynchronous codes: 9603, 9609, 9635, 9641, 9644, 9709, 9716).
 * handling-error-responses: "The server may return these error codes in either StatusResponse or in
 * background notifications."
 */
export type EventFailureClass =
  | 'noLicense' // 9709: Apple had no license left
  | 'userExists' // 9716: the user is registered already — a repeated create, which succeeded before
  | 'userUnknown' // 9609: Apple has no such (active) user; register again
  | 'tryLater' // 9603 internal error, 9644 maintenance: nothing wrong with the request
  | 'refused'; // anything else (9635, 9641: the Apple Account cannot be associated)

export function eventFailureClass(errorNumber: number): EventFailureClass {
  switch (errorNumber) {
    case 9709: return 'noLicense';
    case 9716: return 'userExists';
    case 9609: return 'userUnknown';
    case 9603: case 9644: return 'tryLater';
    default: return 'refused';
  }
}

/** The serial number or user a license is about, as Apple's failures name them. */
export function licenseSubject(license: { targetType: 'user' | 'device'; targetId: string; serialNumber: string | null }): { serialNumber?: string | null; clientUserId?: string } {
  return { serialNumber: license.serialNumber, clientUserId: license.targetType === 'user' ? license.targetId : undefined };
}

export function associationFailureReason(f: EventFailure): string {
  const why = eventFailureClass(f.errorNumber) === 'tryLater' ? '; retried at the next sync' : f.errorNumber === 9709 ? ' not enough licenses' : '';
  return `Apple did not associate the license (${f.errorNumber}${why}): ${f.errorMessage}`;
}

export function disassociationFailureReason(f: EventFailure): string {
  return `Apple did not disassociate (${f.errorNumber}): ${f.errorMessage}`;
}
