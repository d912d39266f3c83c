// The admin API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json. Each router adds the
// paths it serves (addOpenApiPaths), so the document stays next to the routes it describes.

const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const error = { description: 'Error', ...json({ $ref: '#/components/schemas/Error' }) };
const ok = (description: string, schema: object = { type: 'object' }) => ({ description, ...json(schema) });
const udid = { name: 'udid', in: 'path', required: true, schema: { type: 'string' } };
const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

const paths: Record<string, Record<string, object>> = {
  '/users': {
    get: { summary: 'List users', responses: { 200: ok('Users', { type: 'array', items: { $ref: '#/components/schemas/User' } }) } },
    post: { summary: 'Create a user', requestBody: json({ $ref: '#/components/schemas/UserInput' }), responses: { 201: ok('Created', { $ref: '#/components/schemas/User' }), 400: error, 409: error } },
  },
  '/users/{id}': {
    get: { summary: 'Get a user and their devices', parameters: [id], responses: { 200: ok('User'), 404: error } },
    patch: { summary: "Change the user's Apple Account (their user-based licenses then need the devices re-enrolled)", parameters: [id], responses: { 200: ok('User'), 404: error } },
    delete: { summary: "Delete a user; their licenses are disassociated at Apple", parameters: [id], responses: { 204: { description: 'Deleted' }, 404: error } },
  },
  '/enrollments': {
    post: {
      summary: 'Create a single-use, expiring enrollment token (optionally for a user); with udid, a re-enrollment of that device (its new certificate may take the UDID over; the user defaults to the device\'s)',
      requestBody: json({ type: 'object', properties: { userId: { type: 'string' }, udid: { type: 'string' } } }),
      responses: { 201: ok('Token and profile URL', { type: 'object', properties: { token: { type: 'string' }, url: { type: 'string' }, expiresAt: { type: 'string' } } }), 404: error },
    },
  },
  '/devices': { get: { summary: 'List devices', parameters: [{ name: 'userId', in: 'query', schema: { type: 'string' } }], responses: { 200: ok('Devices', { type: 'array', items: { $ref: '#/components/schemas/Device' } }) } } },
  '/devices/{udid}': {
    get: { summary: 'Get a device with its VPP apps and their license/install status', parameters: [udid], responses: { 200: ok('Device', { $ref: '#/components/schemas/Device' }), 404: error } },
    delete: { summary: 'Delete a device; its device licenses are disassociated at Apple and its identity certificates revoked', parameters: [udid], responses: { 204: { description: 'Deleted' }, 404: error } },
  },
  '/devices/{udid}/revoke': { post: { summary: 'Revoke the device\'s identity certificates: every device endpoint refuses them; the device counts as checked out and stays listed', parameters: [udid], responses: { 200: ok('Device', { $ref: '#/components/schemas/Device' }), 404: error } } },
  '/audit': {
    get: {
      summary: 'Audit log, newest first: admin actions and security events',
      parameters: [
        { name: 'kind', in: 'query', schema: { type: 'string' }, description: 'comma-separated: admin.action, admin.auth_failed, device.rebound, device.takeover_refused, certificate.refused, identity.revoked' },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
        { name: 'before', in: 'query', schema: { type: 'string' }, description: 'the next of the previous page' },
      ],
      responses: { 200: ok('Entries and the next page', { type: 'object', properties: { entries: { type: 'array' }, next: { type: ['string', 'null'] } } }), 400: error },
    },
  },
  '/devices/{udid}/commands': {
    get: { summary: 'List commands of a device with status, result and owner (who queued it: admin, device-setup, vpp-install, vpp-check, vpp-invite)', parameters: [udid], responses: { 200: ok('Commands', { type: 'array', items: { $ref: '#/components/schemas/Command' } }), 404: error } },
    post: { summary: "Queue a raw command: any of Apple's 66 commands as JSON, <data> as {\"$data\": base64} and <date> as {\"$date\": ISO 8601}; checked against Apple's schema (400) and the device's iOS version (409 unsupported_by_device_os); the answer is stored as it comes", parameters: [udid], requestBody: json({ type: 'object', required: ['RequestType'] }), responses: { 201: ok('Queued', { type: 'object', properties: { commandUUID: { type: 'string' } } }), 400: error, 404: error, 409: error } },
  },
  '/devices/{udid}/refresh': { post: { summary: 'Refresh Device quick task: push now', parameters: [udid], responses: { 202: ok('Push queued'), 404: error, 409: error } } },
  '/push-certificate': {
    get: { summary: 'Show the push certificate topic and expiry', responses: { 200: ok('Certificate'), 404: error } },
    put: { summary: 'Upload the APNs push certificate (PEM cert+key, or base64 PKCS#12+password); refused when expired or not yet valid; a topic other than the enrolled devices\' needs confirmTopicChange (409 topic_change otherwise)', requestBody: json({ type: 'object', properties: { certificate: { type: 'string' }, privateKey: { type: 'string' }, pkcs12: { type: 'string' }, password: { type: 'string' }, confirmTopicChange: { type: 'boolean' } } }), responses: { 200: ok('Topic, expiry, daysUntilExpiry, warning under 30 days, strandedDevices on a topic change'), 400: error, 409: error } },
  },
  '/schedules/device-refresh': {
    get: { summary: 'Device Refresh and Removal schedule', responses: { 200: ok('Schedule') } },
    put: { summary: 'Configure the Device Refresh and Removal schedule', requestBody: json({ $ref: '#/components/schemas/RefreshSchedule' }), responses: { 200: ok('Schedule'), 400: error } },
  },
  '/schedules/device-refresh/run': { post: { summary: 'Run the Device Refresh and Removal schedule now', responses: { 200: ok('Summary') } } },
};

export function addOpenApiPaths(extra: Record<string, Record<string, object>>): void {
  Object.assign(paths, extra);
}

export function openApiDocument() {
  return {
    openapi: '3.1.0',
    info: { title: 'vpp-mdm admin API', version: '1', description: 'Apple MDM server with VPP (Apps and Books) license distribution. All endpoints take Authorization: Bearer <ADMIN_TOKEN>. Errors are {"error":{"code","message"}}.' },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        UserInput: { type: 'object', required: ['id', 'email'], properties: { id: { type: 'string' }, email: { type: 'string' }, appleAccount: { type: 'string' } } },
        User: { type: 'object', properties: { id: { type: 'string' }, email: { type: 'string' }, appleAccount: { type: ['string', 'null'] }, createdAt: { type: 'string' } } },
        Device: { type: 'object', properties: { udid: { type: 'string' }, serialNumber: { type: ['string', 'null'] }, osVersion: { type: ['string', 'null'] }, productName: { type: ['string', 'null'] }, userId: { type: ['string', 'null'] }, enrolled: { type: 'boolean' }, status: { enum: ['Enrolling', 'Enrolled', 'CheckedOut'], description: 'Enrolling from Authenticate to the first TokenUpdate' }, pushable: { type: 'boolean' }, lastSeenAt: { type: ['string', 'null'] }, authenticatedAt: { type: 'string' }, enrolledAt: { type: ['string', 'null'] }, pushError: { type: ['object', 'null'], description: 'why the last push was given up: {reason, at}' }, identityExpiresAt: { type: ['string', 'null'] }, identityRenewal: { type: ['object', 'null'], description: '{pending: true, nextIdentityExpiresAt} while a renewed identity waits to be used; {pending: false, error} after a refusal' } } },
        Command: { type: 'object', properties: { commandUUID: { type: 'string' }, requestType: { type: 'string' }, status: { enum: ['Queued', 'Sent', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow'] }, owner: { enum: ['admin', 'device-setup', 'vpp-install', 'vpp-check', 'vpp-invite'] }, ownerRef: { type: ['string', 'null'], description: 'what the owner queued it for: the bundle id of a vpp-install, the user id of a vpp-invite' }, createdAt: { type: 'string' }, sentAt: { type: ['string', 'null'] }, updatedAt: { type: 'string' }, result: { type: 'object' }, errorChain: { type: 'array' } } },
        RefreshSchedule: { type: 'object', required: ['enabled', 'everyMinutes', 'pushAllDevices', 'waitingCommandsAfterMinutes', 'silentDays', 'removeSilent'], properties: { enabled: { type: 'boolean' }, everyMinutes: { type: 'integer' }, pushAllDevices: { type: 'boolean' }, waitingCommandsAfterMinutes: { type: 'integer' }, silentDays: { type: 'integer' }, removeSilent: { type: 'boolean' } } },
      },
    },
  };
}
