// The decisions of license distribution as plain functions (vpp/): the flows' next step, which failure of an
// Apple event applies to whom, the reconcile plan, and subscription status. Install statuses and the other
// lifecycle decisions are in vpp-decisions-lifecycle.test.ts.
import { describe, expect, it } from 'vitest';
import { associationFailureReason, failureFor, licenseSubject } from '../vpp/event-outcome.js';
import { ACCOUNT_CHANGED, deviceFlowStep, licenseStep, noLicenseReason, userFlowStep, userStatusFromApple } from '../vpp/flows.js';
import { manageAssetsRequest } from '../vpp/policy.js';
import { groupByAsset, planReconcile, type LedgerLicense } from '../vpp/reconcile-plan.js';
import { afterAppleFailure, claimDecision, foreignHolder } from '../vpp/subscription-state.js';

describe('the flows\' next step', () => {
  const device = { osVersion: '17.5', serialNumber: 'SER1' };
  it('device flow: refuses old iOS and missing serials, installs only once Apple confirmed, else takes a license', () => {
    expect(deviceFlowStep({ ...device, osVersion: '8.4' }, undefined)).toMatchObject({ step: 'stop', status: 'OSVersionTooOld' });
    expect(deviceFlowStep({ ...device, serialNumber: null }, undefined)).toMatchObject({ step: 'stop', status: 'Failed' });
    expect(deviceFlowStep(device, { state: 'Associated' })).toEqual({ step: 'install' });
    expect(deviceFlowStep(device, { state: 'Associating' })).toMatchObject({ step: 'stop', status: 'Associating' });
    expect(deviceFlowStep(device, undefined)).toEqual({ step: 'take' });
    expect(licenseStep({ state: 'Disassociating' })).toMatchObject({ step: 'stop', status: 'Associating' });
  });

  it('user flow: register, invite each device once, license only when associated', () => {
    expect(userFlowStep(undefined, 'd1')).toEqual({ step: 'register' });
    expect(userFlowStep({ status: 'Creating', invitedUdids: [] }, 'd1')).toMatchObject({ step: 'stop', status: 'Waiting' });
    expect(userFlowStep({ status: 'Registered', invitedUdids: [] }, 'd1')).toEqual({ step: 'invite' });
    expect(userFlowStep({ status: 'Registered', invitedUdids: ['d1'] }, 'd1')).toMatchObject({ step: 'stop', status: 'InvitationSent' });
    expect(userFlowStep({ status: 'Associated', invitedUdids: [] }, 'd1')).toEqual({ step: 'license' });
    expect(userFlowStep({ status: 'AccountChanged', invitedUdids: [] }, 'd1')).toEqual({ step: 'stop', status: 'Failed', reason: ACCOUNT_CHANGED });
    expect(userFlowStep({ status: 'Retired', invitedUdids: [] }, 'd1')).toMatchObject({ step: 'stop', status: 'Failed', reason: expect.stringContaining('Retired') });
  });

  it('keeps a changed Apple Account until re-enrollment, whatever Apple says', () => {
    expect(userStatusFromApple('AccountChanged', 'Associated')).toBe('AccountChanged');
    expect(userStatusFromApple('Registered', 'Associated')).toBe('Associated');
    expect(userStatusFromApple(undefined, 'Registered')).toBe('Registered');
  });

  it('says why no license was given', () => {
    expect(noLicenseReason({ total: 2, held: 2, reservedForOthers: 0 })).toContain('2 of 2 in use;');
    expect(noLicenseReason({ total: 3, held: 1, reservedForOthers: 2 })).toContain('2 reserved for others');
  });
});

describe('Apple event outcomes', () => {
  const failures = [
    { errorNumber: 9709, errorMessage: 'not enough', errorInfo: { serialNumbers: ['S2'] } },
    { errorNumber: 9610, errorMessage: 'no user', errorInfo: { clientUserIds: ['u1'] } },
  ];
  it('applies a failure to the serial number or user it names, and a FAILED event to everyone', () => {
    expect(failureFor({ eventStatus: 'COMPLETE', failures }, { serialNumber: 'S2' })?.errorNumber).toBe(9709);
    expect(failureFor({ eventStatus: 'COMPLETE', failures }, { clientUserId: 'u1' })?.errorNumber).toBe(9610);
    expect(failureFor({ eventStatus: 'COMPLETE', failures }, { serialNumber: 'S1' })).toBeUndefined();
    expect(failureFor({ eventStatus: 'FAILED', failures }, { serialNumber: 'S1' })?.errorNumber).toBe(9709);
    expect(failureFor({ eventStatus: 'FAILED' }, { serialNumber: 'S1' })).toEqual({ errorNumber: 0, errorMessage: 'event failed' });
    expect(licenseSubject({ targetType: 'user', targetId: 'u1', serialNumber: null })).toEqual({ serialNumber: null, clientUserId: 'u1' });
    expect(licenseSubject({ targetType: 'device', targetId: 'udid', serialNumber: 'S1' })).toEqual({ serialNumber: 'S1', clientUserId: undefined });
    const asset = { adamId: '1', pricingParam: 'STDQ' };
    expect(manageAssetsRequest(asset, licenseSubject({ targetType: 'user', targetId: 'u1', serialNumber: null }))).toEqual({ assets: [asset], clientUserIds: ['u1'] });
    expect(manageAssetsRequest(asset, licenseSubject({ targetType: 'device', targetId: 'udid', serialNumber: 'S1' }))).toEqual({ assets: [asset], serialNumbers: ['S1'] });
    expect(associationFailureReason(failures[0]!)).toBe('Apple did not associate the license (9709 not enough licenses): not enough');
  });
});

describe('reconcile plan', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const old = new Date(now - 120_000);
  let nextId = 1;
  const lic = (over: Partial<LedgerLicense>): LedgerLicense => ({
    id: nextId++, adamId: '1', pricingParam: 'STDQ', targetType: 'device', targetId: 'udid', serialNumber: 'S1', state: 'Associated', eventId: 'e', updatedAt: old, ...over,
  });
  const plan = (ours: LedgerLicense[], apple: Array<{ adamId: string; pricingParam: string; serialNumber?: string; clientUserId?: string }>, opts: { pending?: string[]; entitled?: number[] } = {}) =>
    planReconcile({ ours, apple, pendingEventIds: new Set(opts.pending ?? []), entitledIds: new Set(opts.entitled ?? ours.map((l) => l.id)), nowMs: now, graceMs: 60_000 });

  it('confirms stranded associations Apple holds and forgets the ones that never reached Apple', () => {
    const held = lic({ state: 'Associating', serialNumber: 'S1', eventId: null });
    const lost = lic({ state: 'Associating', serialNumber: 'S2', eventId: 'gone' });
    const steps = plan([held, lost], [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'S1' }]);
    expect(steps).toEqual([
      { action: 'confirm', license: held },
      { action: 'forget', license: lost, reason: expect.stringContaining('never reached Apple'), wakeWaiting: true },
    ]);
  });

  it('leaves fresh licenses and ones with a pending event alone', () => {
    const fresh = lic({ state: 'Associating', eventId: null, updatedAt: new Date(now - 1000) });
    const waiting = lic({ state: 'Associating', eventId: 'p' });
    expect(plan([fresh, waiting], [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'S1' }], { pending: ['p'] })).toEqual([]);
  });

  it('releases licenses no longer entitled, forgets ones Apple lost, retries stranded disassociations, releases orphans', () => {
    const unentitled = lic({ serialNumber: 'S1' });
    const lostAtApple = lic({ serialNumber: 'S2' });
    const stuck = lic({ state: 'Disassociating', serialNumber: 'S3', eventId: null });
    const apple = [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'S1' }, { adamId: '1', pricingParam: 'STDQ', serialNumber: 'S3' }, { adamId: '9', pricingParam: 'STDQ', clientUserId: 'stranger' }];
    const steps = plan([unentitled, lostAtApple, stuck], apple, { entitled: [lostAtApple.id] });
    expect(steps).toEqual([
      { action: 'disassociate', license: unentitled, why: 'reconcile: no longer assigned or enrolled', counted: true },
      { action: 'forget', license: lostAtApple, reason: expect.stringContaining('no longer shows'), wakeWaiting: false },
      { action: 'disassociate', license: { ...stuck, state: 'Associated' }, why: 'reconcile retry', counted: false },
      { action: 'releaseOrphan', assignment: apple[2] },
    ]);
  });

  it('matches user licenses by clientUserId and groups another MDM\'s assignments per asset', () => {
    const user = lic({ targetType: 'user', targetId: 'u1', serialNumber: null });
    expect(plan([user], [{ adamId: '1', pricingParam: 'STDQ', clientUserId: 'u1' }])).toEqual([]);
    expect(groupByAsset([
      { adamId: '1', pricingParam: 'STDQ', serialNumber: 'A' }, { adamId: '1', pricingParam: 'STDQ', clientUserId: 'u' }, { adamId: '2', pricingParam: 'PLUS', serialNumber: 'B' },
    ])).toEqual([
      { adamId: '1', pricingParam: 'STDQ', serialNumbers: ['A'], clientUserIds: ['u'] },
      { adamId: '2', pricingParam: 'PLUS', serialNumbers: ['B'], clientUserIds: [] },
    ]);
  });
});

describe('subscription status', () => {
  it('claims a free token, takes over only when told, and notices a foreign holder outside a claim', () => {
    expect(claimDecision(undefined, 'me', false)).toBe('claim');
    expect(claimDecision({ id: 'me', name: 'us' }, 'me', false)).toBe('claim');
    expect(claimDecision({ id: 'them', name: 'Other' }, 'me', false)).toBe('claimRequired');
    expect(claimDecision({ id: 'them', name: 'Other' }, 'me', true)).toBe('takeOver');
    expect(foreignHolder({ id: 'them', name: 'Other' }, 'me', false)).toEqual({ id: 'them', name: 'Other' });
    expect(foreignHolder({ id: 'them', name: 'Other' }, 'me', true)).toBeUndefined();
    expect(foreignHolder({ id: 'me', name: 'us' }, 'me', false)).toBeUndefined();
  });

  it('stops on an invalid token and leaves an unfinished claim in Error', () => {
    expect(afterAppleFailure('Active', { kind: 'tokenInvalid', errorNumber: 9625, message: 'revoked' }))
      .toMatchObject({ status: 'Error', statusReason: expect.stringContaining('sToken revoked by Apple (9625') });
    expect(afterAppleFailure('ClaimInProgress', { kind: 'retryable', message: 'down' })).toMatchObject({ status: 'Error', lastSyncError: 'down' });
    expect(afterAppleFailure('Active', { kind: 'retryable', message: 'down' })).toEqual({ lastSyncError: 'down' });
  });
});
