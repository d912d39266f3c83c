// A bare-bones signed MDM client for protocol tests: it sends exactly the bytes a test gives it, so tests
// can forge, truncate and replay. The full device model lives in simulator/device.ts.
import crypto from 'node:crypto';
import forge from 'node-forge';
import { buildPlist, parsePlistDict } from '../../mdm/plist.js';
import type { CertifiedKey } from '../../mdm/identity.js';
import { signMdmMessage } from '../../simulator/signing.js';

export interface Enrolled { identity: CertifiedKey; topic: string; serverURL: string; checkInURL: string; profile: Record<string, unknown> }

/** `reachAt` maps the profile's public URLs to where the test server really listens. */
export async function fetchProfile(url: string, reachAt?: { publicUrl: string; url: string }): Promise<Enrolled> {
  const local = (u: string) => (reachAt ? u.replace(reachAt.publicUrl, reachAt.url) : u);
  const res = await fetch(local(url));
  if (res.status !== 200) throw new Error(`profile fetch ${res.status}: ${await res.text()}`);
  return enrolledFrom(parsePlistDict(Buffer.from(await res.arrayBuffer())), local);
}

/** The identity and URLs an enrollment profile (or an update of it, sent with InstallProfile) gives the device. */
export function enrolledFrom(profile: Record<string, unknown>, local: (u: string) => string = (u) => u): Enrolled {
  const payloads = profile.PayloadContent as Array<Record<string, unknown>>;
  const p12 = payloads.find((p) => p.PayloadType === 'com.apple.security.pkcs12')!;
  const mdm = payloads.find((p) => p.PayloadType === 'com.apple.mdm')!;
  const asn1 = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(p12.PayloadContent as Uint8Array).toString('binary')));
  const pkcs12 = forge.pkcs12.pkcs12FromAsn1(asn1, p12.Password as string);
  const key = pkcs12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]![0]!.key!;
  const certs = pkcs12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag]!;
  const leaf = certs.find((b) => !b.cert!.extensions.some((e: { name: string; cA?: boolean }) => e.name === 'basicConstraints' && e.cA))!.cert!;
  return {
    identity: { certPem: forge.pki.certificateToPem(leaf), keyPem: forge.pki.privateKeyToPem(key) },
    topic: mdm.Topic as string, serverURL: local(mdm.ServerURL as string), checkInURL: local(mdm.CheckInURL as string), profile,
  };
}

export interface SendOptions { contentType?: string; signature?: string | null; signWith?: CertifiedKey; headers?: Record<string, string> }

export async function sendRaw(url: string, body: Buffer | string, identity: CertifiedKey | undefined, kind: 'checkin' | 'connect', opts: SendOptions = {}) {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? (kind === 'checkin' ? 'application/x-apple-aspen-mdm-checkin' : 'application/x-apple-aspen-mdm; charset=UTF-8'),
    ...opts.headers,
  };
  const signer = opts.signWith ?? identity;
  if (opts.signature !== null) {
    headers['mdm-signature'] = opts.signature ?? signMdmMessage(bytes, signer!);
  }
  const res = await fetch(url, { method: 'PUT', headers, body: new Uint8Array(bytes) });
  const text = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body: text, text: text.toString('utf8'), contentType: res.headers.get('content-type') };
}

export class TestDevice {
  /** A UDID of its own, or another device's (a test that claims it). */
  constructor(readonly udid = crypto.randomBytes(20).toString('hex')) {}
  readonly serial = 'C' + crypto.randomBytes(5).toString('hex').toUpperCase().slice(0, 10);
  readonly token = crypto.randomBytes(32);
  readonly pushMagic = crypto.randomUUID().toUpperCase();
  enrolled!: Enrolled;

  async enroll(url: string, reachAt?: { publicUrl: string; url: string }) { this.enrolled = await fetchProfile(url, reachAt); return this.enrolled; }
  checkin(dict: Record<string, unknown>, opts?: SendOptions) {
    return sendRaw(this.enrolled.checkInURL, buildPlist({ Topic: this.enrolled.topic, UDID: this.udid, ...dict }), this.enrolled.identity, 'checkin', opts);
  }
  authenticate(extra: Record<string, unknown> = {}) {
    return this.checkin({ MessageType: 'Authenticate', OSVersion: '17.5', BuildVersion: '21F79', ProductName: 'iPhone15,2', SerialNumber: this.serial, ...extra });
  }
  tokenUpdate() {
    return this.checkin({ MessageType: 'TokenUpdate', Token: this.token, PushMagic: this.pushMagic, UnlockToken: Buffer.from('unlock'), AwaitingConfiguration: false });
  }
  connect(dict: Record<string, unknown>, opts?: SendOptions) {
    return sendRaw(this.enrolled.serverURL, buildPlist({ UDID: this.udid, ...dict }), this.enrolled.identity, 'connect', opts);
  }
  /** Idle, then answer every command with `answer` until the server has nothing more. */
  async drain(answer: (cmd: Record<string, unknown>) => Record<string, unknown> = () => ({ Status: 'Acknowledged' })) {
    const seen: Array<Record<string, unknown>> = [];
    let res = await this.connect({ Status: 'Idle' });
    while (res.status === 200 && res.body.length > 0) {
      const cmd = parsePlistDict(res.body);
      seen.push(cmd);
      res = await this.connect({ CommandUUID: cmd.CommandUUID, ...answer(cmd) });
    }
    if (res.status !== 200) throw new Error(`connect failed ${res.status}: ${res.text}`);
    return seen;
  }
  pushTokenHex() { return this.token.toString('hex'); }
}

/** A TestDevice through the admin API: Authenticate, its token registered at the simulated APNs, TokenUpdate. */
export async function enrollTestDevice(
  server: { api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>; sandbox?: { apns: { registerToken(token: string, topic: string): void } } },
  opts: { osVersion?: string } = {},
): Promise<TestDevice> {
  const device = new TestDevice();
  const e = await server.api('POST', '/api/v1/enrollments', {});
  if (e.status !== 201) throw new Error(`enrollment: ${e.status} ${JSON.stringify(e.body)}`);
  await device.enroll(e.body.url);
  const auth = await device.authenticate(opts.osVersion ? { OSVersion: opts.osVersion } : {});
  if (auth.status !== 200) throw new Error(`Authenticate: ${auth.status} ${auth.text}`);
  server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
  const token = await device.tokenUpdate();
  if (token.status !== 200) throw new Error(`TokenUpdate: ${token.status} ${token.text}`);
  return device;
}
