import type { EventFailure, EventStatus } from './client.js';

// What an Apple event's outcome means for the licenses and users it was about: which failure, if any, applies
// to each, and how it reads.

/** Why we wait for an Apple event: to associate or disassociate licenses, to release another MDM's, to create a user. */
export const APPLE_EVENT_KINDS = ['associate', 'disassociate', 'reset', 'createUser'] as const;
export type AppleEventKind = (typeof APPLE_EVENT_KINDS)[number];

/**
 * The failure that applies to one serial number or user: one naming it in its errorInfo, else — when the whole
 * event FAILED — the first failure (or a generic one), since Apple then did nothing of the request.
 */
export function failureFor(status: Pick<EventStatus, 'eventStatus' | 'failures'>, who: { serialNumber?: string | null; clientUserId?: string }): EventFailure | undefined {
  const failures = status.failures ?? [];
  const named = failures.find((f) =>
    (who.serialNumber && f.errorInfo?.serialNumbers?.includes(who.serialNumber)) || (who.clientUserId && f.errorInfo?.clientUserIds?.includes(who.clientUserId)));
  if (named) return named;
  return status.eventStatus === 'FAILED' ? failures[0] ?? { errorNumber: 0, errorMessage: 'event failed' } : undefined;
}

/** The serial number or user a license is about, as Apple's failures name them. */
export function licenseSubject(license: { targetType: 'user' | 'device'; targetId: string; serialNumber: string | null }): { serialNumber?: string | null; clientUserId?: string } {
  return { serialNumber: license.serialNumber, clientUserId: license.targetType === 'user' ? license.targetId : undefined };
}

export function associationFailureReason(f: EventFailure): string {
  return `Apple did not associate the license (${f.errorNumber}${f.errorNumber === 9709 ? ' not enough licenses' : ''}): ${f.errorMessage}`;
}

export function disassociationFailureReason(f: EventFailure): string {
  return `Apple did not disassociate (${f.errorNumber}): ${f.errorMessage}`;
}
