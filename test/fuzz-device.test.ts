// Fuzzing the device endpoints (issue 9, item 14; SPEC §4): mutated check-in and connect bodies, derived
// from real device captures and from the simulator's own messages (test/support/fuzz-seeds.ts), with every
// kind of breakage in test/support/plist-mutations.ts. Each body goes out twice:
//   - signed by the enrolled device over the mutated bytes with a right Content-Type, so the signature check
//     passes and the parser and message checks are what is tested;
//   - unsigned, wrongly signed (garbage, over other bytes, by a look-alike CA) or with a wrong Content-Type.
// Properties: never a 5xx and never 401; the server still answers its health check after each batch and
// logged no error; every refusal is a 4xx whose message names the problem (with one 'device request refused'
// log line); a body our own parser refuses is refused with exactly that reason; a request that is not
// properly signed or labelled is never accepted; and a refused request changes no stored row.
//
// Variants: `npm test` runs the short one (a fixed seed, a few hundred bodies per endpoint and backend).
//   FUZZ_LONG=1 npx vitest run test/fuzz-device.test.ts      10,000 bodies per endpoint (20,000 in all) per backend, random seed
//   FUZZ_RUNS=50000 npx vitest run test/fuzz-device.test.ts  any count per endpoint
//   TEST_BACKENDS=pglite ...                                 one backend
// Each run prints its seed; a failure prints the batch's seed and fast-check's path:
//   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz-device.test.ts   replays the counterexample.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerCA, issueDeviceIdentity, type CertifiedKey } from '../mdm/identity.js';
import { parseCheckIn, parseReport } from '../mdm/messages.js';
import { parsePlistDict } from '../mdm/plist.js';
import { signMdmMessage } from '../simulator/signing.js';
import { availableBackends } from './support/databases.js';
import { TestDevice } from './support/device-client.js';
import {
  changedTables, countReason, countStatus, expectClearMessage, expectHealthy, expectNoPrototypePollution,
  fuzz, fuzzRuns, fuzzTimeout, newTally, settled, storedState,
  type FuzzTally, type StoredState,
} from './support/fuzz-harness.js';
import { deviceSeeds } from './support/fuzz-seeds.js';
import { isOpen } from './support/known-open-findings.js';
import { bodyOf, recipe, type Endpoint, type Recipe, type Seed } from './support/plist-mutations.js';
import { startTestServer, type TestServer } from './support/server.js';

const MAX_BODY = 128 * 1024;
const RUNS: Record<Endpoint, number> = { checkin: fuzzRuns(200, 10_000), connect: fuzzRuns(200, 10_000) };
const CONTENT_TYPE: Record<Endpoint, string> = { checkin: 'application/x-apple-aspen-mdm-checkin', connect: 'application/x-apple-aspen-mdm' };
const other = (ep: Endpoint): Endpoint => (ep === 'checkin' ? 'connect' : 'checkin');

type Wrong =
  | { kind: 'unsigned' }
  | { kind: 'garbage signature'; signature: string }
  | { kind: 'signature over other bytes' }
  | { kind: 'identity from a look-alike CA' }
  | { kind: 'wrong Content-Type'; contentType: string };

interface Input { recipe: Recipe; contentType: string; wrong: Wrong }

function inputs(ep: Endpoint, seedCount: number): fc.Arbitrary<Input> {
  const right = CONTENT_TYPE[ep];
  return fc.record({
    recipe: recipe(seedCount),
    contentType: fc.constantFrom(right, `${right}; charset=UTF-8`, right.toUpperCase(), `${right} ;charset="utf-8"`),
    wrong: fc.oneof(
      fc.constant({ kind: 'unsigned' as const }),
      fc.record({ kind: fc.constant('garbage signature' as const), signature: fc.oneof(
        fc.constantFrom('%%% not base64 %%%', 'AAAA', '=', ' '), fc.uint8Array({ minLength: 1, maxLength: 600 }).map((b) => Buffer.from(b).toString('base64'))) }),
      fc.constant({ kind: 'signature over other bytes' as const }),
      fc.constant({ kind: 'identity from a look-alike CA' as const }),
      fc.record({ kind: fc.constant('wrong Content-Type' as const), contentType: fc.constantFrom(
        '', 'application/json', 'text/xml', 'application/xml', CONTENT_TYPE[other(ep)], `${right}x`, 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded') }),
    ),
  });
}

/** What our own parser says of a body: undefined when it is a well-formed message, else the refusal. */
function localVerdict(ep: Endpoint, body: Buffer): string | undefined {
  try {
    const dict = parsePlistDict(body);
    if (ep === 'checkin') parseCheckIn(dict);
    else parseReport(dict);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe.each(availableBackends())('device endpoint fuzzing on %s', (backend) => {
  let server: TestServer;
  let device: TestDevice;
  let lookAlike: CertifiedKey;
  let seeds: Seed[];
  let state: StoredState;
  let logMark = 0;

  beforeAll(async () => {
    server = await startTestServer(backend, { maxDeviceBodyBytes: MAX_BODY });
    device = new TestDevice();
    const enrollment = await server.api('POST', '/api/v1/enrollments', {});
    await device.enroll(enrollment.body.url);
    server.sandbox!.apns.registerToken(device.pushTokenHex(), device.enrolled.topic);
    expect((await device.authenticate()).status).toBe(200);
    expect((await device.tokenUpdate()).status).toBe(200);
    // A command the device has been sent: reports that answer it reach the result columns.
    const queued = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    expect(queued.status).toBe(201);
    expect((await device.connect({ Status: 'Idle' })).status).toBe(200);
    seeds = await deviceSeeds(server, device, queued.body.commandUUID);
    // Same subject name as the server's CA, different key: only a real chain check tells them apart.
    const foreignCa = await createServerCA('vpp-mdm device CA');
    lookAlike = await issueDeviceIdentity(foreignCa, { commonName: 'look-alike device' });
    state = await settled(server);
    logMark = server.logs.length;
  });
  afterAll(async () => { await server?.close(); });

  async function send(ep: Endpoint, body: Buffer, headers: Record<string, string>) {
    const url = ep === 'checkin' ? device.enrolled.checkInURL : device.enrolled.serverURL;
    const res = await fetch(url, { method: 'PUT', headers, body: new Uint8Array(body) });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, text: bytes.toString('utf8'), contentType: res.headers.get('content-type') ?? '' };
  }

  /** A refusal: clear message in the body and exactly one warn line saying why; nothing stored changed. */
  async function expectRefusal(res: { status: number; text: string }, mark: number, what: string, tally: FuzzTally) {
    if (res.status === 403) {
      expect(JSON.parse(res.text), `${what}: Apple's unrecognized-device body`).toEqual({ code: 'com.apple.unrecognized.device' });
    } else {
      expectClearMessage(res.text, `${what}: response`);
    }
    const refused = server.logs.slice(mark).filter((l) => l.msg === 'device request refused');
    expect(refused.length, `${what}: one 'device request refused' line`).toBe(1);
    expect(refused[0]!.status, `${what}: logged status`).toBe(res.status);
    expectClearMessage(refused[0]!.reason, `${what}: logged reason`);
    const after = await storedState(server);
    expect(changedTables(state, after), `${what}: tables changed by a refused request`).toEqual([]);
    state = after;
    countReason(tally, `${what} ${res.status}: ${String(refused[0]!.reason)}`);
  }

  function check(ep: Endpoint, own: Seed[], tally: FuzzTally) {
    return async (input: Input) => {
      const body = bodyOf(own, input.recipe);
      const oversized = body.length > MAX_BODY;

      // Not properly signed or labelled: refused whatever the body is, and nothing changes.
      const w = input.wrong;
      const headers: Record<string, string> = { 'content-type': w.kind === 'wrong Content-Type' ? w.contentType : CONTENT_TYPE[ep] };
      if (w.kind === 'garbage signature') headers['mdm-signature'] = w.signature;
      if (w.kind === 'signature over other bytes') headers['mdm-signature'] = signMdmMessage(Buffer.concat([body, Buffer.from(' ')]), device.enrolled.identity);
      if (w.kind === 'identity from a look-alike CA') headers['mdm-signature'] = signMdmMessage(body, lookAlike);
      let mark = server.logs.length;
      const refused = await send(ep, body, headers);
      countStatus(tally, refused.status);
      // Refused from the headers in this order: content type, then size, then signature (server/http/device-routes.ts).
      const expected = w.kind === 'wrong Content-Type' ? 415 : oversized ? 413 : 400;
      expect(refused.status, `${w.kind}: ${refused.text.slice(0, 300)}`).toBe(expected);
      await expectRefusal(refused, mark, w.kind, tally);

      // Signed over the exact bytes: the parser and the message checks decide.
      mark = server.logs.length;
      const res = await send(ep, body, { 'content-type': input.contentType, 'mdm-signature': signMdmMessage(body, device.enrolled.identity) });
      countStatus(tally, res.status);
      expectNoPrototypePollution('signed');
      expect([200, 400, 403, 413], `signed: unexpected status ${res.status}: ${res.text.slice(0, 300)}`).toContain(res.status);
      // The route refuses an empty body before the parser sees it, and an oversized one before anything.
      const verdict = oversized || body.length === 0 ? undefined : localVerdict(ep, body);
      if (oversized) expect(res.status, 'body over the cap').toBe(413);
      if (body.length === 0) expect(res.status, 'empty body').toBe(400);
      if (verdict !== undefined) {
        expect(res.status, `our parser refuses this body (${verdict}); the server said ${res.text.slice(0, 300)}`).toBe(400);
        expect(res.text, 'the refusal gives our parser\'s reason').toBe(verdict);
      }
      if (res.status !== 200) {
        await expectRefusal(res, mark, 'signed', tally);
        return;
      }
      expect(verdict, 'accepted a body our parser refuses').toBeUndefined();
      // Accepted: it may have changed the device (a CheckOut, a new enrollment without a token, another
      // token); put it back as it was.
      if (ep === 'checkin') {
        const type = parsePlistDict(body).MessageType;
        if (type !== 'TokenUpdate') expect((await device.authenticate()).status, `re-authenticate after an accepted ${String(type)}`).toBe(200);
        expect((await device.tokenUpdate()).status, `TokenUpdate after an accepted ${String(type)}`).toBe(200);
      }
      // A command left waiting (an AwaitingConfiguration TokenUpdate queues DeviceConfigured, a NotNow keeps
      // one) makes every later TokenUpdate push; answering them keeps background pushes rare.
      const commands = (await server.api('GET', `/api/v1/devices/${device.udid}/commands`)).body as Array<{ status: string }>;
      if (commands.some((c) => ['Queued', 'Sent', 'NotNow'].includes(c.status))) await device.drain();
      state = await settled(server);
    };
  }

  for (const ep of ['checkin', 'connect'] as const) {
    it(`PUT /mdm/${ep}: mutated bodies, signed and not, never a 5xx, refusals change nothing`, async () => {
      const tally = newTally();
      const own = seeds.filter((s) => s.endpoint === ep);
      state = await settled(server);
      await fuzz(`${backend} PUT /mdm/${ep} (${own.length} seeds)`, inputs(ep, own.length), check(ep, own, tally),
        { runs: RUNS[ep], tally, afterBatch: () => expectHealthy(server, logMark) });
    }, fuzzTimeout(RUNS[ep]));
  }

  it.skipIf(isOpen('refusal-echoes-input'))('a refusal quotes a huge Topic or UDID clipped, in the answer and in the log', async () => {
    const huge = 'x'.repeat(100_000);
    const requests = {
      checkin: () => device.checkin({ MessageType: 'TokenUpdate', Topic: huge, Token: device.token, PushMagic: device.pushMagic }),
      connect: () => device.connect({ Status: 'Idle', UDID: huge }),
    };
    for (const [ep, request] of Object.entries(requests)) {
      const mark = server.logs.length;
      const res = await request();
      expect(res.status, ep).toBeGreaterThanOrEqual(400);
      if (res.status !== 403) expectClearMessage(res.text, `${ep} answer`);
      const line = server.logs.slice(mark).find((l) => l.msg === 'device request refused');
      expectClearMessage(line?.reason, `${ep} log line`);
    }
  });

  it('after the fuzzing the enrolled device still works', async () => {
    await expectHealthy(server, logMark);
    expect((await device.authenticate()).status).toBe(200);
    expect((await device.tokenUpdate()).status).toBe(200);
    const queued = await server.api('POST', `/api/v1/devices/${device.udid}/commands`, { RequestType: 'ProfileList' });
    expect(queued.status).toBe(201);
    const commands = await device.drain(() => ({ Status: 'Acknowledged', ProfileList: [] }));
    expect(commands.map((c) => c.CommandUUID)).toContain(queued.body.commandUUID);
    const listed = await server.api('GET', `/api/v1/devices/${device.udid}/commands`);
    expect(listed.body.find((c: { commandUUID: string }) => c.commandUUID === queued.body.commandUUID).status).toBe('Acknowledged');
  });
});
