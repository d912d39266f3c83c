// The simulated APNs itself: Apple's reasons for malformed pushes, 410 with its timestamp, the control
// API that simulated devices in another process use, store-and-forward and its state across a restart.
import fsp from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApnsSender, type PushSender } from '../mdm/apns.js';
import { startSimulatedApns, type ApnsDelivery, type ApnsRejection, type SimulatedApns } from '../simulator/apns.js';
import { createApnsControlClient } from '../simulator/apns-client.js';
import { makePushCertificate, newToken, waitFor } from './support/apns-fixtures.js';

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

describe('simulated APNs keeps what a restart must not lose', () => {
  let push: ReturnType<typeof makePushCertificate>;
  let dir: string;

  beforeAll(async () => {
    push = makePushCertificate();
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vpp-mdm-apns-state-'));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('stores the newest push for a device nobody listens for and delivers it when a stream covers the device', async () => {
    const apns = await startSimulatedApns();
    apns.trustPushCertificate(push.certPem);
    const sender = createApnsSender({ url: apns.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: apns.caPem });
    try {
      const token = newToken();
      apns.registerToken(token, push.topic);
      // Accepted (Apple answers 200 for an offline device), then coalesced: only the newest is kept.
      expect((await sender.send([{ udid: 'O', token, pushMagic: 'first' }]))[0]?.status).toBe('delivered');
      expect((await sender.send([{ udid: 'O', token, pushMagic: 'second' }]))[0]?.status).toBe('delivered');
      const got: ApnsDelivery[] = [];
      const unsubscribe = await createApnsControlClient(apns.controlUrl).subscribe((d) => got.push(d));
      await waitFor('the stored push', () => got.length >= 1);
      unsubscribe();
      expect(got.map((d) => d.payload.mdm)).toEqual(['second']);
    } finally {
      await sender.close();
      await apns.close();
    }
  });

  it('streams the pushes it refused, so simulated devices can report them', async () => {
    const apns = await startSimulatedApns();
    apns.trustPushCertificate(push.certPem);
    const sender = createApnsSender({ url: apns.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: apns.caPem });
    try {
      const rejections: ApnsRejection[] = [];
      const unsubscribe = await createApnsControlClient(apns.controlUrl).subscribe(() => {}, { onRejection: (r) => rejections.push(r) });
      const unknown = newToken();
      await sender.send([{ udid: 'U', token: unknown, pushMagic: 'm' }]);
      await waitFor('the rejection on the stream', () => rejections.length >= 1);
      unsubscribe();
      expect(rejections[0]).toMatchObject({ token: unknown, topic: push.topic, status: 400, reason: 'BadDeviceToken' });
    } finally {
      await sender.close();
      await apns.close();
    }
  });

  it('with a state file, a restarted APNs knows every token, keeps its TLS identity and ports, and the stream reconnects', async () => {
    const stateFile = path.join(dir, 'apns.json');
    const first = await startSimulatedApns({ stateFile });
    const live = newToken();
    const gone = newToken();
    first.registerToken(live, push.topic);
    first.registerToken(gone, push.topic);
    first.unregisterToken(gone);
    const got: ApnsDelivery[] = [];
    const client = createApnsControlClient(first.controlUrl);
    const unsubscribe = await client.subscribe((d) => got.push(d));
    const before = { url: first.url, controlUrl: first.controlUrl, caPem: first.caPem };
    await first.close();
    expect(JSON.parse(await fsp.readFile(stateFile, 'utf8')).tokens).toHaveLength(2);

    const second = await startSimulatedApns({ stateFile });
    second.trustPushCertificate(push.certPem);
    const sender = createApnsSender({ url: second.url, certPem: push.certPem, keyPem: push.keyPem, topic: push.topic, caPem: before.caPem });
    try {
      expect({ url: second.url, controlUrl: second.controlUrl, caPem: second.caPem }).toEqual(before);
      await waitFor('the stream to reconnect', () => second.stats().subscribers === 1);
      const [toLive, toGone] = await sender.send([
        { udid: 'L', token: live, pushMagic: 'still-here' },
        { udid: 'G', token: gone, pushMagic: 'gone' },
      ]);
      expect(toLive?.status).toBe('delivered');
      expect(toGone).toMatchObject({ status: 'unregistered', reason: 'Unregistered' });
      await waitFor('the delivery after the restart', () => got.length === 1);
      expect(got[0]).toMatchObject({ token: live, payload: { mdm: 'still-here' } });
    } finally {
      unsubscribe();
      await sender.close();
      await second.close();
    }
  });

  it('refuses a state file it cannot read, naming it, and leaves the file as it was', async () => {
    const stateFile = path.join(dir, 'broken.json');
    await fsp.writeFile(stateFile, '{"format":"vpp-mdm simulated APNs 1","tokens":[{"token":"zz"}]}');
    await expect(startSimulatedApns({ stateFile })).rejects.toThrow(/broken\.json.*move it away/);
    expect(await fsp.readFile(stateFile, 'utf8')).toContain('"zz"');
  });
});
