import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { X509Certificate, randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';
import { createApnsSender, type PushSender, type PushTarget } from '../mdm/apns.js';
import { startSimulatedApns, type ApnsDelivery, type SimulatedApns } from '../simulator/apns.js';
import { createApnsControlClient } from '../simulator/apns-client.js';

const UID_OID = '0.9.2342.19200300.100.1.1';

/** A self-signed stand-in for an MDM push certificate: subject UID = topic, as Apple issues them. */
function makePushCertificate(topic = `com.apple.mgmt.External.${randomUUID()}`) {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const subject = [
    { type: UID_OID, value: topic },
    { name: 'commonName', value: `APSP:${randomUUID()}` },
    { name: 'countryName', value: 'US' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey), topic };
}

/** A self-signed TLS server certificate for 127.0.0.1, used as its own trust anchor. */
function makeServerCertificate() {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'recorder' }]);
  cert.setIssuer([{ name: 'commonName', value: 'recorder' }]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** A bare HTTP/2 server that records what a sender really puts on the wire and answers 200. */
async function startRecorder(opts: { goawayAfterReply?: boolean } = {}) {
  const server = makeServerCertificate();
  const requests: Array<{ headers: http2.IncomingHttpHeaders; body: string; clientCert?: Buffer }> = [];
  const state = { sessions: 0, closedSessions: 0 };
  const h2 = http2.createSecureServer({ cert: server.certPem, key: server.keyPem, requestCert: true, rejectUnauthorized: false });
  const live = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    state.sessions++;
    live.add(session);
    session.on('close', () => live.delete(session));
  });
  h2.on('secureConnection', (socket: TLSSocket) => socket.on('close', () => state.closedSessions++));
  h2.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const session = stream.session!;
      const socket = session.socket as TLSSocket;
      requests.push({ headers, body: Buffer.concat(chunks).toString('utf8'), clientCert: socket.getPeerCertificate().raw });
      stream.respond({ ':status': 200, 'apns-id': '11111111-2222-3333-4444-555555555555' });
      stream.end(() => {
        if (!opts.goawayAfterReply) return;
        // As APNs does when it retires a connection: GOAWAY with a {reason}, then close.
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!, Buffer.from('{"reason":"Shutdown"}'));
        session.close();
      });
    });
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const port = (h2.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: server.certPem,
    requests,
    get sessions() {
      return state.sessions;
    },
    get closedSessions() {
      return state.closedSessions;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of live) s.destroy();
        h2.close(() => r());
      }),
  };
}

const newToken = () => randomBytes(32).toString('hex');

async function waitFor(what: string, cond: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('APNs sender against the simulated APNs', () => {
  let apns: SimulatedApns;
  let push: ReturnType<typeof makePushCertificate>;
  const senders: PushSender[] = [];
  const newSender = (over: Partial<Parameters<typeof createApnsSender>[0]> = {}) => {
    const s = createApnsSender({ url: apns.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: apns.caPem, ...over });
    senders.push(s);
    return s;
  };
  const target = (token: string, pushMagic = randomUUID()): PushTarget => ({ udid: `UDID-${token.slice(0, 8)}`, token, pushMagic });

  beforeAll(async () => {
    apns = await startSimulatedApns();
    push = makePushCertificate();
    apns.trustPushCertificate(push.certPem);
  });
  afterEach(async () => {
    apns.setFault({ kind: 'none' });
    await Promise.all(senders.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await apns.close();
  });

  it('delivers {"mdm": PushMagic} to the token and reports the apns-id', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const seen: ApnsDelivery[] = [];
    const off = apns.onDelivery((d) => seen.push(d));
    const sender = newSender();
    const t = target(token, 'F6A3B7C4-0000-4D1E-9A3B-PUSHMAGIC001');
    const [outcome] = await sender.send([t]);
    off();
    expect(outcome).toMatchObject({ udid: t.udid, status: 'delivered' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ token, topic: push.topic, payload: { mdm: t.pushMagic } });
    expect(Object.keys(seen[0]!.payload)).toEqual(['mdm']);
    expect(outcome!.status === 'delivered' && outcome.apnsId).toBe(seen[0]!.apnsId);
  });

  it('sends exactly the documented request on the wire', async () => {
    const recorder = await startRecorder();
    try {
      const sender = newSender({ url: recorder.url, caPem: recorder.caPem });
      const token = newToken();
      const outcomes = await sender.send([{ udid: 'U1', token: token.toUpperCase(), pushMagic: '7C3B1E9A-magic' }]);
      expect(outcomes).toEqual([{ udid: 'U1', status: 'delivered', apnsId: '11111111-2222-3333-4444-555555555555' }]);
      expect(recorder.requests).toHaveLength(1);
      const { headers, body, clientCert } = recorder.requests[0]!;
      expect(headers[':method']).toBe('POST');
      expect(headers[':path']).toBe(`/3/device/${token}`);
      expect(headers['apns-push-type']).toBe('mdm');
      expect(headers['apns-topic']).toBe(push.topic);
      expect(body).toBe('{"mdm":"7C3B1E9A-magic"}');
      expect(clientCert?.equals(new X509Certificate(push.certPem).raw)).toBe(true);
      // The recorder's close() waits for the sender's session to end.
      await sender.close();
    } finally {
      await recorder.close();
    }
  });

  it('opens a new session after APNs sends GOAWAY', async () => {
    const recorder = await startRecorder({ goawayAfterReply: true });
    try {
      const sender = newSender({ url: recorder.url, caPem: recorder.caPem });
      const first = await sender.send([{ udid: 'G1', token: newToken(), pushMagic: 'm1' }]);
      expect(first[0]?.status).toBe('delivered');
      await waitFor('the GOAWAY to close the first session', () => recorder.closedSessions === 1);
      const second = await sender.send([{ udid: 'G2', token: newToken(), pushMagic: 'm2' }]);
      expect(second[0]?.status).toBe('delivered');
      expect(recorder.sessions).toBe(2);
      await sender.close();
    } finally {
      await recorder.close();
    }
  });

  it('escapes PushMagic as JSON and accepts upper-case hex tokens', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const sender = newSender();
    const seen: ApnsDelivery[] = [];
    const off = apns.onDelivery((d) => seen.push(d));
    const [outcome] = await sender.send([{ udid: 'U2', token: token.toUpperCase(), pushMagic: 'pm "quoted"' }]);
    off();
    expect(outcome?.status).toBe('delivered');
    expect(seen.map((d) => d.payload)).toEqual([{ mdm: 'pm "quoted"' }]);
  });

  it('multiplexes many pushes over one HTTP/2 session', async () => {
    const before = apns.stats();
    const sender = newSender({ concurrency: 16 });
    const tokens = Array.from({ length: 60 }, newToken);
    for (const t of tokens) apns.registerToken(t, push.topic);
    const first = await sender.send(tokens.slice(0, 40).map((t) => target(t)));
    const second = await sender.send(tokens.slice(40).map((t) => target(t)));
    expect([...first, ...second].every((o) => o.status === 'delivered')).toBe(true);
    const after = apns.stats();
    expect(after.delivered - before.delivered).toBe(60);
    expect(after.sessions - before.sessions).toBe(1);
  });

  it('reports an unregistered token as unregistered (410 Unregistered)', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    apns.unregisterToken(token);
    const [outcome] = await newSender().send([target(token)]);
    expect(outcome).toEqual({ udid: target(token).udid, status: 'unregistered', reason: 'Unregistered' });
  });

  it('reports unknown and malformed tokens as dead (BadDeviceToken)', async () => {
    const sender = newSender();
    const outcomes = await sender.send([
      { udid: 'unknown', token: newToken(), pushMagic: 'x' },
      { udid: 'malformed', token: 'not-hex/../x', pushMagic: 'x' },
    ]);
    expect(outcomes).toEqual([
      { udid: 'unknown', status: 'unregistered', reason: 'BadDeviceToken' },
      { udid: 'malformed', status: 'unregistered', reason: 'BadDeviceToken' },
    ]);
  });

  it('fails on a topic that is not the certificate UID (BadTopic) and on a token of another topic', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const [badTopic] = await newSender({ topic: 'com.apple.mgmt.External.not-mine' }).send([target(token)]);
    expect(badTopic).toMatchObject({ status: 'failed', reason: 'BadTopic' });

    const other = newToken();
    apns.registerToken(other, 'com.apple.mgmt.External.someone-else');
    const [notForTopic] = await newSender().send([target(other)]);
    expect(notForTopic).toMatchObject({ status: 'failed', reason: 'DeviceTokenNotForTopic' });
  });

  it('fails with 403 BadCertificate when the push certificate is not trusted', async () => {
    const stranger = makePushCertificate();
    const token = newToken();
    apns.registerToken(token, stranger.topic);
    const before = apns.stats();
    const [outcome] = await newSender({ certPem: stranger.certPem, keyPem: stranger.keyPem, topic: stranger.topic }).send([target(token)]);
    expect(outcome).toMatchObject({ status: 'failed', reason: 'BadCertificate' });
    expect(apns.stats().rejected.BadCertificate).toBe((before.rejected.BadCertificate ?? 0) + 1);
    expect(apns.stats().delivered).toBe(before.delivered);
  });

  it('asks for a retry when throttled (429 TooManyRequests) and on 500/503', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const sender = newSender();
    apns.setFault({ kind: 'throttle' });
    expect(await sender.send([target(token)])).toEqual([{ udid: target(token).udid, status: 'retry', reason: 'TooManyRequests' }]);
    apns.setFault({ kind: 'error5xx' });
    const outcomes = await sender.send([target(token), target(token)]);
    expect(outcomes.map((o) => o.status)).toEqual(['retry', 'retry']);
    expect(outcomes.map((o) => (o.status === 'retry' ? o.reason : '')).sort()).toEqual(['InternalServerError', 'ServiceUnavailable']);
    apns.setFault({ kind: 'none' });
    expect((await sender.send([target(token)]))[0]?.status).toBe('delivered');
  });

  it('asks for a retry when APNs is down, and reconnects once it is back', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const sender = newSender();
    expect((await sender.send([target(token)]))[0]?.status).toBe('delivered');
    const sessionsBefore = apns.stats().sessions;

    apns.setFault({ kind: 'down' });
    const down = await sender.send([target(token), target(token)]);
    expect(down.map((o) => o.status)).toEqual(['retry', 'retry']);
    expect(down[0]).toMatchObject({ reason: expect.stringMatching(/^Connection: /) });

    apns.setFault({ kind: 'none' });
    const back = await sender.send([target(token)]);
    expect(back[0]?.status).toBe('delivered');
    expect(apns.stats().sessions).toBe(sessionsBefore + 1);
  });

  it('times out a slow APNs as a retry', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    apns.setFault({ kind: 'slow', delayMs: 2_000 });
    const [outcome] = await newSender({ timeoutMs: 200 }).send([target(token)]);
    expect(outcome).toMatchObject({ status: 'retry', reason: 'Timeout' });
  });

  it('refuses an untrusted APNs server certificate (no CA given)', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const [outcome] = await newSender({ caPem: undefined }).send([target(token)]);
    expect(outcome).toMatchObject({ status: 'retry', reason: expect.stringMatching(/CERT|SIGNATURE|SELF_SIGNED/i) });
  });

  it('rejects bad configuration with a typed error', () => {
    expect(() => createApnsSender({ url: 'http://127.0.0.1:1', certPem: push.certPem, keyPem: push.keyPem, topic: push.topic })).toThrow(/https/);
    const other = makePushCertificate();
    expect(() => createApnsSender({ url: apns.url, certPem: push.certPem, keyPem: other.keyPem, topic: push.topic })).toThrow(/do not match/);
  });
});

describe('simulated APNs answers like Apple', () => {
  let apns: SimulatedApns;
  let push: ReturnType<typeof makePushCertificate>;
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    apns = await startSimulatedApns();
    push = makePushCertificate();
    apns.trustPushCertificate(push.certPem);
    session = http2.connect(apns.url, { ca: apns.caPem, cert: push.certPem, key: push.keyPem });
  });
  afterAll(async () => {
    session.close();
    await apns.close();
  });

  function raw(path: string, headers: Record<string, string>, body?: string) {
    return new Promise<{ status: number; apnsId?: string; json?: Record<string, unknown> }>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': path, ...headers });
      let status = 0;
      let apnsId: string | undefined;
      let text = '';
      req.on('response', (h) => {
        status = Number(h[':status']);
        apnsId = h['apns-id'] as string | undefined;
      });
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => resolve({ status, apnsId, json: text ? JSON.parse(text) : undefined }));
      req.on('error', reject);
      req.end(body);
    });
  }
  const mdm = (topic: string) => ({ 'apns-push-type': 'mdm', 'apns-topic': topic });

  it('applies Apple reasons to malformed requests', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const body = '{"mdm":"magic"}';
    expect(await raw(`/3/device/${token}`, { 'apns-topic': push.topic }, body)).toMatchObject({ status: 400, json: { reason: 'InvalidPushType' } });
    expect(await raw(`/3/device/${token}`, { 'apns-push-type': 'alert', 'apns-topic': push.topic }, body)).toMatchObject({ status: 400, json: { reason: 'InvalidPushType' } });
    expect(await raw(`/3/device/${token}`, { 'apns-push-type': 'mdm' }, body)).toMatchObject({ status: 400, json: { reason: 'MissingTopic' } });
    expect(await raw(`/3/device/zz${token}`, mdm(push.topic), body)).toMatchObject({ status: 400, json: { reason: 'BadDeviceToken' } });
    expect(await raw(`/3/device/${token}`, mdm(push.topic))).toMatchObject({ status: 400, json: { reason: 'PayloadEmpty' } });
    expect(await raw(`/3/device/${token}`, mdm(push.topic), 'mdm=magic')).toMatchObject({ status: 400, json: { reason: 'BadPayload' } });
    expect(await raw(`/3/device/${token}`, mdm(push.topic), '{"mdm":"m","aps":{}}')).toMatchObject({ status: 400, json: { reason: 'BadPayload' } });
    expect(await raw(`/3/device/${token}`, mdm(push.topic), '{"mdm":1}')).toMatchObject({ status: 400, json: { reason: 'BadPayload' } });
    expect(await raw(`/3/device/${token}`, mdm(push.topic), JSON.stringify({ mdm: 'x'.repeat(5000) }))).toMatchObject({ status: 413, json: { reason: 'PayloadTooLarge' } });
    expect(await raw('/3/nope', mdm(push.topic), body)).toMatchObject({ status: 404, json: { reason: 'BadPath' } });
    expect(apns.stats().delivered).toBe(0);

    const ok = await raw(`/3/device/${token}`, mdm(push.topic), body);
    expect(ok.status).toBe(200);
    expect(ok.apnsId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ok.json).toBeUndefined();
    expect(apns.stats().delivered).toBe(1);
  });

  it('answers 410 with the unregistration timestamp and accepts the token again after re-registration', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const before = Date.now();
    apns.unregisterToken(token);
    const gone = await raw(`/3/device/${token}`, mdm(push.topic), '{"mdm":"m"}');
    expect(gone.status).toBe(410);
    expect(gone.json?.reason).toBe('Unregistered');
    expect(gone.json?.timestamp).toBeGreaterThanOrEqual(before);
    apns.registerToken(token, push.topic);
    expect((await raw(`/3/device/${token}`, mdm(push.topic), '{"mdm":"m"}')).status).toBe(200);
  });

  it('refuses a push certificate without a UID and bad faults', () => {
    const noUid = forge.pki.createCertificate();
    const keys = forge.pki.rsa.generateKeyPair({ bits: 1024 });
    noUid.publicKey = keys.publicKey;
    noUid.serialNumber = '01';
    noUid.validity.notBefore = new Date();
    noUid.validity.notAfter = new Date(Date.now() + 86_400_000);
    noUid.setSubject([{ name: 'commonName', value: 'no uid' }]);
    noUid.setIssuer([{ name: 'commonName', value: 'no uid' }]);
    noUid.sign(keys.privateKey, forge.md.sha256.create());
    expect(() => apns.trustPushCertificate(forge.pki.certificateToPem(noUid))).toThrow(/UID/);
    expect(() => apns.setFault({ kind: 'nope' as 'none' })).toThrow(/fault kind/);
    expect(() => apns.registerToken('xyz', push.topic)).toThrow(/hex/);
  });
});

describe('simulated APNs control API (for simulated devices in another process)', () => {
  let apns: SimulatedApns;
  let push: ReturnType<typeof makePushCertificate>;
  let sender: PushSender;

  beforeAll(async () => {
    apns = await startSimulatedApns();
    push = makePushCertificate();
    apns.trustPushCertificate(push.certPem);
    sender = createApnsSender({ url: apns.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: apns.caPem });
  });
  afterAll(async () => {
    await sender.close();
    await apns.close();
  });

  it('registers tokens, streams deliveries, unregisters and sets faults over HTTP', async () => {
    const client = createApnsControlClient(apns.controlUrl);
    const mine = newToken();
    const other = newToken();
    await client.registerToken(mine, push.topic);
    await client.registerToken(other, push.topic);

    const got: ApnsDelivery[] = [];
    const unsubscribe = await client.subscribe((d) => got.push(d));
    const outcomes = await sender.send([
      { udid: 'A', token: mine, pushMagic: 'magic-A' },
      { udid: 'B', token: other, pushMagic: 'magic-B' },
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['delivered', 'delivered']);
    await waitFor('two deliveries on the stream', () => got.length >= 2);
    expect(got.map((d) => [d.token, d.topic, d.payload]).sort()).toEqual(
      [
        [mine, push.topic, { mdm: 'magic-A' }],
        [other, push.topic, { mdm: 'magic-B' }],
      ].sort(),
    );

    await client.unregisterToken(mine);
    expect((await sender.send([{ udid: 'A', token: mine, pushMagic: 'magic-A' }]))[0]).toMatchObject({ status: 'unregistered', reason: 'Unregistered' });

    await client.setFault({ kind: 'throttle' });
    expect((await sender.send([{ udid: 'B', token: other, pushMagic: 'magic-B' }]))[0]).toMatchObject({ status: 'retry', reason: 'TooManyRequests' });
    await client.setFault({ kind: 'none' });
    expect((await client.stats()).rejected).toMatchObject({ Unregistered: 1, TooManyRequests: 1 });

    unsubscribe();
    await waitFor('the stream to close', () => apns.stats().subscribers === 0);
    await expect(client.unregisterToken(newToken())).rejects.toThrow(/404/);
    await expect(client.setFault({ kind: 'bogus' as 'none' })).rejects.toThrow(/400/);
  });

  it('filters the raw stream by ?tokens= and writes one JSON object per line', async () => {
    const wanted = newToken();
    const unwanted = newToken();
    apns.registerToken(wanted, push.topic);
    apns.registerToken(unwanted, push.topic);
    const controller = new AbortController();
    const res = await fetch(`${apns.controlUrl}/deliveries?tokens=${wanted}`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const reader = res.body!.getReader();
    await sender.send([
      { udid: 'U', token: unwanted, pushMagic: 'no' },
      { udid: 'W', token: wanted, pushMagic: 'yes' },
    ]);
    let text = '';
    while (!text.includes('\n')) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const lines = text.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ token: wanted, payload: { mdm: 'yes' } });
  });

  it('resubscribes by itself when the simulated APNs restarts on the same port', async () => {
    const first = await startSimulatedApns();
    const controlPort = Number(new URL(first.controlUrl).port);
    const client = createApnsControlClient(first.controlUrl);
    const got: ApnsDelivery[] = [];
    const unsubscribe = await client.subscribe((d) => got.push(d));
    await first.close();

    const second = await startSimulatedApns({ controlPort });
    try {
      await waitFor('the client to reconnect', () => second.stats().subscribers === 1);
      second.trustPushCertificate(push.certPem);
      const token = newToken();
      second.registerToken(token, push.topic);
      const s = createApnsSender({ url: second.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: second.caPem });
      expect((await s.send([{ udid: 'R', token, pushMagic: 'after-restart' }]))[0]?.status).toBe('delivered');
      await s.close();
      await waitFor('the delivery after restart', () => got.length === 1);
      expect(got[0]).toMatchObject({ token, payload: { mdm: 'after-restart' } });
    } finally {
      unsubscribe();
      await second.close();
    }
  });

  it('rejects subscribe() when the control URL is wrong', async () => {
    const dead = await startSimulatedApns();
    const url = dead.controlUrl;
    await dead.close();
    await expect(createApnsControlClient(url).subscribe(() => {})).rejects.toThrow(/deliveries/);
  });
});
