// The store's pages outside the API: the invitation page a user opens from InviteToProgram (GET shows it,
// POST {"appleAccount"} accepts), and the content metadata lookup that names assets and their bundle ids.
import type http from 'node:http';
import { isRecord, type ApiError } from './apple-api.js';
import { acceptInvitationAndNotify, type ServiceContext } from './context.js';
import { jsonBody, sendJson } from './http-io.js';
import type { AssetState } from './state.js';

// The store's content metadata lookup (Apple: urls.contentMetadataLookup, "Getting app and book information
// (Legacy)"): `?version=2&id=…&p=mdm-lockup&caller=MDM&platform=…&cc=…&l=…`, answered with `results` keyed by id.
// "The platform filters the content … to get B2B app content, append platform=enterprisestore", and for custom
// apps "You must include the organization's sToken as a cookie named itvt". An id it cannot show is simply
// absent: an empty `results` is still a 200.
// https://developer.apple.com/documentation/devicemanagement/getting-app-and-book-information-legacy
export function handleLookup(ctx: ServiceContext, req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
  const ids = (url.searchParams.get('id') ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const platform = url.searchParams.get('platform');
  const itvt = /(?:^|;\s*)itvt=([^;]+)/.exec(String(req.headers.cookie ?? ''))?.[1];
  const owner = itvt ? ctx.state.locations.get(decodeURIComponent(itvt)) : undefined;
  const results: Record<string, unknown> = {};
  for (const loc of ctx.state.locations.values()) {
    for (const a of loc.assets.values()) {
      if (!ids.includes(a.adamId) || results[a.adamId] || !a.name) continue;
      if (a.customApp && (platform !== 'enterprisestore' || owner !== loc)) continue;
      results[a.adamId] = lookupResult(a);
    }
  }
  const cc = (url.searchParams.get('cc') ?? 'us').toUpperCase();
  return sendJson(res, 200, { isAuthenticated: owner !== undefined, meta: { language: { tag: `${url.searchParams.get('l') ?? 'en'}-${cc.toLowerCase()}` }, storefront: { cc, id: '143441' } }, results, version: 2 });
}

/** One result with the fields of Apple's examples that describe an app (content-metadata-lookup*.json). */
function lookupResult(a: AssetState): Record<string, unknown> {
  return {
    artistName: 'Simulated Developer',
    artwork: { height: 512, url: a.artworkUrl ?? generatedIcon(a), width: 512 },
    ...(a.bundleId ? { bundleId: a.bundleId } : {}),
    deviceFamilies: ['iphone', 'ipad'],
    id: a.adamId,
    isB2BCustomApp: a.customApp,
    isVppDeviceBasedLicensingEnabled: a.deviceAssignable,
    // Apple's examples say iosSoftware for apps; for books the store's own word is ebook (iTunes Search API).
    kind: a.productType === 'Book' ? 'ebook' : 'iosSoftware',
    name: a.name,
    url: `https://apps.apple.com/us/app/id${a.adamId}`,
  };
}

/** A data: URL icon (initials on a colour from the adamId), so the sandbox's admin page shows icons offline. */
function generatedIcon(a: AssetState): string {
  const hue = [...a.adamId].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7);
  const initials = (a.name ?? '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]!.toUpperCase()).join('').replace(/[^A-Z0-9]/g, '');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512" rx="112" fill="hsl(${hue},55%,45%)"/>` +
    `<text x="256" y="320" font-family="sans-serif" font-size="200" text-anchor="middle" fill="#fff">${initials}</text></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

export async function handleInvitation(ctx: ServiceContext, req: http.IncomingMessage, res: http.ServerResponse, url: URL, raw: Buffer) {
  const inviteCode = url.searchParams.get('inviteCode') ?? '';
  const ref = ctx.state.invites.get(inviteCode);
  const user = ref?.user;
  if (req.method === 'GET') {
    const wantsJson = String(req.headers.accept ?? '').includes('application/json');
    if (!ref || !user) {
      if (wantsJson) return sendJson(res, 404, { error: 'unknown or expired invitation' });
      res.writeHead(404, { 'Content-Type': 'text/html;charset=UTF-8' });
      return res.end('<!doctype html><title>Invitation</title><p>This invitation is not valid.</p>');
    }
    const info = { inviteCode, organization: ref.loc.orgName, locationName: ref.loc.locationName, status: user.status };
    if (wantsJson) return sendJson(res, 200, info);
    const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    res.writeHead(200, { 'Content-Type': 'text/html;charset=UTF-8' });
    return res.end(
      `<!doctype html><title>Apps and Books invitation</title><h1>${esc(ref.loc.orgName)}</h1>` +
        `<p>${esc(ref.loc.locationName)} invites you to receive apps and books (status: ${esc(user.status)}).</p>` +
        `<p>To accept, POST {"appleAccount": "…"} as JSON to this address.</p>`,
    );
  }
  if (req.method === 'POST') {
    let body: unknown;
    try {
      body = jsonBody(req, raw);
    } catch (e) {
      return sendJson(res, (e as ApiError).status ?? 400, { error: (e as Error).message });
    }
    const appleAccount = isRecord(body) ? body.appleAccount : undefined;
    if (typeof appleAccount !== 'string' || appleAccount.trim() === '') return sendJson(res, 400, { error: 'appleAccount is required' });
    if (!ref || !user) return sendJson(res, 404, { error: 'unknown or expired invitation' });
    try {
      acceptInvitationAndNotify(ctx, inviteCode, appleAccount);
    } catch (e) {
      return sendJson(res, 409, { error: (e as Error).message });
    }
    return sendJson(res, 200, { status: user.status, idHash: user.idHash });
  }
  res.writeHead(405, { Allow: 'GET, POST' });
  res.end();
}
