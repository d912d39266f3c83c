// A sandbox world for VPP tests: the real server (sandbox: simulated APNs and Apps and Books in-process)
// and simulated iPhones that answer pushes by syncing, as real ones do.
import { SimulatedDevice, type DeviceEnvironment, type DeviceSpec } from '../../simulator/device.js';
import { SimulatorHttpClient } from '../../simulator/http.js';
import type { SimAsset } from '../../simulator/apps-and-books.js';
import type { Backend } from './databases.js';
import { startTestServer, type TestServer } from './server.js';
import { until } from './wait.js';

export interface World {
  server: TestServer;
  devices: Map<string, SimulatedDevice>;
  /** Pushes make devices sync unless paused (tests that need a strict sync order pause it). */
  autoSync: boolean;
  /** `vppLicenseCheck`: what the device's App Store says of VPP installs (default: every one is licensed). */
  enroll(spec?: DeviceSpec & { userId?: string; vppLicenseCheck?: DeviceEnvironment['vppLicenseCheck'] }): Promise<SimulatedDevice>;
  /** One sync of the device, then wait until the server has finished the distribution it started. */
  sync(d: SimulatedDevice): Promise<void>;
  subscribe(assets: SimAsset[], opts?: { name?: string; orgName?: string; expDate?: Date; claimManagement?: boolean }): Promise<{ id: string; sToken: string; bundles: Record<string, string>; status: string }>;
  installStatus(bundleId: string, targetType: 'user' | 'device', targetId: string): Promise<string>;
  waitStatus(bundleId: string, targetType: 'user' | 'device', targetId: string, status: string): Promise<any>;
  close(): Promise<void>;
}

export async function startWorld(backend: Backend, opts: Parameters<typeof startTestServer>[1] = {}): Promise<World> {
  // Apple's 30 s between status polls and 5 minutes' wait for a notification, and the checks on installs,
  // shortened (configuration, not a shortcut in the code): the sandbox's simulated service refuses polls
  // faster than vppEventPollMs, so the rule itself still holds.
  const server = await startTestServer(backend, { vppEventPollMs: 100, vppEventNotificationWaitMs: 300, vppInstallCheckMs: 300, ...opts });
  const http = new SimulatorHttpClient({ maxSockets: 32 });
  const devices = new Map<string, SimulatedDevice>();
  const running = new Map<string, Promise<void>>();
  const apns = server.sandbox!.apns;
  const syncOnce = (d: SimulatedDevice): Promise<void> => {
    const prev = running.get(d.udid) ?? Promise.resolve();
    const next = prev.then(async () => { if (d.enrolled) await d.sync(); }).catch(() => {});
    running.set(d.udid, next);
    return next;
  };
  const world: World = {
    server, devices, autoSync: true,
    async enroll(spec = {}) {
      const d = new SimulatedDevice({ http, push: apns, installDelayMs: 20, vppLicenseCheck: spec.vppLicenseCheck }, spec);
      const e = await server.api('POST', '/api/v1/enrollments', spec.userId ? { userId: spec.userId } : {});
      if (e.status !== 201) throw new Error(`enrollment: ${JSON.stringify(e.body)}`);
      await d.enroll(e.body.url);
      devices.set(d.pushTokenHex, d);
      return d;
    },
    async sync(d) {
      await syncOnce(d);
      await server.licensing.settled();
    },
    async subscribe(assets, o = {}) {
      const sToken = server.sandbox!.appsAndBooks.issueToken({ orgName: o.orgName ?? 'Test School', expDate: o.expDate, assets });
      const res = await server.api('POST', '/api/v1/vpp/subscriptions', { name: o.name ?? 'test', sToken, ...(o.claimManagement ? { claimManagement: true } : {}) });
      if (res.status !== 201) throw new Error(`subscription: ${res.status} ${JSON.stringify(res.body)}`);
      const bundles: Record<string, string> = {};
      for (const b of (await server.api('GET', '/api/v1/bundles')).body) if (b.subscriptionId === res.body.id) bundles[b.adamId] = b.id;
      return { id: res.body.id, sToken, bundles, status: res.body.status };
    },
    async installStatus(bundleId, targetType, targetId) {
      const list = (await server.api('GET', `/api/v1/bundles/${bundleId}/assignments`)).body as Array<{ targetType: string; targetId: string; status: string }>;
      return list.find((a) => a.targetType === targetType && a.targetId === targetId)?.status ?? 'none';
    },
    async waitStatus(bundleId, targetType, targetId, status) {
      let last: unknown;
      try {
        return await until(`${targetType} ${targetId} to reach ${status}`, async () => {
          const list = (await server.api('GET', `/api/v1/bundles/${bundleId}/assignments`)).body as Array<{ targetType: string; targetId: string; status: string }>;
          const a = list.find((x) => x.targetType === targetType && x.targetId === targetId);
          last = a;
          return a?.status === status ? a : undefined;
        }, 20_000);
      } catch (err) {
        throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`);
      }
    },
    async close() {
      await Promise.allSettled([...running.values()]);
      await server.close();
    },
  };
  apns.onDelivery((delivery) => {
    const d = devices.get(delivery.token);
    if (d && world.autoSync) void syncOnce(d);
  });
  return world;
}
