// The admin JSON API as the page uses it (server/http/admin-api.ts and vpp-api.ts are the source of truth).

export interface LicenseRow {
  adamId: string; name: string | null; bundleId: string | null; pricingParam: string;
  total: number; assigned: number; available: number; reserved: number; waiting: number;
  /** Only when the store lookup gave one; the summary does not carry it yet. */
  iconUrl?: string;
}
export interface Subscription {
  id: string; name: string; status: string; statusReason: string | null; orgName: string; locationName: string | null;
  expiresAt: string; daysUntilExpiry: number; warning?: string; lastSyncAt: string | null; lastSyncError: string | null;
  schedule: { type: string; at?: string; every?: string };
}
export interface Bundle { id: string; subscriptionId: string; adamId: string; name: string; bundleId: string | null; deviceAssignable: boolean }
export type TargetType = 'user' | 'device';
export interface Assignment {
  bundleId: string; targetType: TargetType; targetId: string; status: string; reason: string | null;
  license: { state: string; failure: string | null } | null;
  devices: Array<{ udid: string; status: string; reason: string | null }>;
}
export interface Device {
  udid: string; serialNumber: string | null; osVersion: string | null; productName: string | null; deviceName: string | null;
  userId: string | null; enrolled: boolean; pushable: boolean; tokenDead: boolean; lastSeenAt: string | null;
}
export interface User { id: string; email: string; appleAccount: string | null }
export interface SandboxInfo { demoSToken: string }

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

const TOKEN_KEY = 'vpp-mdm.adminToken';
// sessionStorage: the token lives as long as the tab, never in the URL, history or a cookie.
export const savedToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const saveToken = (token: string) => sessionStorage.setItem(TOKEN_KEY, token);
export const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

export interface Api {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<{ status: number; body: T }>;
  delete(path: string): Promise<void>;
}

export function apiClient(token: string): Api {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(path, {
      method, cache: 'no-store',
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: unknown;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
    if (!res.ok) {
      const e = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(res.status, e?.code ?? 'http_error', e?.message ?? `${method} ${path} answered HTTP ${res.status}`);
    }
    return { status: res.status, body: parsed };
  };
  return {
    get: async <T>(path: string) => (await call('GET', path)).body as T,
    post: async <T>(path: string, body?: unknown) => (await call('POST', path, body)) as { status: number; body: T },
    delete: async (path: string) => { await call('DELETE', path); },
  };
}

export const enc = encodeURIComponent;

export interface Snapshot {
  licenses: LicenseRow[];
  subscriptions: Subscription[];
  bundles: Bundle[];
  assignments: Assignment[];
  devices: Device[];
  users: User[];
  loadedAt: Date;
}

/**
 * Everything the page shows, from the existing endpoints. Assignments are read per bundle: the API has no
 * list across bundles. Per-device app status comes from the assignments' device lists (the same rows
 * GET /devices/:udid shows as `apps`), so the page needs no request per device.
 */
export async function loadSnapshot(api: Api): Promise<Snapshot> {
  const [licenses, subscriptions, bundles, devices, users] = await Promise.all([
    api.get<LicenseRow[]>('/api/v1/vpp/licenses'),
    api.get<Subscription[]>('/api/v1/vpp/subscriptions'),
    api.get<Bundle[]>('/api/v1/bundles'),
    api.get<Device[]>('/api/v1/devices'),
    api.get<User[]>('/api/v1/users'),
  ]);
  const perBundle = await Promise.all(bundles.map((b) => api.get<Assignment[]>(`/api/v1/bundles/${enc(b.id)}/assignments`)));
  return { licenses, subscriptions, bundles, assignments: perBundle.flat(), devices, users, loadedAt: new Date() };
}
