// Every behaviour of SPEC §6, end to end: the real server and database, simulated iPhones, the simulated
// Apps and Books service (whose own counts are the truth we compare with).
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SecretBox, decodeKey } from '../server/secrets.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSToken } from '../vpp/stoken.js';
import { validateCommand } from '../mdm/apple-schema.js';
import { availableBackends } from './support/databases.js';
import { startWorld, type World } from './support/vpp-world.js';
import { until } from './support/wait.js';

const PAGES = { adamId: '361309726', name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const KEYNOTE = { adamId: '361285480', name: 'Keynote', bundleId: 'com.apple.Keynote', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const NUMBERS = { adamId: '361304891', name: 'Numbers', bundleId: 'com.apple.Numbers', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const GARAGEBAND = { adamId: '408709785', name: 'GarageBand', bundleId: 'com.apple.mobilegarageband', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const IMOVIE = { adamId: '377298193', name: 'iMovie', bundleId: 'com.apple.iMovie', deviceAssignable: true, productType: 'App' as const, pricingParam: 'STDQ' };
const BOOK = { adamId: '1100000009', name: 'A Book', productType: 'Book' as const, pricingParam: 'STDQ', deviceAssignable: false };

describe.each(availableBackends())('VPP license distribution on %s', (backend) => {
  let w: World;
  beforeAll(async () => { w = await startWorld(backend); });
  afterAll(async () => { await w?.close(); });
  const api = (m: string, p: string, b?: unknown) => w.server.api(m, p, b);
  const sim = () => w.server.sandbox!.appsAndBooks;
  const commandsOf = async (udid: string) => (await api('GET', `/api/v1/devices/${udid}/commands`)).body as Array<{ requestType: string; status: string; commandUUID: string }>;

  it('validates the sToken and warns when it expires within 30 days', async () => {
    const garbage = await api('POST', '/api/v1/vpp/subscriptions', { name: 'x', sToken: 'not base64 json' });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.code).toBe('invalid_stoken');
    const expired = encodeSToken({ token: 'abc', expDate: new Date(Date.now() - 86_400_000), orgName: 'Old' });
    const exp = await api('POST', '/api/v1/vpp/subscriptions', { name: 'x', sToken: expired });
    expect(exp.status).toBe(400);
    expect(exp.body.error.message).toContain('expired');
    const soon = w.server.sandbox!.appsAndBooks.issueToken({ orgName: 'Soon School', expDate: new Date(Date.now() + 10 * 86_400_000), assets: [{ ...PAGES, totalCount: 1 }] });
    const res = await api('POST', '/api/v1/vpp/subscriptions', { name: 'soon', sToken: soon });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'Active', orgName: 'Soon School' });
    expect(res.body.daysUntilExpiry).toBeLessThanOrEqual(10);
    expect(res.body.warning).toContain('expires in');
    const dup = await api('POST', '/api/v1/vpp/subscriptions', { name: 'again', sToken: soon });
    expect(dup.status).toBe(409);
    const bad = await api('POST', '/api/v1/vpp/subscriptions', { name: 'x', sToken: soon, schedule: { type: 'weekly' } });
    expect(bad.status).toBe(400);
  });

  it('syncs assets into one bundle per app (books listed, not bundled) and refreshes counts', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 3 }, { ...KEYNOTE, totalCount: 2 }, { ...BOOK, totalCount: 5 }]);
    expect(Object.keys(s.bundles).sort()).toEqual([KEYNOTE.adamId, PAGES.adamId].sort());
    const bundles = (await api('GET', '/api/v1/bundles')).body.filter((b: { subscriptionId: string }) => b.subscriptionId === s.id);
    expect(bundles.find((b: { adamId: string }) => b.adamId === PAGES.adamId)).toMatchObject({ name: 'Pages', bundleId: 'com.apple.Pages', deviceAssignable: true });
    // Run Now picks up a new purchase.
    sim().addAssets(s.sToken, [{ ...NUMBERS, totalCount: 4 }]);
    expect((await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`)).status).toBe(202);
    await until('Run Now bundle', async () => (await api('GET', '/api/v1/bundles')).body.some((b: { adamId: string; subscriptionId: string }) => b.adamId === NUMBERS.adamId && b.subscriptionId === s.id));
    // Create Bundle for one app is idempotent.
    const again = await api('POST', `/api/v1/vpp/apps/${PAGES.adamId}/bundle`, { subscriptionId: s.id });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(s.bundles[PAGES.adamId]);
    expect((await api('POST', '/api/v1/vpp/apps/999/bundle', {})).status).toBe(404);
  });

  it('runs asset syncs on a date schedule and a recurring schedule', async () => {
    const dated = sim().issueToken({ orgName: 'Dated', assets: [{ ...PAGES, totalCount: 1 }] });
    const at = new Date(Date.now() + 1500).toISOString();
    const d = await api('POST', '/api/v1/vpp/subscriptions', { name: 'dated', sToken: dated, schedule: { type: 'date', at } });
    expect(d.status).toBe(201);
    sim().addAssets(dated, [{ ...GARAGEBAND, totalCount: 1 }]);
    await until('dated sync', async () => (await api('GET', '/api/v1/bundles')).body.some((b: { adamId: string; subscriptionId: string }) => b.adamId === GARAGEBAND.adamId && b.subscriptionId === d.body.id), 30_000);
    const recurring = sim().issueToken({ orgName: 'Recurring', assets: [{ ...PAGES, totalCount: 1 }] });
    const r = await api('POST', '/api/v1/vpp/subscriptions', { name: 'recurring', sToken: recurring, schedule: { type: 'recurring', every: '2 seconds' } });
    expect(r.status).toBe(201);
    expect(r.body.schedule).toEqual({ type: 'recurring', every: '2 seconds' });
    sim().addAssets(recurring, [{ ...IMOVIE, totalCount: 1 }]);
    await until('recurring sync', async () => (await api('GET', '/api/v1/bundles')).body.some((b: { adamId: string; subscriptionId: string }) => b.adamId === IMOVIE.adamId && b.subscriptionId === r.body.id), 30_000);
  });

  it('does not touch a token another MDM holds until claimed, then resets what that MDM assigned', async () => {
    const sToken = sim().issueToken({ orgName: 'Taken', assets: [{ ...PAGES, totalCount: 3 }] });
    sim().setMdmInfo(sToken, { id: 'other-mdm', name: 'Other MDM' });
    // The other MDM had assigned two licenses.
    const other = await fetch(`${sim().url}/assets/associate`, { method: 'POST', headers: { authorization: `Bearer ${sToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ assets: [{ adamId: PAGES.adamId, pricingParam: 'STDQ' }], serialNumbers: ['OTHER1', 'OTHER2'] }) });
    expect(other.status).toBe(200);
    await until('foreign assignments', () => sim().assignedCount(sToken, PAGES.adamId) === 2);
    const res = await api('POST', '/api/v1/vpp/subscriptions', { name: 'taken', sToken });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('ClaimRequired');
    expect(res.body.claimHolder).toEqual({ id: 'other-mdm', name: 'Other MDM' });
    const before = sim().requestLog().length;
    expect((await api('GET', `/api/v1/vpp/subscriptions/${res.body.id}`)).body.status).toBe('ClaimRequired');
    expect(sim().requestLog().slice(before).filter((r) => r.path.includes('/assets'))).toEqual([]);
    const claimed = await api('POST', `/api/v1/vpp/subscriptions/${res.body.id}/claim`);
    expect(claimed.status).toBe(200);
    expect(claimed.body.status).toBe('Active');
    await until('foreign licenses released', () => sim().assignedCount(sToken, PAGES.adamId) === 0);
  });

  it('hands out licenses first come first served by sync order; waiting targets get freed licenses', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 2 }]);
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const [a, b, c] = [await w.enroll(), await w.enroll(), await w.enroll()];
    for (const d of [a, b, c]) expect((await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status).toBe(201);
    w.autoSync = false;
    await w.sync(b);
    await w.sync(c);
    await w.sync(a);
    w.autoSync = true;
    for (const d of [b, c]) await until(`${d.udid} licensed`, async () => ['Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', d.udid)));
    const waiting = (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body.find((x: { targetId: string }) => x.targetId === a.udid);
    expect(waiting.status).toBe('Waiting');
    expect(waiting.reason).toContain('2 of 2');
    expect(sim().assignedCount(s.sToken, KEYNOTE.adamId)).toBe(2);
    const summary = (await api('GET', '/api/v1/vpp/licenses')).body.find((x: { adamId: string }) => x.adamId === KEYNOTE.adamId);
    expect(summary).toMatchObject({ total: expect.any(Number), assigned: expect.any(Number) });
    // Unassigning b reclaims its license; the waiting device is pushed and takes it.
    expect((await api('DELETE', `/api/v1/bundles/${bundle}/assignments/device/${b.udid}`)).status).toBe(204);
    await until('a licensed after reclaim', async () => ['Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', a.udid)));
    expect(sim().assignments(s.sToken).filter((x) => x.adamId === KEYNOTE.adamId).map((x) => x.serialNumber).sort()).toEqual([a.serialNumber, c.serialNumber].sort());
  });

  it('licenses taken while an association is at Apple go together in the next associate request', async () => {
    const s = await w.subscribe([{ ...NUMBERS, totalCount: 4 }]);
    const bundle = s.bundles[NUMBERS.adamId]!;
    const devices = [await w.enroll(), await w.enroll(), await w.enroll(), await w.enroll()];
    for (const d of devices) expect((await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid })).status).toBe(201);
    const associates = () => sim().requestLog().filter((r) => r.path.endsWith('/assets/associate')).length;
    const before = associates();
    w.autoSync = false;
    sim().setFault({ kind: 'hold', path: '/assets/associate', times: 1 });
    try {
      await devices[0]!.sync();
      await until('the first association held at Apple', () => sim().heldRequests() === 1);
      await Promise.all(devices.slice(1).map((d) => d.sync()));
      for (const d of devices.slice(1)) await w.waitStatus(bundle, 'device', d.udid, 'Associating');
    } finally {
      sim().releaseHeldRequests();
      w.autoSync = true;
    }
    for (const d of devices) await until(`${d.udid} licensed`, async () => ['Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', d.udid)));
    // The held one, then one request for the three that waited behind it.
    expect(associates() - before).toBe(2);
    expect(sim().assignments(s.sToken).filter((x) => x.adamId === NUMBERS.adamId).map((x) => x.serialNumber).sort()).toEqual(devices.map((d) => d.serialNumber).sort());
  });

  it('installs only after Apple confirmed the association, with iTunesStoreID, PurchaseMethod 1 and ManagementFlags 1', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 5 }]);
    const bundle = s.bundles[PAGES.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    sim().holdEvents();
    try {
      await w.sync(d);
      await w.waitStatus(bundle, 'device', d.udid, 'Associating');
      await new Promise((r) => setTimeout(r, 400)); // several event polls while Apple has not confirmed
      expect((await commandsOf(d.udid)).filter((c) => c.requestType === 'InstallApplication')).toEqual([]);
    } finally {
      sim().releaseEvents();
    }
    await w.waitStatus(bundle, 'device', d.udid, 'Installing');
    await w.sync(d);
    await w.sync(d);
    await w.waitStatus(bundle, 'device', d.udid, 'Installed');
    const cmds = await w.server.storage.commands.list(d.udid);
    const install = cmds.find((c) => c.requestType === 'InstallApplication')!;
    expect(install.payload).toContain('<key>iTunesStoreID</key>');
    const { parsePlistDict } = await import('../mdm/plist.js');
    const cmd = (parsePlistDict(install.payload).Command) as Record<string, unknown>;
    expect(cmd).toMatchObject({ RequestType: 'InstallApplication', iTunesStoreID: Number(PAGES.adamId), ManagementFlags: 1, Options: { PurchaseMethod: 1 } });
    expect(validateCommand(cmd)).toEqual({ ok: true });
    expect(d.appStates().some((a) => a.bundleId === 'com.apple.Pages' && a.managed)).toBe(true);
  });

  it('Refresh Device and Install Bundle make a chosen device win the last license', async () => {
    const s = await w.subscribe([{ ...NUMBERS, totalCount: 1 }]);
    const bundle = s.bundles[NUMBERS.adamId]!;
    const chosen = await w.enroll();
    const other = await w.enroll();
    for (const d of [chosen, other]) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    // Install Bundle takes the license for the chosen device before the other one ever syncs.
    const res = await api('POST', `/api/v1/devices/${chosen.udid}/bundles/${bundle}/install`);
    expect(res.status).toBe(202);
    await w.sync(other);
    await until('chosen licensed', async () => ['Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', chosen.udid)));
    expect(await w.installStatus(bundle, 'device', other.udid)).toBe('Waiting');
    expect(sim().assignments(s.sToken).map((a) => a.serialNumber)).toEqual([chosen.serialNumber]);
    // Install Bundle is for device assignments only.
    await api('POST', '/api/v1/users', { id: 'ib-user', email: 'ib@school.example' });
    const userDevice = await w.enroll({ userId: 'ib-user' });
    expect((await api('POST', `/api/v1/devices/${userDevice.udid}/bundles/${bundle}/install`)).status).toBe(409);
    // Refresh Device: the pushed device syncs first and wins when a license frees.
    const s2 = await w.subscribe([{ ...GARAGEBAND, totalCount: 1 }]);
    const b2 = s2.bundles[GARAGEBAND.adamId]!;
    const x = await w.enroll();
    const y = await w.enroll();
    for (const d of [x, y]) await api('POST', `/api/v1/bundles/${b2}/assignments`, { targetType: 'device', targetId: d.udid });
    expect((await api('POST', `/api/v1/devices/${y.udid}/refresh`)).status).toBe(202);
    await until('refreshed device licensed', async () => ['Associating', 'Installing', 'Installed'].includes(await w.installStatus(b2, 'device', y.udid)));
    await w.sync(x);
    expect(await w.installStatus(b2, 'device', x.udid)).toBe('Waiting');
  });

  it('keeps reserved licenses from FCFS and gives them to the reserved target', async () => {
    const s = await w.subscribe([{ ...IMOVIE, totalCount: 2 }]);
    const bundle = s.bundles[IMOVIE.adamId]!;
    const vip = await w.enroll();
    const [p, q] = [await w.enroll(), await w.enroll()];
    expect((await api('POST', `/api/v1/bundles/${bundle}/reservations`, { targetType: 'device', targetId: vip.udid })).status).toBe(201);
    expect((await api('GET', `/api/v1/bundles/${bundle}/reservations`)).body.map((r: { targetId: string }) => r.targetId)).toEqual([vip.udid]);
    for (const d of [p, q, vip]) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    w.autoSync = false;
    await w.sync(p);
    await w.sync(q);
    w.autoSync = true;
    const qa = (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body.find((a: { targetId: string }) => a.targetId === q.udid);
    expect(qa.status).toBe('Waiting');
    expect(qa.reason).toContain('reserved');
    await w.sync(vip);
    await until('vip licensed', async () => ['Associating', 'Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', vip.udid)));
    const summary = (await api('GET', '/api/v1/vpp/licenses')).body.find((x: { adamId: string }) => x.adamId === IMOVIE.adamId);
    expect(summary.reserved).toBeGreaterThanOrEqual(1);
  });

  it('refuses device assignment below iOS 9 without spending a license', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 1 }]);
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const old = await w.enroll({ osVersion: '8.4' });
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: old.udid });
    await w.sync(old);
    const a = (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body[0];
    expect(a.status).toBe('OSVersionTooOld');
    expect(a.reason).toContain('iOS 9');
    expect(sim().assignedCount(s.sToken, KEYNOTE.adamId)).toBe(0);
    expect(await w.server.storage.ledger.count({ subscriptionId: s.id, adamId: KEYNOTE.adamId, pricingParam: 'STDQ' })).toBe(0);
  });

  it('user assignment: first refresh registers and invites, second installs; one refresh once associated', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 5 }, { ...KEYNOTE, totalCount: 5 }]);
    const pages = s.bundles[PAGES.adamId]!;
    const keynote = s.bundles[KEYNOTE.adamId]!;
    await api('POST', '/api/v1/users', { id: 'u-dana', email: 'dana@school.example', appleAccount: 'dana@icloud.example' });
    const phone = await w.enroll({ userId: 'u-dana', appleAccount: 'dana@icloud.example' });
    await api('POST', `/api/v1/bundles/${pages}/assignments`, { targetType: 'user', targetId: 'u-dana' });
    w.autoSync = false;
    await w.sync(phone); // first refresh: registration, then the invitation is queued
    await w.waitStatus(pages, 'user', 'u-dana', 'InvitationSent');
    expect(sim().users(s.sToken).find((u) => u.clientUserId === 'u-dana')?.status).toBe('Registered');
    await w.sync(phone); // the device gets InviteToProgram; the user accepts with their Apple Account
    await until('user associated at Apple', () => sim().users(s.sToken).find((u) => u.clientUserId === 'u-dana')?.status === 'Associated');
    expect((await commandsOf(phone.udid)).filter((c) => c.requestType === 'InstallApplication')).toEqual([]);
    w.autoSync = true;
    await w.sync(phone); // second refresh: license to the user, then InstallApplication
    await w.waitStatus(pages, 'user', 'u-dana', 'Installing');
    await w.sync(phone); // the next sync asks which managed apps the device has
    await w.sync(phone);
    await w.waitStatus(pages, 'user', 'u-dana', 'Installed');
    expect(sim().assignments(s.sToken).filter((a) => a.clientUserId === 'u-dana').map((a) => a.adamId)).toEqual([PAGES.adamId]);
    // Already associated: a new assignment needs one sync.
    await api('POST', `/api/v1/bundles/${keynote}/assignments`, { targetType: 'user', targetId: 'u-dana' });
    await w.sync(phone);
    await until('keynote licensed in one refresh', async () => ['Installing', 'Installed'].includes(await w.installStatus(keynote, 'user', 'u-dana')));
  });

  it('a user license serves at most 10 of the user\'s devices; the 11th is refused clearly', async () => {
    const s = await w.subscribe([{ ...NUMBERS, totalCount: 3 }]);
    const bundle = s.bundles[NUMBERS.adamId]!;
    await api('POST', '/api/v1/users', { id: 'u-many', email: 'many@school.example', appleAccount: 'many@icloud.example' });
    const devices = [];
    for (let i = 0; i < 11; i++) devices.push(await w.enroll({ userId: 'u-many', appleAccount: 'many@icloud.example' }));
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'user', targetId: 'u-many' });
    await w.sync(devices[0]!);
    await until('associated', () => sim().users(s.sToken).find((u) => u.clientUserId === 'u-many')?.status === 'Associated');
    for (const d of devices) await w.sync(d);
    await until('10 devices installing', async () => {
      const a = (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body[0];
      return a.devices.filter((x: { status: string }) => ['Installing', 'Installed'].includes(x.status)).length === 10;
    });
    const a = (await api('GET', `/api/v1/bundles/${bundle}/assignments`)).body[0];
    const refused = a.devices.filter((x: { status: string }) => x.status === 'DeviceLimitReached');
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toContain('10 devices');
    expect(sim().assignedCount(s.sToken, NUMBERS.adamId)).toBe(1);
  }, 120_000); // 11 enrollments: slow when the whole suite shares two cores

  it('reclaims a device license at CheckOut and gives it to a waiting device', async () => {
    const s = await w.subscribe([{ ...GARAGEBAND, totalCount: 1 }]);
    const bundle = s.bundles[GARAGEBAND.adamId]!;
    const first = await w.enroll();
    const second = await w.enroll();
    for (const d of [first, second]) await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    w.autoSync = false;
    await w.sync(first);
    await w.sync(second);
    w.autoSync = true;
    await until('first licensed', () => sim().assignedCount(s.sToken, GARAGEBAND.adamId) === 1);
    expect(await w.installStatus(bundle, 'device', second.udid)).toBe('Waiting');
    await first.checkOut();
    await until('second licensed after CheckOut', async () => ['Installing', 'Installed'].includes(await w.installStatus(bundle, 'device', second.udid)));
    expect(sim().assignments(s.sToken).map((a) => a.serialNumber)).toEqual([second.serialNumber]);
  });

  it('reclaims licenses when a device or a user is deleted, and shows apps on the device', async () => {
    const s = await w.subscribe([{ ...IMOVIE, totalCount: 3 }, { ...NUMBERS, totalCount: 3 }]);
    const imovie = s.bundles[IMOVIE.adamId]!;
    const numbers = s.bundles[NUMBERS.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${imovie}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    await until('device licensed', () => sim().assignedCount(s.sToken, IMOVIE.adamId) === 1);
    await until('installing', async () => ['Installing', 'Installed'].includes(await w.installStatus(imovie, 'device', d.udid)));
    const view = (await api('GET', `/api/v1/devices/${d.udid}`)).body;
    expect(view.apps).toEqual([expect.objectContaining({ adamId: IMOVIE.adamId, name: 'iMovie', license: 'Associated', via: `device:${d.udid}` })]);
    expect((await api('DELETE', `/api/v1/devices/${d.udid}`)).status).toBe(204);
    expect((await api('GET', `/api/v1/devices/${d.udid}`)).status).toBe(404);
    await until('device license released at Apple', () => sim().assignedCount(s.sToken, IMOVIE.adamId) === 0);

    await api('POST', '/api/v1/users', { id: 'u-gone', email: 'gone@school.example', appleAccount: 'gone@icloud.example' });
    const phone = await w.enroll({ userId: 'u-gone', appleAccount: 'gone@icloud.example' });
    await api('POST', `/api/v1/bundles/${numbers}/assignments`, { targetType: 'user', targetId: 'u-gone' });
    await w.sync(phone);
    await until('user associated', () => sim().users(s.sToken).find((u) => u.clientUserId === 'u-gone')?.status === 'Associated');
    await w.sync(phone);
    await until('user licensed', () => sim().assignedCount(s.sToken, NUMBERS.adamId) === 1);
    expect((await api('DELETE', '/api/v1/users/u-gone')).status).toBe(204);
    await until('user license released at Apple', () => sim().assignedCount(s.sToken, NUMBERS.adamId) === 0);
    expect((await api('GET', `/api/v1/bundles/${numbers}/assignments`)).body).toEqual([]);
    expect((await api('DELETE', '/api/v1/users/u-gone')).status).toBe(404);
  });

  it('says a user who changed Apple Account needs their devices re-enrolled', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 3 }]);
    const pages = s.bundles[PAGES.adamId]!;
    await api('POST', '/api/v1/users', { id: 'u-switch', email: 'switch@school.example', appleAccount: 'old@icloud.example' });
    const phone = await w.enroll({ userId: 'u-switch', appleAccount: 'old@icloud.example' });
    await api('POST', `/api/v1/bundles/${pages}/assignments`, { targetType: 'user', targetId: 'u-switch' });
    await w.sync(phone);
    await until('user associated', () => sim().users(s.sToken).find((u) => u.clientUserId === 'u-switch')?.status === 'Associated');
    const patched = await api('PATCH', '/api/v1/users/u-switch', { appleAccount: 'new@icloud.example' });
    expect(patched.status).toBe(200);
    expect((await api('PATCH', '/api/v1/users/u-switch', { appleAccount: 7 })).status).toBe(400);
    await w.sync(phone);
    const a = (await api('GET', `/api/v1/bundles/${pages}/assignments`)).body[0];
    expect(a.status).toBe('Failed');
    expect(a.reason).toContain('unenroll and re-enroll');
  });

  it('reconcile releases a license whose device checked out without its reclaim (a crash in between)', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 2 }]);
    const bundle = s.bundles[KEYNOTE.adamId]!;
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${bundle}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    await until('licensed', () => sim().assignedCount(s.sToken, KEYNOTE.adamId) === 1);
    await until('associated', async () => (await w.server.storage.ledger.forTarget('device', d.udid))[0]?.state === 'Associated');
    // The CheckOut is stored but the process died before its in-memory reclaim ran.
    await w.server.storage.devices.checkOut(d.udid);
    const res = await api('POST', `/api/v1/vpp/subscriptions/${s.id}/reconcile?graceMs=0`);
    expect(res.status).toBe(200);
    expect(res.body.released).toBeGreaterThanOrEqual(1);
    await until('released at Apple', () => sim().assignedCount(s.sToken, KEYNOTE.adamId) === 0);
    await until('released in the ledger', async () => (await w.server.storage.ledger.forTarget('device', d.udid)).length === 0);
    expect((await api('POST', `/api/v1/vpp/subscriptions/${s.id}/reconcile?graceMs=-5`)).status).toBe(400);
  });

  it('stops a subscription whose token Apple revoked, and rides out 5xx with Retry-After', async () => {
    const s = await w.subscribe([{ ...KEYNOTE, totalCount: 2 }]);
    sim().setFault({ kind: 'error5xx', retryAfterSeconds: 0, times: 2 });
    sim().addAssets(s.sToken, [{ ...GARAGEBAND, totalCount: 1 }]);
    await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`);
    await until('sync through 5xx', async () => (await api('GET', '/api/v1/bundles')).body.some((b: { adamId: string; subscriptionId: string }) => b.adamId === GARAGEBAND.adamId && b.subscriptionId === s.id));
    expect((await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body.status).toBe('Active');
    sim().revokeToken(s.sToken);
    await api('POST', `/api/v1/vpp/subscriptions/${s.id}/run`);
    const stopped = await until('subscription stopped', async () => {
      const v = (await api('GET', `/api/v1/vpp/subscriptions/${s.id}`)).body;
      return v.status === 'Error' ? v : undefined;
    });
    expect(stopped.statusReason).toContain('revoked');
    // A stopped subscription takes no licenses: its assigned devices wait with the reason.
    const d = await w.enroll();
    await api('POST', `/api/v1/bundles/${s.bundles[KEYNOTE.adamId]}/assignments`, { targetType: 'device', targetId: d.udid });
    await w.sync(d);
    const a = (await api('GET', `/api/v1/bundles/${s.bundles[KEYNOTE.adamId]}/assignments`)).body[0];
    expect(a.status).toBe('Waiting');
    expect(a.reason).toContain('Error');
  });

  it('accepts Apple notifications only with the subscription\'s token, once per notificationId', async () => {
    const s = await w.subscribe([{ ...PAGES, totalCount: 1 }]);
    const url = `${w.server.url}/vpp/notifications/${s.id}`;
    const body = { notificationId: crypto.randomUUID(), notificationType: 'TEST_NOTIFICATION', uId: 'x', notification: {} };
    const anon = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(anon.status).toBe(401);
    // Apple's TEST_NOTIFICATION at subscription time reached the endpoint and was accepted.
    expect(sim().notificationLog().some((n) => n.url === url && n.notificationType === 'TEST_NOTIFICATION' && n.lastStatus === 200)).toBe(true);
    const secrets = new SecretBox(decodeKey(await fs.readFile(path.join(w.server.dataDir, 'secrets-key'), 'utf8')));
    const token = secrets.open((await w.server.storage.subscriptions.get(s.id))!.sealedNotificationToken);
    const count = { notificationId: crypto.randomUUID(), notificationType: 'ASSET_COUNT', uId: 'x', notification: { adamId: PAGES.adamId, countDelta: 0, pricingParam: 'STDQ' } };
    const handled = () => w.server.logs.filter((l) => l.msg === 'VPP notification handled').length;
    const before = handled();
    for (let i = 0; i < 2; i++) {
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(count) });
      expect(r.status).toBe(200);
    }
    expect(handled() - before).toBe(1);
    const garbage = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ hello: 1 }) });
    expect(garbage.status).toBe(400);
    const bad = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' }, body: JSON.stringify(body) });
    expect(bad.status).toBe(401);
    expect((await fetch(`${w.server.url}/vpp/notifications/nope`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(404);
  });
});
