// SPEC §4, last point (issue 2, item 8): every kind of bad device input gets a 4xx (never 401, never 5xx),
// a 'device request refused' log line whose reason names the problem, and leaves every table as it was.
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import type { CertifiedKey } from '../mdm/identity.js';
import { signMdmMessage } from '../simulator/signing.js';
import { availableBackends } from './support/databases.js';
import { startTestServer, type TestServer } from './support/server.js';
import { tableSnapshot } from './support/snapshot.js';
import { TestDevice, fetchProfile, sendRaw, type Enrolled, type SendOptions } from './support/device-client.js';

const MAX_BODY = 64 * 1024;
const CONTENT_TYPE = { checkin: 'application/x-apple-aspen-mdm-checkin', connect: 'application/x-apple-aspen-mdm' } as const;
const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';
const APPLE_DOCTYPE = '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n';

type Endpoint = 'checkin' | 'connect';

/** What the cases need, known only once the server and devices exist. */
interface Ctx {
  device: TestDevice;
  /** Enrolled, then checked out: the server must treat it as unknown. */
  gone: TestDevice;
  /** Issued by the server CA for an enrollment but never authenticated. */
  stranger: Enrolled;
  /** Self-signed, no relation to the server CA. */
  selfSigned: CertifiedKey;
  /** Claims the server CA as issuer (same issuer name and key id) but is signed by another key. */
  fakeIssued: CertifiedKey;
  /** The enrolled device's certificate paired with a key that is not its own. */
  stolenCert: CertifiedKey;
  commandUUID: string;
  /** A fresh, plausible UDID nobody enrolled. */
  unknownUdid: string;
}

/** One request to send: the exact body bytes plus how to label and sign them (default: signed by the enrolled device). */
interface Probe {
  body: Buffer | string;
  /** null sends no Content-Type header at all. */
  contentType?: string | null;
  signature?: string | null;
  signWith?: CertifiedKey;
  headers?: Record<string, string>;
}

interface BadCase {
  title: string;
  endpoint: Endpoint;
  probe: (c: Ctx) => Probe;
  status: 400 | 403 | 413 | 415;
  /** Must match the logged reason: a word that names the problem. */
  reason: RegExp;
}

// ---- bodies ----

/** A request that would change stored state if accepted: a new push token, or an Idle that takes the queued command. */
function validDict(c: Ctx, ep: Endpoint, device = c.device): Record<string, unknown> {
  return ep === 'checkin'
    ? { MessageType: 'TokenUpdate', Topic: device.enrolled.topic, UDID: device.udid, Token: crypto.randomBytes(32), PushMagic: crypto.randomUUID(), AwaitingConfiguration: false }
    : { UDID: device.udid, Status: 'Idle' };
}
const valid = (c: Ctx, ep: Endpoint) => buildPlist(validDict(c, ep));
/** The valid dict with changes; a key set to undefined is removed. */
function edited(c: Ctx, ep: Endpoint, changes: Record<string, unknown>): string {
  const dict: Record<string, unknown> = { ...validDict(c, ep), ...changes };
  for (const k of Object.keys(dict)) if (dict[k] === undefined) delete dict[k];
  return buildPlist(dict);
}
const tokenUpdate = (c: Ctx, changes: Record<string, unknown>) => edited(c, 'checkin', changes);
const report = (c: Ctx, changes: Record<string, unknown>) => edited(c, 'connect', changes);

/** Hand-written plist text, for shapes plist.build will not produce. */
function rawPlist(c: Ctx, ep: Endpoint, inner: string, prolog = XML_HEAD + APPLE_DOCTYPE): string {
  const keys = ep === 'checkin'
    ? `<key>MessageType</key><string>TokenUpdate</string><key>Topic</key><string>${c.device.enrolled.topic}</string><key>UDID</key><string>${c.device.udid}</string>`
      + `<key>Token</key><data>${crypto.randomBytes(32).toString('base64')}</data><key>PushMagic</key><string>PM</string>`
    : `<key>UDID</key><string>${c.device.udid}</string><key>Status</key><string>Idle</string>`;
  return `${prolog}<plist version="1.0"><dict>${keys}${inner}</dict></plist>\n`;
}

/** An Acknowledged report for the queued command carrying `inner` among its result keys (accepted, it would change the command). */
const ackReport = (c: Ctx, inner: string) => XML_HEAD + APPLE_DOCTYPE
  + `<plist version="1.0"><dict><key>UDID</key><string>${c.device.udid}</string><key>Status</key><string>Acknowledged</string>`
  + `<key>CommandUUID</key><string>${c.commandUUID}</string>${inner}</dict></plist>\n`;

function billionLaughs(c: Ctx, ep: Endpoint): string {
  const levels = 'abcdefghi'.split('');
  const decls = levels.map((name, i) => (i === 0
    ? `<!ENTITY a "${'a'.repeat(10)}">`
    : `<!ENTITY ${name} "${`&${levels[i - 1]};`.repeat(10)}">`)).join('\n  ');
  return rawPlist(c, ep, '<key>Junk</key><string>&i;</string>', `${XML_HEAD}<!DOCTYPE plist [\n  ${decls}\n]>\n`);
}
const externalEntity = (c: Ctx, ep: Endpoint) =>
  rawPlist(c, ep, '<key>Junk</key><string>&x;</string>', `${XML_HEAD}<!DOCTYPE plist [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>\n`);

const half = (s: string) => Buffer.from(s).subarray(0, Math.floor(Buffer.byteLength(s) / 2));

// ---- identities a forger could have ----

function rsaKeyPair() {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** A device-looking certificate made with node-forge: self-signed, or naming `claimIssuerOf`'s issuer and key id. */
function forgedIdentity(claimIssuerOf?: string): CertifiedKey {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = '01' + crypto.randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const subject = [{ name: 'commonName', value: 'forged device' }];
  cert.setSubject(subject);
  const extensions: object[] = [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true }];
  if (claimIssuerOf) {
    const real = forge.pki.certificateFromPem(claimIssuerOf);
    cert.setIssuer(real.issuer.attributes);
    const akid = real.getExtension('authorityKeyIdentifier') as { value: string } | null;
    if (akid) extensions.push({ id: '2.5.29.35', value: akid.value });
  } else {
    cert.setIssuer(subject);
  }
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(keys.privateKey), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKey };
}

const changedTables = (a: Record<string, string>, b: Record<string, string>) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((t) => a[t] !== b[t]).sort();

// ---- the cases ----

const one = (endpoint: Endpoint, title: string, probe: BadCase['probe'], status: BadCase['status'], reason: RegExp): BadCase[] =>
  [{ endpoint, title, probe, status, reason }];
const both = (title: string, probe: (c: Ctx, ep: Endpoint) => Probe, status: BadCase['status'], reason: RegExp): BadCase[] =>
  (['checkin', 'connect'] as const).map((endpoint) => ({ endpoint, title, probe: (c: Ctx) => probe(c, endpoint), status, reason }));
const other = (ep: Endpoint): Endpoint => (ep === 'checkin' ? 'connect' : 'checkin');

const CASES: BadCase[] = [
  // Content type
  ...both('Content-Type application/json', (c, ep) => ({ body: valid(c, ep), contentType: 'application/json' }), 415, /Content-Type must be/),
  ...both('Content-Type text/xml', (c, ep) => ({ body: valid(c, ep), contentType: 'text/xml' }), 415, /Content-Type must be/),
  ...both('no Content-Type header', (c, ep) => ({ body: valid(c, ep), contentType: null }), 415, /Content-Type must be .*\(none\)/),
  ...both('the other endpoint\'s Content-Type', (c, ep) => ({ body: valid(c, ep), contentType: CONTENT_TYPE[other(ep)] }), 415, /Content-Type must be/),

  // Body encoding and framing
  ...both('empty body', () => ({ body: '' }), 400, /empty body/),
  ...both('garbage text', () => ({ body: 'hello, I am definitely a plist' }), 400, /not an XML plist/),
  ...both('random bytes (not UTF-8)', () => ({ body: Buffer.from('c3289fff00fe8081', 'hex') }), 400, /not valid UTF-8/),
  ...both('XML plist cut in half (signed as cut)', (c, ep) => ({ body: half(valid(c, ep)) }), 400, /malformed XML plist/),
  ...both('binary plist magic with junk', () => ({ body: Buffer.concat([Buffer.from('bplist00'), crypto.randomBytes(64)]) }), 400, /binary plist/),
  ...both('root <array> instead of <dict>', () => ({ body: `${XML_HEAD}${APPLE_DOCTYPE}<plist version="1.0"><array><string>UDID</string></array></plist>` }), 400, /root is an <array>/),
  ...both('XML that is not a plist', () => ({ body: `${XML_HEAD}<html><body>hi</body></html>` }), 400, /malformed XML plist/),
  ...both('unparsable <integer>', (c, ep) => ({ body: rawPlist(c, ep, '<key>Count</key><integer>twelve</integer>') }), 400, /not a valid number/),
  ...both('body over the size cap (100 KB)', (c, ep) => ({ body: rawPlist(c, ep, `<key>Junk</key><string>${'x'.repeat(100 * 1024)}</string>`) }), 413, /larger than 65536 bytes/),
  ...both('gzip bomb (small on the wire, over the cap inflated)', () => ({ body: zlib.gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20)), headers: { 'content-encoding': 'gzip' } }), 413, /larger than 65536 bytes/),
  ...both('unknown Content-Encoding', (c, ep) => ({ body: valid(c, ep), headers: { 'content-encoding': 'x-rot13' } }), 415, /encoding/),

  // XML entity tricks
  ...both('billion laughs entity expansion', (c, ep) => ({ body: billionLaughs(c, ep) }), 400, /ENTITY/),
  ...both('external entity (file:///etc/passwd)', (c, ep) => ({ body: externalEntity(c, ep) }), 400, /ENTITY/),
  ...both('DOCTYPE with an internal subset', (c, ep) => ({ body: rawPlist(c, ep, '', `${XML_HEAD}<!DOCTYPE plist [ <!ELEMENT plist ANY> ]>\n`) }), 400, /internal DTD subset/),
  ...both('reference to an undeclared entity', (c, ep) => ({ body: rawPlist(c, ep, '<key>Junk</key><string>&xxe;</string>') }), 400, /undeclared entity/),

  // Parsed without complaint by the XML parser, yet not XML 1.0 characters (or absurdly deep): refused as bad input,
  // not left to fail in the database write or a recursive walk.
  ...one('connect', 'NUL character reference (&#0;) in a result string', (c) => ({ body: ackReport(c, '<key>DeviceName</key><string>a&#0;b</string>') }), 400, /character/i),
  ...one('connect', 'raw NUL byte in a result string', (c) => ({ body: ackReport(c, '<key>DeviceName</key><string>a\u0000b</string>') }), 400, /character/i),
  ...one('connect', 'lone surrogate (&#xD800;) in a result string', (c) => ({ body: ackReport(c, '<key>DeviceName</key><string>a&#xD800;b</string>') }), 400, /character|surrogate/i),
  ...one('checkin', 'NUL character reference (&#0;) in PushMagic', (c) => ({ body: rawPlist(c, 'checkin', '').replace('<string>PM</string>', '<string>P&#0;M</string>') }), 400, /character/i),
  ...one('connect', 'result nested 4000 <array>s deep (under the size cap)', (c) => ({ body: ackReport(c, `<key>Junk</key>${'<array>'.repeat(4000)}${'</array>'.repeat(4000)}`) }), 400, /nest|deep|depth/i),

  // Check-in message shape
  ...one('checkin', 'missing UDID', (c) => ({ body: tokenUpdate(c, { UDID: undefined }) }), 400, /UDID: missing/),
  ...one('checkin', 'empty UDID', (c) => ({ body: tokenUpdate(c, { UDID: '' }) }), 400, /UDID: empty/),
  ...one('checkin', 'User Enrollment (EnrollmentID, no UDID)', (c) => ({ body: tokenUpdate(c, { UDID: undefined, EnrollmentID: 'ENR-1' }) }), 400, /User Enrollment/),
  ...one('checkin', 'missing MessageType', (c) => ({ body: tokenUpdate(c, { MessageType: undefined }) }), 400, /MessageType: missing/),
  ...one('checkin', 'MessageType is an <integer>', (c) => ({ body: tokenUpdate(c, { MessageType: 7 }) }), 400, /MessageType: expected a string/),
  ...one('checkin', 'unknown MessageType FlyToTheMoon', (c) => ({ body: tokenUpdate(c, { MessageType: 'FlyToTheMoon' }) }), 400, /unknown MessageType 'FlyToTheMoon'/),
  ...one('checkin', 'UserAuthenticate without UserID', (c) => ({ body: tokenUpdate(c, { MessageType: 'UserAuthenticate' }) }), 400, /UserID: missing/),
  ...one('checkin', 'unsupported MessageType DeclarativeManagement', (c) => ({ body: tokenUpdate(c, { MessageType: 'DeclarativeManagement' }) }), 400, /'DeclarativeManagement' is not supported/),
  ...one('checkin', 'TokenUpdate without Token', (c) => ({ body: tokenUpdate(c, { Token: undefined }) }), 400, /Token: missing/),
  ...one('checkin', 'TokenUpdate with Token as <string>', (c) => ({ body: tokenUpdate(c, { Token: crypto.randomBytes(32).toString('base64') }) }), 400, /Token: expected <data>/),
  ...one('checkin', 'TokenUpdate with an empty <data> Token', (c) => ({ body: tokenUpdate(c, { Token: Buffer.alloc(0) }) }), 400, /Token: empty/),
  ...one('checkin', 'TokenUpdate without PushMagic', (c) => ({ body: tokenUpdate(c, { PushMagic: undefined }) }), 400, /PushMagic: missing/),
  ...one('checkin', 'Topic of another server', (c) => ({ body: tokenUpdate(c, { Topic: 'com.apple.mgmt.External.someone-else' }) }), 400, /not this server's push topic/),

  // Command report shape
  ...one('connect', 'missing UDID', (c) => ({ body: report(c, { UDID: undefined }) }), 400, /UDID: missing/),
  ...one('connect', 'missing Status', (c) => ({ body: report(c, { Status: undefined }) }), 400, /Status: missing/),
  ...one('connect', 'unknown Status', (c) => ({ body: report(c, { Status: 'Sleeping', CommandUUID: c.commandUUID }) }), 400, /Status: unknown value 'Sleeping'/),
  ...one('connect', 'Acknowledged without CommandUUID', (c) => ({ body: report(c, { Status: 'Acknowledged' }) }), 400, /CommandUUID: missing/),
  ...one('connect', 'Error with an ErrorChain that is not an array', (c) => ({ body: report(c, { Status: 'Error', CommandUUID: c.commandUUID, ErrorChain: 'boom' }) }), 400, /ErrorChain: expected an array/),

  // Forged or missing signatures
  ...both('no Mdm-Signature header', (c, ep) => ({ body: valid(c, ep), signature: null }), 400, /missing Mdm-Signature/),
  ...both('Mdm-Signature is not base64', (c, ep) => ({ body: valid(c, ep), signature: '%%% not a signature %%%' }), 400, /not base64/),
  ...both('Mdm-Signature is base64 but not DER', (c, ep) => ({ body: valid(c, ep), signature: Buffer.from('hello world, no CMS here').toString('base64') }), 400, /not valid DER/),
  ...both('signed by a self-signed certificate', (c, ep) => ({ body: valid(c, ep), signWith: c.selfSigned }), 400, /not issued by this server's CA/),
  ...both('signed by a certificate claiming the server CA as issuer', (c, ep) => ({ body: valid(c, ep), signWith: c.fakeIssued }), 400, /not issued by this server's CA/),
  ...both('the device\'s certificate with a key that is not its own', (c, ep) => ({ body: valid(c, ep), signWith: c.stolenCert }), 400, /does not verify/),
  ...both('a real device signature over a different body (replay)', (c, ep) => {
    const body = valid(c, ep);
    return { body, signature: signMdmMessage(Buffer.from(body.replace('</dict>', '<key>X</key><string>y</string></dict>')), c.device.enrolled.identity) };
  }, 400, /digest does not match the request body/),
  ...both('signed by another server-issued identity that is not bound to this UDID', (c, ep) => ({ body: valid(c, ep), signWith: c.stranger.identity }), 400, /not the one bound/),

  // Devices the server does not know (Apple's 403, not 401)
  ...both('unknown UDID, signed by an enrolled identity', (c, ep) => ({ body: edited(c, ep, { UDID: c.unknownUdid }) }), 403, /not enrolled/),
  ...one('connect', 'never-authenticated identity reporting its own UDID', (c) => ({ body: report(c, { UDID: c.unknownUdid }), signWith: c.stranger.identity }), 403, /not enrolled/),
  ...one('checkin', 'CheckOut of an unknown UDID', (c) => ({ body: tokenUpdate(c, { MessageType: 'CheckOut', UDID: c.unknownUdid, Token: undefined, PushMagic: undefined, AwaitingConfiguration: undefined }) }), 403, /not enrolled/),
  ...both('checked-out device, validly signed', (c, ep) => ({ body: buildPlist(validDict(c, ep, c.gone)), signWith: c.gone.enrolled.identity }), 403, /not enrolled/),
];

describe.each(availableBackends())('bad device input on %s', (backend) => {
  let server: TestServer;
  let ctx: Ctx;
  let initialSnapshot: Record<string, string>;
  let initialLastSeen: Date | null;

  async function newEnrollment(): Promise<string> {
    const e = await server.api('POST', '/api/v1/enrollments', {});
    expect(e.status).toBe(201);
    return e.body.url;
  }

  beforeAll(async () => {
    server = await startTestServer(backend, { maxDeviceBodyBytes: MAX_BODY });
    const apns = server.sandbox!.apns;

    const device = new TestDevice();
    await device.enroll(await newEnrollment());
    apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    expect((await device.authenticate()).status).toBe(200);
    expect((await device.tokenUpdate()).status).toBe(200);

    const gone = new TestDevice();
    await gone.enroll(await newEnrollment());
    expect((await gone.authenticate()).status).toBe(200);
    expect((await gone.tokenUpdate()).status).toBe(200);
    expect((await gone.checkin({ MessageType: 'CheckOut' })).status).toBe(200);

    const stranger = await fetchProfile(await newEnrollment());

    const queued = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    expect(queued.status).toBe(201);
    // The enqueue's wake-up is asynchronous; let it finish so only the requests under test could change anything.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const stored = await server.storage.devices.get(device.udid);
      const pending = (await server.storage.pushQueue.pending()).some((p) => p.udid === device.udid);
      if (stored?.lastPushedAt && !pending) break;
      if (Date.now() > deadline) throw new Error('the enqueue push did not complete');
      await new Promise((r) => setTimeout(r, 50));
    }

    ctx = {
      device, gone, stranger, commandUUID: queued.body.commandUUID,
      selfSigned: forgedIdentity(),
      fakeIssued: forgedIdentity(device.enrolled.identity.certPem),
      stolenCert: { certPem: device.enrolled.identity.certPem, keyPem: rsaKeyPair().privateKey },
      unknownUdid: new TestDevice().udid,
    };
    initialSnapshot = await tableSnapshot(server.database.pool);
    initialLastSeen = (await server.storage.devices.get(device.udid))!.lastSeenAt;
    expect((await server.storage.commands.get(ctx.commandUUID))!.status).toBe('Queued');
  });
  afterAll(async () => { await server?.close(); });

  async function send(ep: Endpoint, p: Probe) {
    const url = ep === 'checkin' ? ctx.device.enrolled.checkInURL : ctx.device.enrolled.serverURL;
    if (p.contentType !== null) {
      const opts: SendOptions = { contentType: p.contentType, signature: p.signature, signWith: p.signWith, headers: p.headers };
      return sendRaw(url, p.body, ctx.device.enrolled.identity, ep, opts);
    }
    // sendRaw always labels the body; this one must go out with no Content-Type at all.
    const bytes = Buffer.from(p.body);
    const res = await fetch(url, { method: 'PUT', headers: { 'mdm-signature': signMdmMessage(bytes, ctx.device.enrolled.identity) }, body: new Uint8Array(bytes) });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, body, text: body.toString('utf8'), contentType: res.headers.get('content-type') };
  }

  // Soft assertions: a case that goes wrong reports every way it went wrong (status, log, stored state) at once.
  it.each(CASES.map((c) => ({ ...c, name: `${c.endpoint}: ${c.title}` })))('$name → $status', async (c) => {
    const probe = c.probe(ctx);
    const before = await tableSnapshot(server.database.pool);
    const mark = server.logs.length;

    const res = await send(c.endpoint, probe);

    expect.soft(res.status, `response: ${res.text}`).toBe(c.status);
    if (c.status === 403) {
      expect.soft(res.contentType).toContain('application/json');
      expect.soft(res.text).toBe(JSON.stringify({ code: 'com.apple.unrecognized.device' }));
    }
    const lines = server.logs.slice(mark);
    const refused = lines.filter((l) => l.msg === 'device request refused');
    expect.soft(refused, `log lines: ${JSON.stringify(lines).slice(0, 600)}`).toHaveLength(1);
    const line = refused[0] ?? {};
    expect.soft(line).toMatchObject({ level: 'warn', status: c.status });
    expect.soft(line.endpoint ?? line.path).toBe(line.endpoint ? c.endpoint : `/mdm/${c.endpoint}`);
    expect.soft(String(line.reason)).toMatch(c.reason);
    expect.soft(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([]);

    expect.soft(changedTables(before, await tableSnapshot(server.database.pool))).toEqual([]);
  });

  it('after all of that, nothing changed and the enrolled device still works', async () => {
    expect.soft(changedTables(initialSnapshot, await tableSnapshot(server.database.pool))).toEqual([]);
    expect.soft((await server.storage.commands.get(ctx.commandUUID))!.status).toBe('Queued');
    expect.soft((await server.storage.devices.get(ctx.device.udid))!.lastSeenAt).toEqual(initialLastSeen);
    expect.soft(server.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([]);

    const idle = await ctx.device.connect({ Status: 'Idle' });
    expect(idle.status, idle.text).toBe(200);
    expect(parsePlistDict(idle.body).CommandUUID).toBe(ctx.commandUUID);
    expect((await server.storage.commands.get(ctx.commandUUID))!.status).toBe('Sent');
    const done = await ctx.device.connect({ Status: 'Acknowledged', CommandUUID: ctx.commandUUID, ProfileList: [] });
    expect(done.status, done.text).toBe(200);
    expect((await server.storage.commands.get(ctx.commandUUID))!.status).toBe('Acknowledged');
    expect((await ctx.device.tokenUpdate()).status).toBe(200);
    expect((await server.storage.devices.get(ctx.device.udid))!.lastSeenAt!.getTime()).toBeGreaterThan(initialLastSeen!.getTime());
  });
});
