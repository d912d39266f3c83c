// The service's truth as a JSON document (tokens, locations, assets and who holds them, users, invitations,
// events, the claim and the notification subscription), so a restarted sandbox is the same Apple: the same
// sToken still authenticates, licenses stay assigned and /status still knows its events. Request and
// notification logs are diagnostics of one run and are not kept.
import { z } from 'zod';
import { assetKey, type EventState, type Location, type ServiceState } from './state.js';

const FORMAT = 'vpp-mdm simulated Apps and Books 1';

const AssetRef = z.object({ adamId: z.string(), pricingParam: z.string() });
const SavedAsset = AssetRef.extend({
  productType: z.enum(['App', 'Book']),
  totalCount: z.number().int().min(0),
  deviceAssignable: z.boolean(),
  revocable: z.boolean(),
  name: z.string().optional(),
  bundleId: z.string().optional(),
  customApp: z.boolean().default(false),
  artworkUrl: z.string().optional(),
  serials: z.array(z.string()),
  users: z.array(z.string()),
});
const SavedUser = z.object({
  clientUserId: z.string(),
  email: z.string().optional(),
  managedAppleId: z.string().optional(),
  status: z.enum(['Registered', 'Associated', 'Retired', 'Deleted']),
  inviteCode: z.string().optional(),
  idHash: z.string().optional(),
  appleAccount: z.string().optional(),
});
const SavedEvent = z.object({
  eventId: z.string(),
  eventType: z.enum(['ASSOCIATE', 'DISASSOCIATE', 'REVOKE', 'CREATE', 'UPDATE', 'RETIRE']),
  eventStatus: z.enum(['PENDING', 'COMPLETE', 'FAILED']),
  numRequested: z.number().int(),
  numCompleted: z.number().int(),
  failures: z.array(z.object({
    errorNumber: z.number().int(),
    errorMessage: z.string(),
    errorInfo: z.object({ assets: z.array(AssetRef).optional(), clientUserIds: z.array(z.string()).optional(), serialNumbers: z.array(z.string()).optional() }),
  })),
  lastPendingAnswerAt: z.number().optional(),
  polls: z.number().int().min(0).default(0),
  refusedPolls: z.number().int().min(0).default(0),
});
const SavedLocation = z.object({
  sToken: z.string(),
  orgName: z.string(),
  expDate: z.iso.datetime(),
  locationName: z.string(),
  uId: z.string(),
  revoked: z.boolean(),
  mdmInfo: z.object({ id: z.string(), name: z.string(), metadata: z.string().optional() }).nullable(),
  notificationUrl: z.string().optional(),
  notificationAuthToken: z.string().optional(),
  notificationTypes: z.array(z.string()),
  defaultPlatform: z.enum(['volumestore', 'enterprisestore']).default('enterprisestore'),
  assets: z.array(SavedAsset),
  users: z.array(SavedUser),
  events: z.array(SavedEvent),
  versionId: z.string(),
});

export const SavedAppsAndBooks = z.object({
  format: z.literal(FORMAT),
  /** The port it listened on, taken again when free so the server's stored URLs (invitations) stay valid. */
  port: z.number().int().min(1).max(65535).optional(),
  locations: z.array(SavedLocation),
  /** Open invitations: the code and the index of the user record it was issued to in its location's users. */
  invites: z.array(z.object({ inviteCode: z.string(), sToken: z.string(), user: z.number().int().min(0) })),
});
export type SavedAppsAndBooks = z.infer<typeof SavedAppsAndBooks>;

export function snapshotState(state: ServiceState, port: number | undefined): SavedAppsAndBooks {
  const locations = [...state.locations.values()].map((loc) => ({
    sToken: loc.sToken,
    orgName: loc.orgName,
    expDate: loc.expDate.toISOString(),
    locationName: loc.locationName,
    uId: loc.uId,
    revoked: loc.revoked,
    mdmInfo: loc.mdmInfo ? { ...loc.mdmInfo } : null,
    notificationUrl: loc.notificationUrl,
    notificationAuthToken: loc.notificationAuthToken,
    notificationTypes: [...loc.notificationTypes],
    defaultPlatform: loc.defaultPlatform,
    assets: [...loc.assets.values()].map((a) => ({ ...a, serials: [...a.serials], users: [...a.users] })),
    users: loc.users.map((u) => ({ ...u })),
    events: [...loc.events.values()].map((e) => structuredClone(e)),
    versionId: loc.versionId,
  }));
  const invites = [...state.invites].map(([inviteCode, ref]) => ({ inviteCode, sToken: ref.loc.sToken, user: ref.loc.users.indexOf(ref.user) }))
    .filter((i) => i.user >= 0);
  return { format: FORMAT, port, locations, invites };
}

/** Fills an empty ServiceState from a saved document. */
export function restoreState(state: ServiceState, saved: SavedAppsAndBooks): void {
  for (const s of saved.locations) {
    const loc: Location = {
      sToken: s.sToken,
      orgName: s.orgName,
      expDate: new Date(s.expDate),
      locationName: s.locationName,
      uId: s.uId,
      revoked: s.revoked,
      mdmInfo: s.mdmInfo ? { ...s.mdmInfo } : null,
      notificationUrl: s.notificationUrl,
      notificationAuthToken: s.notificationAuthToken,
      notificationTypes: [...s.notificationTypes],
      defaultPlatform: s.defaultPlatform,
      assets: new Map(),
      users: s.users.map((u) => ({ ...u })),
      events: new Map(),
      versionId: s.versionId,
    };
    for (const a of s.assets) {
      loc.assets.set(assetKey(a.adamId, a.pricingParam), { ...a, serials: new Set(a.serials), users: new Set(a.users) });
    }
    for (const e of s.events) loc.events.set(e.eventId, interruptedIfPending(e));
    state.locations.set(loc.sToken, loc);
  }
  for (const i of saved.invites) {
    const loc = state.locations.get(i.sToken);
    const user = loc?.users[i.user];
    if (loc && user) state.invites.set(i.inviteCode, { loc, user });
  }
}

// A clean close completes every pending event first (EventRunner.completeAll); one still PENDING in the file
// was cut off by a crash, its effect unknown. It fails with Apple's internal error, so the MDM retries it.
function interruptedIfPending(e: z.infer<typeof SavedEvent>): EventState {
  if (e.eventStatus !== 'PENDING') return structuredClone(e);
  return {
    ...structuredClone(e),
    eventStatus: 'FAILED',
    failures: [{ errorNumber: 9603, errorMessage: 'Internal error: the simulated service stopped before this event completed.', errorInfo: {} }],
  };
}
