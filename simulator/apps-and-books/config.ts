// GET /service/config (the endpoints, limits and error codes, unauthenticated) and GET/POST /client/config:
// the claim (mdmInfo) and the notification subscription, which Apple confirms with a TEST_NOTIFICATION.
import { formatAppleDate } from '../../vpp/stoken.js';
import { ApiError, BASE, LIMITS, MESSAGES, NOTIFICATION_TYPES, isRecord } from './apple-api.js';
import type { Notifier } from './notifications.js';
import { touch, type Location } from './state.js';

export function serviceConfig(origin: string): Record<string, unknown> {
  return {
    errorCodes: Object.entries(MESSAGES).map(([n, m]) => ({ errorMessage: m, errorNumber: Number(n) })),
    limits: { ...LIMITS },
    notificationTypes: [...NOTIFICATION_TYPES],
    urls: {
      associateAssets: `${origin}${BASE}/assets/associate`,
      clientConfig: `${origin}${BASE}/client/config`,
      contentMetadataLookup: `${origin}/lookup`,
      createUsers: `${origin}${BASE}/users/create`,
      disassociateAssets: `${origin}${BASE}/assets/disassociate`,
      getAssets: `${origin}${BASE}/assets`,
      getAssignments: `${origin}${BASE}/assignments`,
      getUsers: `${origin}${BASE}/users`,
      invitationEmail: `${origin}/invitation?inviteCode=%25inviteCode%25&mt=8`,
      retireUsers: `${origin}${BASE}/users/retire`,
      revokeAssets: `${origin}${BASE}/assets/revoke`,
      status: `${origin}${BASE}/status`,
      updateUsers: `${origin}${BASE}/users/update`,
    },
  };
}

export function clientConfigBody(loc: Location, origin: string): Record<string, unknown> {
  const out: Record<string, unknown> = {
    countryISO2ACode: 'US',
    defaultPlatform: 'enterprisestore',
    locationName: loc.locationName,
    subscribedNotificationTypes: loc.notificationUrl ? [...loc.notificationTypes] : [],
    tokenExpirationDate: formatAppleDate(loc.expDate),
    uId: loc.uId,
    websiteURL: `${origin}/`,
  };
  if (loc.mdmInfo) out.mdmInfo = { ...loc.mdmInfo };
  if (loc.notificationUrl) out.notificationUrl = loc.notificationUrl;
  return out;
}

export async function updateClientConfig(loc: Location, body: unknown, notifier: Notifier, origin: string): Promise<Record<string, unknown>> {
  if (!isRecord(body)) throw new ApiError(400, 9602, 'Invalid argument: the body must be a JSON object.');
  let mdmInfo = loc.mdmInfo;
  if (body.mdmInfo !== undefined) {
    const m = body.mdmInfo;
    if (!isRecord(m)) throw new ApiError(400, 9602, 'Invalid argument: mdmInfo must be an object.');
    if (typeof m.id !== 'string' || m.id === '' || typeof m.name !== 'string' || m.name === '') {
      throw new ApiError(400, 9600, 'Missing required argument: mdmInfo needs id and name.');
    }
    if (m.id.length > LIMITS.maxMdmIdLength) throw new ApiError(400, 9602, `Invalid argument: mdmInfo.id longer than ${LIMITS.maxMdmIdLength}.`);
    if (m.name.length > LIMITS.maxMdmNameLength) throw new ApiError(400, 9602, `Invalid argument: mdmInfo.name longer than ${LIMITS.maxMdmNameLength}.`);
    if (m.metadata !== undefined && (typeof m.metadata !== 'string' || m.metadata.length > LIMITS.maxMdmMetadataLength)) {
      throw new ApiError(400, 9602, `Invalid argument: mdmInfo.metadata must be a string of at most ${LIMITS.maxMdmMetadataLength}.`);
    }
    mdmInfo = { id: m.id, name: m.name, ...(typeof m.metadata === 'string' ? { metadata: m.metadata } : {}) };
  }
  let notificationUrl = loc.notificationUrl;
  let notificationAuthToken = loc.notificationAuthToken;
  let notificationTypes = loc.notificationTypes;
  let testNeeded = false;
  if (body.notificationTypes !== undefined) {
    if (!Array.isArray(body.notificationTypes) || body.notificationTypes.some((t) => !(NOTIFICATION_TYPES as readonly unknown[]).includes(t))) {
      throw new ApiError(400, 9602, `Invalid argument: notificationTypes must be among ${NOTIFICATION_TYPES.join(', ')}.`);
    }
    notificationTypes = [...new Set(body.notificationTypes as string[])];
  }
  if (body.notificationAuthToken !== undefined) {
    if (typeof body.notificationAuthToken !== 'string') throw new ApiError(400, 9602, 'Invalid argument: notificationAuthToken.');
    notificationAuthToken = body.notificationAuthToken || undefined;
    testNeeded = true;
  }
  if (body.notificationUrl !== undefined) {
    if (typeof body.notificationUrl !== 'string') throw new ApiError(400, 9602, 'Invalid argument: notificationUrl.');
    if (body.notificationUrl === '') {
      notificationUrl = undefined;
      notificationAuthToken = undefined;
    } else {
      let u: URL;
      try {
        u = new URL(body.notificationUrl);
      } catch {
        throw new ApiError(400, 9602, 'Invalid argument: notificationUrl is not a URL.');
      }
      // Apple requires https; the simulator also takes http so loopback test servers can subscribe.
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ApiError(400, 9602, 'Invalid argument: notificationUrl must be https.');
      if (body.notificationUrl.length > LIMITS.maxNotificationLength) {
        throw new ApiError(400, 9602, `Invalid argument: notificationUrl longer than ${LIMITS.maxNotificationLength}.`);
      }
      notificationUrl = body.notificationUrl;
      testNeeded = true;
    }
  }
  if (notificationUrl && !notificationAuthToken) throw new ApiError(400, 9600, 'Missing required argument: notificationAuthToken.');
  // Subscribing without naming types subscribes to all of them (a simulator choice; Apple does not document it).
  if (notificationUrl && notificationTypes.length === 0 && body.notificationTypes === undefined) notificationTypes = [...NOTIFICATION_TYPES];

  if (notificationUrl && testNeeded) {
    // Apple sends TEST_NOTIFICATION and rejects the configuration if it is not accepted.
    const status = await notifier.test(notificationUrl, notificationAuthToken, loc.uId);
    if (status === undefined || status < 200 || status >= 300) {
      throw new ApiError(
        400,
        9602,
        `Invalid argument: the test notification to notificationUrl was not accepted (${status === undefined ? 'no answer' : `HTTP ${status}`}).`,
      );
    }
  }
  loc.mdmInfo = mdmInfo;
  loc.notificationUrl = notificationUrl;
  loc.notificationAuthToken = notificationAuthToken;
  loc.notificationTypes = notificationUrl ? notificationTypes : [];
  touch(loc);
  return clientConfigBody(loc, origin);
}
