// The APNs sender (mdm/apns.ts) against the simulated APNs and a wire recorder: delivery, the exact request,
// sessions and GOAWAY, dead tokens, certificate and topic errors, and retries when APNs is unwell.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate, randomUUID } from 'node:crypto';
import { createApnsSender, type PushSender, type PushTarget } from '../mdm/apns.js';
import { startSimulatedApns, type ApnsDelivery, type SimulatedApns } from '../simulator/apns.js';
import { makePushCertificate, startRecorder, newToken, waitFor } from './support/apns-fixtures.js';

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

  it('rejects for good a topic that is not the certificate UID (BadTopic), a token of another topic, a disallowed topic', async () => {
    const token = newToken();
    apns.registerToken(token, push.topic);
    const [badTopic] = await newSender({ topic: 'com.apple.mgmt.External.not-mine' }).send([target(token)]);
    expect(badTopic).toMatchObject({ status: 'rejected', reason: 'BadTopic' });

    const other = newToken();
    apns.registerToken(other, 'com.apple.mgmt.External.someone-else');
    const [notForTopic] = await newSender().send([target(other)]);
    expect(notForTopic).toMatchObject({ status: 'rejected', reason: 'DeviceTokenNotForTopic' });

    apns.disallowTopic(push.topic);
    try {
      const [disallowed] = await newSender().send([target(token)]);
      expect(disallowed).toMatchObject({ status: 'rejected', reason: 'TopicDisallowed' });
    } finally {
      apns.disallowTopic(push.topic, false);
    }
    expect((await newSender().send([target(token)]))[0]).toMatchObject({ status: 'delivered' });
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
