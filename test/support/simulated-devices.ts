// Shared by the simulator tests: devices on a fake clock with a recording push registry, command envelopes,
// the Apple-schema check every device answer must pass, and a scripted MDM endpoint (loopback HTTP) that
// verifies each Mdm-Signature with the server's own verifier.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { validateCommandResponse } from '../../mdm/apple-schema.js';
import { createServerCA, createSignatureVerifier, issueDeviceIdentity } from '../../mdm/identity.js';
import { buildPlist, parsePlistDict } from '../../mdm/plist.js';
import { buildEnrollmentProfile } from '../../mdm/profile.js';
import type { DeviceEnvironment, PushRegistry } from '../../simulator/device.js';
import { SimulatorHttpClient } from '../../simulator/http.js';

export type Dict = Record<string, unknown>;

export const PAGES = 361309726;
export const KEYNOTE = 361285480;

// Every DeviceInformation query Apple lists (the schema's Queries items), so the device is asked for all.
export const ALL_QUERIES = [
  'UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ModelName', 'Model', 'ModelNumber', 'ProductName', 'SerialNumber',
  'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'CellularTechnology', 'IMEI', 'MEID', 'ICCID', 'WiFiMAC',
  'BluetoothMAC', 'IsSupervised', 'IsMultiUser', 'IsMDMLostModeEnabled', 'IsDeviceLocatorServiceEnabled',
  'IsActivationLockEnabled', 'IsDoNotDisturbInEffect', 'IsCloudBackupEnabled', 'AwaitingConfiguration',
  'iTunesStoreAccountIsActive', 'iTunesStoreAccountHash', 'TimeZone', 'DiagnosticSubmissionEnabled', 'AppAnalyticsEnabled',
  'PersonalHotspotEnabled', 'DataRoamingEnabled', 'VoiceRoamingEnabled', 'IsRoaming', 'HostName', 'LocalHostName',
  'EthernetMAC', 'OSUpdateSettings', 'PushToken',
];

export function recordingPush(): PushRegistry & { registered: Map<string, string> } {
  const registered = new Map<string, string>();
  return {
    registered,
    registerToken: (t, topic) => void registered.set(t, topic),
    unregisterToken: (t) => void registered.delete(t),
  };
}

export function clockEnv(extra: Partial<DeviceEnvironment> = {}) {
  const clock = { t: 1_700_000_000_000 };
  const http = new SimulatorHttpClient({ maxSockets: 4 });
  const env: DeviceEnvironment = { http, push: recordingPush(), installDelayMs: 1000, now: () => clock.t, ...extra };
  return { env, clock, http };
}

let seq = 0;
export const envelope = (command: Dict) => ({ CommandUUID: `cmd-${++seq}-${randomUUID()}`, Command: command });

export function expectValid(requestType: string, report: Dict) {
  const r = validateCommandResponse(requestType, report);
  expect(r, `${requestType} report: ${JSON.stringify(report)}`).toEqual({ ok: true });
  // What goes on the wire must survive the plist round trip unchanged in meaning.
  const again = parsePlistDict(buildPlist(report));
  expect(validateCommandResponse(requestType, again)).toEqual({ ok: true });
}

// -------------------------------------------------------------------------------------------------
// A scripted MDM endpoint: serves one enrollment profile, verifies signatures, and answers connects from
// a script, so the device's side of the protocol can be checked message by message.

export interface Reply {
  status: number;
  type?: string;
  body?: string;
}

export interface Scripted {
  url: string;
  profileUrl: string;
  topic: string;
  identity: { certPem: string; keyPem: string };
  /** The CA that issued `identity`; it signs renewed identities too. */
  ca: { certPem: string; keyPem: string };
  /** The subject CN of the certificate that signed each request, in order. */
  signers: string[];
  checkins: Dict[];
  reports: Dict[];
  /** Next connect replies: a command envelope, null for the empty body, or another HTTP answer; empty script → empty body. */
  script: Array<Dict | null | Reply>;
  /** While set, connect replies wait for it (holds a device's connection open). */
  gate?: Promise<void>;
  close(): Promise<void>;
}

export async function startScriptedServer(): Promise<Scripted> {
  const ca = await createServerCA('Simulator Test CA');
  const verifier = createSignatureVerifier(ca.certPem);
  const identity = await issueDeviceIdentity(ca, { commonName: 'device-under-test' });
  const topic = `com.apple.mgmt.External.${randomUUID()}`;
  const state: Scripted = {
    url: '',
    profileUrl: '',
    topic,
    identity: { certPem: identity.certPem, keyPem: identity.keyPem },
    ca,
    signers: [],
    checkins: [],
    reports: [],
    script: [],
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'GET' && req.url === '/enroll') {
        const { plist } = buildEnrollmentProfile({
          pkcs12: identity.pkcs12,
          pkcs12Password: identity.password,
          topic,
          serverURL: `${state.url}/connect`,
          checkInURL: `${state.url}/checkin`,
          organization: 'Test School',
          identifier: 'com.example.test.enroll',
        });
        res.writeHead(200, { 'content-type': 'application/x-apple-aspen-config' });
        res.end(plist);
        return;
      }
      let signer;
      try {
        signer = verifier.verifyMdmSignature(req.headers['mdm-signature'] as string | undefined, body);
      } catch (err) {
        res.writeHead(400).end((err as Error).message);
        return;
      }
      expect(signer.subjectCN).toMatch(/^device-under-test/);
      state.signers.push(signer.subjectCN);
      const dict = parsePlistDict(body);
      if (req.url === '/checkin') {
        expect(req.headers['content-type']).toBe('application/x-apple-aspen-mdm-checkin');
        state.checkins.push(dict);
        res.writeHead(200).end();
        return;
      }
      expect(req.headers['content-type']).toBe('application/x-apple-aspen-mdm; charset=UTF-8');
      state.reports.push(dict);
      if (state.gate) await state.gate;
      const next = state.script.shift() ?? null;
      if (next === null) res.writeHead(200).end();
      else if (typeof next.status === 'number') {
        const r = next as Reply;
        res.writeHead(r.status, r.type ? { 'content-type': r.type } : {}).end(r.body ?? '');
      } else res.writeHead(200, { 'content-type': 'application/xml' }).end(buildPlist(next as Dict));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.profileUrl = `${state.url}/enroll`;
  state.close = () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
  return state;
}
