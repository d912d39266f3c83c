// How the Apps and Books client meets Apple's failure modes: token errors, throttling and 5xx with
// Retry-After, error bodies inside a 200, dropped connections.
import { describe, expect, it } from 'vitest';
import { encodeSToken } from '../vpp/stoken.js';
import { DAY, catchError, clientFor, sim, useSimulatedAppsAndBooks } from './support/vpp-client.js';

useSimulatedAppsAndBooks();

describe("Apple's failure modes", () => {
  it('retries a 5xx honoring Retry-After, then succeeds', async () => {
    const sToken = sim.issueToken({ orgName: 'Flaky', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'error5xx', retryAfterSeconds: 2, times: 2, path: '/client/config' });
    const before = sim.requestLog().length;
    const cfg = await client.clientConfig();
    expect(cfg.uId).toBeTruthy();
    expect(sleeps).toEqual([2000, 2000]);
    expect(sim.requestLog().slice(before).map((e) => e.status)).toEqual([503, 503, 200]);
  });

  it('backs off exponentially without Retry-After and throws the last error after maxRetries', async () => {
    const sToken = sim.issueToken({ orgName: 'Down', assets: [] });
    const { client, sleeps } = clientFor(sToken, { maxRetries: 3, backoffBaseMs: 100 });
    sim.setFault({ kind: 'error5xx', status: 500 });
    const before = sim.requestLog().length;
    const err = await catchError(client.clientConfig());
    expect(err).toMatchObject({ kind: 'retryable', httpStatus: 500, errorNumber: 9603 });
    expect(sleeps).toEqual([100, 200, 400]);
    expect(sim.requestLog().length - before).toBe(4);
  });

  it('treats a dropped connection as retryable', async () => {
    const sToken = sim.issueToken({ orgName: 'Drop', assets: [] });
    const { client, sleeps } = clientFor(sToken, { backoffBaseMs: 50 });
    sim.setFault({ kind: 'drop', times: 1 });
    expect((await client.clientConfig()).uId).toBeTruthy();
    expect(sleeps).toEqual([50]);
  });

  it('gives up on a request that hangs past the timeout and retries it', async () => {
    const sToken = sim.issueToken({ orgName: 'Slow', assets: [] });
    const { client, sleeps } = clientFor(sToken, { timeoutMs: 1000, backoffBaseMs: 10 });
    sim.setFault({ kind: 'slow', delayMs: 20_000, times: 1 });
    const before = sim.requestLog().length;
    expect((await client.clientConfig()).uId).toBeTruthy();
    expect(sleeps).toEqual([10]);
    expect(sim.requestLog().length - before).toBe(2);
  });

  it('backs off on throttling (429 / 9646) then succeeds', async () => {
    const sToken = sim.issueToken({ orgName: 'Busy', assets: [{ adamId: '3', totalCount: 1 }] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'throttle', retryAfterSeconds: 3, times: 1 });
    const before = sim.requestLog().length;
    expect(await client.assets()).toHaveLength(1);
    expect(sleeps).toEqual([3000]);
    expect(sim.requestLog()[before]!.status).toBe(429);
  });

  it('treats a 200 whose body has errorNumber as an error', async () => {
    const sToken = sim.issueToken({ orgName: 'Sneaky', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.setFault({ kind: 'error200', errorNumber: 9602, times: 1 });
    const err = await catchError(client.clientConfig());
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 200, errorNumber: 9602 });
    sim.setFault({ kind: 'error200', times: 1 });
    const err2 = await catchError(client.clientConfig());
    expect(err2).toMatchObject({ kind: 'tokenInvalid', httpStatus: 200, errorNumber: 9601 });
    expect(sleeps).toEqual([]);
  });

  it('stops at once on a revoked token (9625), without retries', async () => {
    const sToken = sim.issueToken({ orgName: 'Revoked', assets: [] });
    const { client, sleeps } = clientFor(sToken);
    sim.revokeToken(sToken);
    const before = sim.requestLog().length;
    const err = await catchError(client.assets());
    expect(err).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9625, httpStatus: 401 });
    expect(sleeps).toEqual([]);
    expect(sim.requestLog().length - before).toBe(1);
  });

  it('reports an expired token as 9621 and an unknown one as 9601', async () => {
    const expired = sim.issueToken({ orgName: 'Old', expDate: new Date(Date.now() - DAY), assets: [] });
    expect(await catchError(clientFor(expired).client.clientConfig())).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9621 });
    const unknown = encodeSToken({ token: 'forged', expDate: new Date(Date.now() + DAY), orgName: 'X' });
    expect(await catchError(clientFor(unknown).client.clientConfig())).toMatchObject({ kind: 'tokenInvalid', errorNumber: 9601 });
  });

  it('adds tokenExpirationDate to responses within 15 days of expiry', async () => {
    const soon = sim.issueToken({ orgName: 'Soon', expDate: new Date(Date.now() + 5 * DAY), assets: [] });
    const metas: Array<{ tokenExpirationDate?: string }> = [];
    const { client } = clientFor(soon, { onResponseMeta: (m) => metas.push(m) });
    await client.assets();
    expect(metas.at(-1)?.tokenExpirationDate).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$/);
    const later = sim.issueToken({ orgName: 'Later', assets: [] });
    const metas2: Array<{ tokenExpirationDate?: string }> = [];
    await clientFor(later, { onResponseMeta: (m) => metas2.push(m) }).client.assets();
    expect(metas2.at(-1)?.tokenExpirationDate).toBeUndefined();
  });
});
