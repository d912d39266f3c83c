// The OpenAPI document (issue 11, point 9): a valid OpenAPI 3.1 document (checked by @readme/openapi-parser)
// that covers /healthz, /sandbox and every admin route with its parameters and request body, generated from
// the zod schemas the server validates requests with — so what it says is what the server does.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileErrors, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentedRoutes } from '../server/http/openapi.js';
import { startTestServer, type TestServer } from './support/server.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('the OpenAPI document', () => {
  let server: TestServer;
  let doc: any;
  beforeAll(async () => {
    server = await startTestServer('pglite');
    doc = await (await fetch(`${server.url}/api/v1/openapi.json`)).json();
  });
  afterAll(async () => { await server?.close(); });

  it('is valid OpenAPI 3.1', async () => {
    const result = await validate(structuredClone(doc));
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
  });

  it('covers the health check, the sandbox and every route, each with its operation id', () => {
    expect(doc.servers).toEqual([{ url: '/api/v1' }]);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/sandbox', '/openapi.json', '/vpp/subscriptions']));
    // The health check and the sandbox are at the root, not under the API's base.
    expect(doc.paths['/healthz'].servers).toEqual([{ url: '/' }]);
    expect(doc.paths['/sandbox'].servers).toEqual([{ url: '/' }]);
    const operations = Object.values(doc.paths).flatMap((p: any) => Object.entries(p)).filter(([k]) => k !== 'servers').map(([, o]: any) => o.operationId);
    expect(operations.sort()).toEqual(Object.keys(documentedRoutes).sort());
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/sandbox'].get.responses['200'].content['application/json'].schema.required).toContain('demoSToken');
  });

  it('documents every request body, the subscription schedule included, from the validating schemas', () => {
    const withBody = Object.entries(documentedRoutes).filter(([, r]) => r.body).map(([id]) => id).sort();
    expect(withBody).toEqual(['assign', 'createBundle', 'createEnrollment', 'createSubscription', 'createUser', 'patchUser', 'putPushCertificate', 'putRefreshSchedule', 'queueBulkCommand', 'queueCommand', 'replaceToken', 'reserve']);
    expect(doc.paths['/commands'].post.requestBody.content['application/json'].schema.required).toEqual(['udids', 'command']);
    const link = doc.paths['/vpp/subscriptions'].post.requestBody;
    expect(link.required).toBe(true);
    const body = link.content['application/json'].schema;
    expect(body.required).toEqual(['name', 'sToken']);
    expect(body.additionalProperties).toBe(false);
    const schedule = body.properties.schedule;
    expect(schedule.default).toEqual({ type: 'none' });
    expect(schedule.oneOf.map((v: any) => v.properties.type.const)).toEqual(['none', 'date', 'recurring']);
    expect(schedule.oneOf[2].properties.every.pattern).toBe('^\\d+\\s*(seconds?|minutes?|hours?|days?|weeks?)$');
    // An enrollment may be created with no body at all; a user may not.
    expect(doc.paths['/enrollments'].post.requestBody.required).toBe(false);
    expect(doc.paths['/users'].post.requestBody.content['application/json'].schema.required).toEqual(['id', 'email']);
  });

  it('documents path and query parameters, typed as the server reads them', () => {
    const unassign = doc.paths['/bundles/{id}/assignments/{targetType}/{targetId}'].delete.parameters;
    expect(unassign.map((p: any) => [p.name, p.in, p.required])).toEqual([['id', 'path', true], ['targetType', 'path', true], ['targetId', 'path', true]]);
    expect(unassign[1].schema.enum).toEqual(['user', 'device']);
    const reconcile = doc.paths['/vpp/subscriptions/{id}/reconcile'].post.parameters.find((p: any) => p.name === 'graceMs');
    expect(reconcile).toMatchObject({ in: 'query', required: false, schema: { type: 'integer', minimum: 0 } });
    const release = doc.paths['/vpp/subscriptions/{id}'].delete.parameters.find((p: any) => p.name === 'releaseLicenses');
    expect(release).toMatchObject({ in: 'query', schema: { enum: ['true', 'false'] } });
  });

  it('says what the server does: a body the document refuses is refused, one it allows is taken', async () => {
    const bad = await server.api('POST', '/api/v1/vpp/subscriptions', { name: 'x', sToken: 'y', schedule: { type: 'recurring', every: 'soon' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_body' });
    expect(bad.body.error.message).toContain('schedule.every');
    const query = await server.api('POST', '/api/v1/vpp/subscriptions/no-such/reconcile?graceMs=-5');
    expect(query.status).toBe(400);
    expect(query.body.error.code).toBe('invalid_query');
    const wrongTarget = await server.api('DELETE', '/api/v1/bundles/b/assignments/printer/x');
    expect(wrongTarget.status).toBe(400);
    expect(wrongTarget.body.error.code).toBe('invalid_path');
    expect((await server.api('POST', '/api/v1/enrollments')).status).toBe(201);
  });

  it('has no admin route mounted around it: every one goes through mount() with its declaration', () => {
    const http = path.join(REPO, 'server', 'http');
    const direct = fs.readdirSync(http).filter((f) => f.endsWith('.ts')).flatMap((f) => {
      const source = fs.readFileSync(path.join(http, f), 'utf8');
      return [...source.matchAll(/\.(?:get|post|put|patch|delete)\(\s*['"`](\/api|\/sandbox|\/healthz)[^'"`]*/g)].map((m) => `${f}: ${m[0]}`);
    });
    expect(direct).toEqual([]);
  });
});
