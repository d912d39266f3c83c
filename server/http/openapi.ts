import { z } from 'zod';
import { INSTALL_STATUSES, LICENSE_STATES } from '../../vpp/policy.js';
import { SUBSCRIPTION_STATUSES } from '../../vpp/subscription-state.js';
import { RefreshScheduleSchema } from '../devices/device-refresh.js';
import { adminRoutes, serviceRoutes } from './admin-routes.js';
import { openApiPath, type ApiRoute } from './api-route.js';
import { vppRoutes } from './vpp-routes.js';

// The admin API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json: generated from the route
// declarations (admin-routes.ts, vpp-routes.ts), whose zod schemas are the ones every request is validated
// with, so the document cannot drift from what the server accepts.

/** Every route of the document, by operationId. */
export const documentedRoutes: Record<string, ApiRoute> = { ...serviceRoutes, ...adminRoutes, ...vppRoutes };

const str = { type: 'string' };
const strOrNull = { type: ['string', 'null'] };
const int = { type: 'integer' };

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; required?: string[]; description?: string };

/** A zod schema as the JSON Schema (2020-12, what OpenAPI 3.1 uses) of what a client sends (input) or gets (output). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  // Refinements (e.g. "certificate and privateKey, or pkcs12") have no JSON Schema; their .describe() says them.
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function parameters(route: ApiRoute): object[] {
  const out: object[] = [];
  for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
    if (!schema) continue;
    const object = jsonSchema(schema, 'input');
    for (const [name, property] of Object.entries(object.properties ?? {})) {
      const { description, ...propertySchema } = property;
      out.push({ name, in: where, required: where === 'path' || (object.required ?? []).includes(name), schema: propertySchema, ...(description ? { description } : {}) });
    }
  }
  return out;
}

function operation(operationId: string, route: ApiRoute): object {
  const params = parameters(route);
  return {
    operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    ...(params.length ? { parameters: params } : {}),
    ...(route.body ? {
      // A request without a body is validated as {}: the body is required only when {} is refused.
      requestBody: { required: !route.body.safeParse({}).success, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } },
    } : {}),
    responses: Object.fromEntries(Object.entries(route.responses).map(([status, r]) => [status, {
      description: r.description, ...(r.schema ? { content: { 'application/json': { schema: r.schema } } } : {}),
    }])),
    ...(route.auth === false ? { security: [] } : {}),
  };
}

const API_BASE = '/api/v1';

export function openApiDocument(routes: Record<string, ApiRoute> = documentedRoutes) {
  const paths: Record<string, Record<string, object>> = {};
  for (const [operationId, route] of Object.entries(routes)) {
    const underApi = route.path.startsWith(`${API_BASE}/`);
    const key = openApiPath(underApi ? route.path.slice(API_BASE.length) : route.path);
    // Paths are relative to the API's base; /healthz and /sandbox are at the root and say so.
    const item = (paths[key] ??= underApi ? {} : { servers: [{ url: '/' }] });
    item[route.method] = operation(operationId, route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'vpp-mdm admin API', version: '1',
      description: 'Apple MDM server with VPP (Apps and Books) license distribution. Endpoints take Authorization: Bearer <ADMIN_TOKEN> unless they say otherwise. Errors are {"error":{"code","message"}}.',
    },
    servers: [{ url: API_BASE }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        User: { type: 'object', properties: { id: { type: 'string' }, email: { type: 'string' }, appleAccount: { type: ['string', 'null'] }, createdAt: { type: 'string' } } },
        Device: { type: 'object', properties: { udid: { type: 'string' }, serialNumber: { type: ['string', 'null'] }, osVersion: { type: ['string', 'null'] }, productName: { type: ['string', 'null'] }, userId: { type: ['string', 'null'] }, enrolled: { type: 'boolean' }, status: { enum: ['Enrolling', 'Enrolled', 'CheckedOut'], description: 'Enrolling from Authenticate to the first TokenUpdate' }, pushable: { type: 'boolean' }, lastSeenAt: { type: ['string', 'null'] }, authenticatedAt: { type: 'string' }, enrolledAt: { type: ['string', 'null'] }, pushError: { type: ['object', 'null'], description: 'why the last push failed: {reason, at} — given up, or not delivered and to be retried; null once a push is delivered' }, identityExpiresAt: { type: ['string', 'null'] }, identityRenewal: { type: ['object', 'null'], description: '{pending: true, nextIdentityExpiresAt} while a renewed identity waits to be used; {pending: false, error} after a refusal' } } },
        Command: { type: 'object', properties: { commandUUID: { type: 'string' }, requestType: { type: 'string' }, status: { enum: ['Queued', 'Sent', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow'] }, owner: { enum: ['admin', 'device-setup', 'vpp-install', 'vpp-check', 'vpp-invite'] }, ownerRef: { type: ['string', 'null'], description: 'what the owner queued it for: the bundle id of a vpp-install, the user id of a vpp-invite' }, createdAt: { type: 'string' }, sentAt: { type: ['string', 'null'] }, updatedAt: { type: 'string' }, result: { type: 'object' }, errorChain: { type: 'array' } } },
        RefreshSchedule: jsonSchema(RefreshScheduleSchema, 'output'),
        // The VPP answers, as views.ts builds them.
        Subscription: { type: 'object', properties: {
          id: str, name: str, status: { enum: SUBSCRIPTION_STATUSES }, statusReason: strOrNull, orgName: str, locationName: strOrNull,
          expiresAt: str, daysUntilExpiry: { type: 'integer' }, warning: { type: 'string', description: 'set when the sToken expires within 30 days' },
          claimHolder: strOrNull, schedule: { type: 'object' }, lastSyncAt: strOrNull, lastSyncError: strOrNull, notificationUrl: str,
        } },
        Bundle: { type: 'object', properties: {
          id: str, subscriptionId: str, adamId: str, pricingParam: str, name: strOrNull, bundleId: strOrNull, deviceAssignable: { type: 'boolean' }, platform: { const: 'iOS' }, createdAt: str,
        } },
        Assignment: { type: 'object', properties: {
          bundleId: str, targetType: { enum: ['user', 'device'] }, targetId: str, status: { enum: INSTALL_STATUSES }, reason: strOrNull,
          license: { type: ['object', 'null'], properties: { state: { enum: LICENSE_STATES }, failure: strOrNull } },
          devices: { type: 'array', items: { type: 'object', properties: { udid: str, status: { enum: INSTALL_STATUSES }, reason: strOrNull, commandUUID: strOrNull } } },
        } },
        LicenseSummaryRow: { type: 'object', properties: {
          adamId: str, name: strOrNull, bundleId: strOrNull, pricingParam: str,
          total: int, assigned: int, available: int, reserved: int, waiting: { ...int, description: 'targets assigned but without a license' },
        } },
        Reservation: { type: 'object', properties: { targetType: { enum: ['user', 'device'] }, targetId: str, createdAt: str } },
      },
    },
  };
}
