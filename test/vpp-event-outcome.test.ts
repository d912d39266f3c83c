// What an Apple event's outcome means for each license and user it was about, decided from Apple's own
// examples: a FAILED event that partly succeeded fails only the targets its failures name; notifications
// settle the targets they list. And what the server tells Apple about itself, and makes of a retired service.
import { describe, expect, it } from 'vitest';
import type { EventStatus } from '../vpp/client.js';
import { assetNotificationOutcome, failureFor, userNotificationOutcome } from '../vpp/event-outcome.js';
import { readNotification } from '../vpp/notifications.js';
import { afterAppleFailure, mdmInfoToSet } from '../vpp/subscription-state.js';
import { appleExample } from './support/apple-fixtures.js';

const statusOf = (name: string) => appleExample(name).response!.body as EventStatus;

describe('Apple event outcomes per target', () => {
  it("Apple's partly failed event (FAILED, 14 of 16 done) fails only client-4, the user its failure names", () => {
    const status = statusOf('status-failed-partial');
    expect(status).toMatchObject({ eventStatus: 'FAILED', numCompleted: 14, numRequested: 16 });
    expect(failureFor(status, { clientUserId: 'client-4' })).toMatchObject({ errorNumber: 9609 });
    for (const other of ['client-1', 'client-2', 'client-3', 'client-5']) expect(failureFor(status, { clientUserId: other })).toBeUndefined();
    expect(failureFor(status, { serialNumber: 'SERIAL-1' })).toBeUndefined();
  });

  it("Apple's failed event with nothing done (0 of 2) fails every target", () => {
    const status = statusOf('status-failed');
    expect(failureFor(status, { clientUserId: 'user101' })).toMatchObject({ errorNumber: 9609 });
    expect(failureFor(status, { clientUserId: 'user102' })).toMatchObject({ errorNumber: 9609 });
    // Not named, yet nothing of the request was done.
    expect(failureFor(status, { clientUserId: 'user103' })).toMatchObject({ errorNumber: 9609 });
  });
});

describe('outcomes named by notifications', () => {
  const notification = (name: string) => readNotification(appleExample(name).request!.body);

  it("ASSET_MANAGEMENT settles the assignments it lists, with its result; others wait for the event's other notifications", () => {
    const ok = notification('notification-asset-management-associate');
    if (ok.notificationType !== 'ASSET_MANAGEMENT') throw new Error('not ASSET_MANAGEMENT');
    expect(assetNotificationOutcome(ok.notification, { adamId: '408709785', pricingParam: 'STDQ', serialNumber: '495622d3-76f1-4fd3-8647-3f0365159170' })).toEqual({ settled: true });
    expect(assetNotificationOutcome(ok.notification, { adamId: '408709785', pricingParam: 'STDQ', serialNumber: 'another-serial' })).toEqual({ settled: false });
    expect(assetNotificationOutcome(ok.notification, { adamId: '361309726', pricingParam: 'STDQ', serialNumber: '495622d3-76f1-4fd3-8647-3f0365159170' })).toEqual({ settled: false });
    const failed = notification('notification-asset-management-failure');
    if (failed.notificationType !== 'ASSET_MANAGEMENT') throw new Error('not ASSET_MANAGEMENT');
    expect(assetNotificationOutcome(failed.notification, { adamId: '1234', pricingParam: 'STDQ', clientUserId: 'user1' })).toMatchObject({ settled: true, failure: { errorNumber: 9709 } });
  });

  it('USER_MANAGEMENT settles the users it lists, with the invitation code Apple gave them', () => {
    const created = notification('notification-user-management-create');
    if (created.notificationType !== 'USER_MANAGEMENT') throw new Error('not USER_MANAGEMENT');
    expect(userNotificationOutcome(created.notification, 'client-100')).toEqual({ settled: true, user: { clientUserId: 'client-100', email: 'client-100@apple.com', inviteCode: 'f551b37da07146628e8dcbe0111f0364', status: 'Registered' } });
    expect(userNotificationOutcome(created.notification, 'client-999')).toEqual({ settled: false });
  });
});

describe('what the server tells Apple and makes of its refusals', () => {
  it('mdmInfo carries id, name and metadata, within Apple\'s limits', () => {
    expect(mdmInfoToSet('install-1', 'Our MDM', 'https://mdm.school.example/some/path')).toEqual({ id: 'install-1', name: 'Our MDM', metadata: 'https://mdm.school.example' });
    const long = mdmInfoToSet('i'.repeat(150), 'n'.repeat(150), `https://${'h'.repeat(300)}.example`);
    expect([long.id.length, long.name.length, long.metadata.length]).toEqual([100, 100, 255]);
    expect(mdmInfoToSet('install-1', 'Our MDM', '').metadata).toBe('Our MDM');
  });

  it('410/9634 stops the subscription like an invalid token does', () => {
    expect(afterAppleFailure('Active', { kind: 'gone', errorNumber: 9634, httpStatus: 410, message: 'This service is no longer available.' })).toMatchObject({ status: 'Error', statusReason: expect.stringContaining('no longer offers') });
    expect(afterAppleFailure('Active', { kind: 'retryable', errorNumber: 9729, httpStatus: 503, message: 'unavailable' }).status).toBeUndefined();
  });
});
