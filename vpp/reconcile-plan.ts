import type { Assignment } from './client.js';
import type { LicenseState, TargetType } from './policy.js';

// Reconcile compares the ledger with Apple's /assignments and repairs drift left by crashes. This decides the
// repairs; the server carries them out.

export interface LedgerLicense {
  id: number; adamId: string; pricingParam: string; targetType: TargetType; targetId: string; serialNumber: string | null;
  state: LicenseState; eventId: string | null; updatedAt: Date;
}

export type ReconcileStep<L extends LedgerLicense> =
  /** Apple holds the license we were asking for: it is Associated; the device installs at its next sync. */
  | { action: 'confirm'; license: L }
  /** Our record has no license at Apple behind it: forget it; its installs wait for the next sync. */
  | { action: 'forget'; license: L; reason: string; wakeWaiting: boolean }
  /** Ask Apple to take the license back (again). */
  | { action: 'disassociate'; license: L; why: string; counted: boolean }
  /** Apple holds a license we never recorded: release it. */
  | { action: 'releaseOrphan'; assignment: Assignment };

const NEVER_REACHED_APPLE = 'the license request never reached Apple; it is requested again at the next sync';
const GONE_AT_APPLE = 'Apple no longer shows this license; it is requested again at the next sync';

const appleKey = (adamId: string, pricingParam: string, who: string) => `${adamId}/${pricingParam}/${who}`;
const keyOfAssignment = (a: Assignment) => appleKey(a.adamId, a.pricingParam, a.serialNumber ? `s:${a.serialNumber}` : `u:${a.clientUserId}`);
const keyOfLicense = (l: LedgerLicense) => appleKey(l.adamId, l.pricingParam, l.targetType === 'device' ? `s:${l.serialNumber}` : `u:${l.targetId}`);

/** Untouched for longer than the grace period: reconcile may change it (a fresher one may still be in flight). */
export function isSettled(license: { updatedAt: Date }, nowMs: number, graceMs: number): boolean {
  return nowMs - license.updatedAt.getTime() > graceMs;
}

export function planReconcile<L extends LedgerLicense>(input: {
  ours: L[]; apple: Assignment[];
  /** Apple events still pending, read before `ours`: an event recorded later belongs to a license too fresh to touch. */
  pendingEventIds: ReadonlySet<string>;
  /** Associated, settled licenses whose target still has the bundle assigned (and, for a device, is enrolled). */
  entitledIds: ReadonlySet<number>;
  /** Licenses taken by a server process that is gone: nothing is in flight for them, whatever their age. */
  takerGoneIds?: ReadonlySet<number>;
  nowMs: number; graceMs: number;
}): Array<ReconcileStep<L>> {
  const appleKeys = new Set(input.apple.map(keyOfAssignment));
  const ourKeys = new Set(input.ours.map(keyOfLicense));
  const steps: Array<ReconcileStep<L>> = [];
  for (const license of input.ours) {
    if (!isSettled(license, input.nowMs, input.graceMs) && !input.takerGoneIds?.has(license.id)) continue;
    // No pending event will ever settle this license: the process crashed between taking it and asking
    // Apple, or between Apple's answer and recording the event (the event id was stored, the event not).
    const stranded = !license.eventId || !input.pendingEventIds.has(license.eventId);
    const atApple = appleKeys.has(keyOfLicense(license));
    if (license.state === 'Associating' && stranded) {
      steps.push(atApple ? { action: 'confirm', license } : { action: 'forget', license, reason: NEVER_REACHED_APPLE, wakeWaiting: true });
    } else if (license.state === 'Associated' && !input.entitledIds.has(license.id)) {
      // Its device checked out or its assignment went while the reclaim was lost (e.g. a crash in between).
      steps.push({ action: 'disassociate', license, why: 'reconcile: no longer assigned or enrolled', counted: true });
    } else if (license.state === 'Associated' && !atApple) {
      steps.push({ action: 'forget', license, reason: GONE_AT_APPLE, wakeWaiting: false });
    } else if (license.state === 'Disassociating' && stranded) {
      steps.push({ action: 'disassociate', license: { ...license, state: 'Associated' }, why: 'reconcile retry', counted: false });
    }
  }
  for (const assignment of input.apple) {
    if (!ourKeys.has(keyOfAssignment(assignment))) steps.push({ action: 'releaseOrphan', assignment });
  }
  return steps;
}

/** Another MDM's assignments, one disassociate request per asset. */
export function groupByAsset(assignments: Assignment[]): Array<{ adamId: string; pricingParam: string; serialNumbers: string[]; clientUserIds: string[] }> {
  const byAsset = new Map<string, { adamId: string; pricingParam: string; serialNumbers: string[]; clientUserIds: string[] }>();
  for (const a of assignments) {
    const key = `${a.adamId}/${a.pricingParam}`;
    const group = byAsset.get(key) ?? { adamId: a.adamId, pricingParam: a.pricingParam, serialNumbers: [], clientUserIds: [] };
    if (a.serialNumber) group.serialNumbers.push(a.serialNumber);
    if (a.clientUserId) group.clientUserIds.push(a.clientUserId);
    byAsset.set(key, group);
  }
  return [...byAsset.values()];
}
