// An enrolled TestDevice on a test server: enrollment token (optionally for a user or a re-enrollment of a
// UDID), profile, Authenticate and TokenUpdate, with the device's token known to the simulated APNs.
import { expect } from 'vitest';
import { TestDevice } from './device-client.js';
import type { TestServer } from './server.js';

export async function enrollmentUrl(server: TestServer, body: { userId?: string; udid?: string } = {}): Promise<string> {
  const e = await server.api('POST', '/api/v1/enrollments', body);
  expect(e.status, JSON.stringify(e.body)).toBe(201);
  return e.body.url as string;
}

export async function enrolledDevice(server: TestServer, opts: { userId?: string; reachAt?: { publicUrl: string; url: string } } = {}): Promise<TestDevice> {
  const device = new TestDevice();
  await device.enroll(await enrollmentUrl(server, opts.userId ? { userId: opts.userId } : {}), opts.reachAt);
  expect((await device.authenticate()).status).toBe(200);
  server.sandbox?.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
  expect((await device.tokenUpdate()).status).toBe(200);
  return device;
}

/** A second device object that claims `victim`'s UDID, with its own profile from `url`. */
export async function claimant(victim: TestDevice, url: string): Promise<TestDevice> {
  const other = new TestDevice(victim.udid);
  await other.enroll(url);
  return other;
}
