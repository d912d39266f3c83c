// GET /service/config (the endpoints, limits and error codes, unauthenticated) and GET/POST /client/config:
// the claim (mdmInfo) and the notification subscription, which Apple confirms with a TEST_NOTIFICATION.
// https://developer.apple.com/documentation/devicemanagement/service-config
// https://developer.apple.com/documentation/devicemanagement/client-config-71glv
// https://developer.apple.com/documentation/devicemanagement/client-config-4szk1
import { isIP } from 'node:net';
import { formatAppleDate } from '../../vpp/stoken.js';
import { ApiError, BASE, LIMITS, NOTIFICATION_TYPES, isRecord } from './apple-api.js';
import { APPLE_ERRORS } from './apple-errors.js';
import type { Notifier } from './notifications.js';
import { touch, type Location } from './state.js';

export function serviceConfig(origin: string): Record<string, unknown> {
  return {
    errorCodes: Object.entries(APPLE_ERRORS).map(([n, e]) => ({ errorMessage: e.message, errorNumber: Number(n) })),
    limits: { ...LIMITS },
    notificationTypes: [...NOTIFICATION_TYPES],
    urls: {
      invitationEmail: `${origin}/invitation?inviteCode=%25inviteCode%25&mt=8`,
      clientConfig: `${origin}${BASE}/client/config`,
      createUsers: `${origin}${BASE}/users/create`,
      getAssignments: `${origin}${BASE}/assignments`,
      revokeAssets: `${origin}${BASE}/assets/revoke`,
      contentMetadataLookup: `${origin}/lookup`,
      getUsers: `${origin}${BASE}/users`,
      eventStatus: `${origin}${BASE}/status`,
      associateAssets: `${origin}${BASE}/assets/associate`,
      disassociateAssets: `${origin}${BASE}/assets/disassociate`,
      updateUsers: `${origin}${BASE}/users/update`,
      getAssets: `${origin}${BASE}/assets`,
      retireUsers: `${origin}${BASE}/users/retire`,
    },
  };
}

export function clientConfigBody(loc: Location): Record<string, unknown> {
  const out: Record<string, unknown> = {
    countryISO2ACode: 'US',
    defaultPlatform: loc.defaultPlatform,
    locationName: loc.locationName,
    subscribedNotificationTypes: loc.notificationUrl ? [...loc.notificationTypes] : [],
    tokenExpirationDate: formatAppleDate(loc.expDate),
    uId: loc.uId,
    websiteURL: loc.defaultPlatform === 'volumestore' ? 'https://school.apple.com' : 'https://business.apple.com',
  };
  // Apple's example echoes the notification settings; mdmInfo appears only once an MDM has set it.
  if (loc.mdmInfo) out.mdmInfo = { ...loc.mdmInfo };
  if (loc.notificationAuthToken) out.notificationAuthToken = loc.notificationAuthToken;
  if (loc.notificationUrl) out.notificationUrl = loc.notificationUrl;
  return out;
}

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

/**
 * Apple requires https for the notification URL (9712). The simulator also takes http on a loopback host —
 * a deliberate difference, so test servers without TLS can subscribe; any other http URL gets Apple's 9712.
 */
function acceptableNotificationUrl(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol === 'https:') return true;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  return u.protocol === 'http:' && loopback;
}

export async function updateClientConfig(loc: Location, body: unknown, notifier: Notifier): Promise<Record<string, unknown>> {
  if (!isRecord(body)) throw new ApiError(9602);
  let mdmInfo = loc.mdmInfo;
  if (body.mdmInfo !== undefined) {
    const m = body.mdmInfo;
    if (!isRecord(m)) throw new ApiError(9602);
    // 9723: "You must provide a name, ID, and metadata when setting the device management information."
    if (!nonEmpty(m.id) || !nonEmpty(m.name) || !nonEmpty(m.metadata)) throw new ApiError(9723);
    if (m.id.length > LIMITS.maxMdmIdLength) throw new ApiError(9724);
    if (m.name.length > LIMITS.maxMdmNameLength) throw new ApiError(9725);
    if (m.metadata.length > LIMITS.maxMdmMetadataLength) throw new ApiError(9713);
    mdmInfo = { id: m.id, name: m.name, metadata: m.metadata };
  }
  let notificationUrl = loc.notificationUrl;
  let notificationAuthToken = loc.notificationAuthToken;
  let notificationTypes = loc.notificationTypes;
  let testNeeded = false;
  if (body.notificationTypes !== undefined) {
    if (!Array.isArray(body.notificationTypes) || body.notificationTypes.some((t) => !(NOTIFICATION_TYPES as readonly unknown[]).includes(t))) {
      throw new ApiError(9602);
    }
    notificationTypes = [...new Set(body.notificationTypes as string[])];
  }
  if (body.notificationAuthToken !== undefined) {
    if (typeof body.notificationAuthToken !== 'string') throw new ApiError(9602);
    if (body.notificationAuthToken.length > LIMITS.maxNotificationLength) throw new ApiError(9711);
    notificationAuthToken = body.notificationAuthToken || undefined;
    testNeeded = true;
  }
  if (body.notificationUrl !== undefined) {
    if (typeof body.notificationUrl !== 'string') throw new ApiError(9602);
    if (body.notificationUrl === '') {
      notificationUrl = undefined;
      notificationAuthToken = undefined;
    } else {
      if (body.notificationUrl.length > LIMITS.maxNotificationLength) throw new ApiError(9711);
      if (!acceptableNotificationUrl(body.notificationUrl)) throw new ApiError(9712);
      notificationUrl = body.notificationUrl;
      testNeeded = true;
    }
  }
  // 9710: "Both the notification URL and the authentication token are necessary."
  if (Boolean(notificationUrl) !== Boolean(notificationAuthToken) && (body.notificationUrl !== undefined || body.notificationAuthToken !== undefined)) {
    throw new ApiError(9710);
  }
  // Subscribing without naming types subscribes to all of them (a simulator choice; Apple does not document it).
  if (notificationUrl && notificationTypes.length === 0 && body.notificationTypes === undefined) notificationTypes = [...NOTIFICATION_TYPES];

  if (notificationUrl && testNeeded) {
    // Apple sends TEST_NOTIFICATION: "If delivery fails, the system rejects the configuration"
    // (subscribing-to-notifications). Apple names no number for it; 9728 "The provided notification URL is
    // unreachable" is the closest.
    const status = await notifier.test(notificationUrl, notificationAuthToken, loc.uId);
    if (status === undefined || status < 200 || status >= 300) throw new ApiError(9728);
  }
  loc.mdmInfo = mdmInfo;
  loc.notificationUrl = notificationUrl;
  loc.notificationAuthToken = notificationAuthToken;
  loc.notificationTypes = notificationUrl ? notificationTypes : [];
  touch(loc);
  return clientConfigBody(loc);
}
