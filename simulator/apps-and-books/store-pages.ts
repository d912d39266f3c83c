// The store's pages outside the API: the invitation page a user opens from InviteToProgram (GET shows it,
// POST {"appleAccount"} accepts), and the content metadata lookup that names assets and their bundle ids.
import type http from 'node:http';
import { isRecord, type ApiError } from './apple-api.js';
import { acceptInvitationAndNotify, type ServiceContext } from './context.js';
import { jsonBody, sendJson } from './http-io.js';

// The store's content metadata lookup (Apple: contentMetadataLookup, queried with ?id=1,2&p=mdm-lockup):
// names and bundle identifiers, which /assets does not carry.
export function handleLookup(ctx: ServiceContext, res: http.ServerResponse, url: URL) {
  const ids = (url.searchParams.get('id') ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  if (ids.length === 0) return sendJson(res, 400, { errorMessage: 'id is required' });
  const results: Record<string, unknown> = {};
  for (const loc of ctx.state.locations.values()) {
    for (const a of loc.assets.values()) {
      if (!ids.includes(a.adamId) || results[a.adamId] || !a.name) continue;
      results[a.adamId] = { id: a.adamId, name: a.name, kind: a.productType === 'Book' ? 'book' : 'software', ...(a.bundleId ? { bundleId: a.bundleId } : {}) };
    }
  }
  return sendJson(res, 200, { results });
}

export async function handleInvitation(ctx: ServiceContext, req: http.IncomingMessage, res: http.ServerResponse, url: URL, raw: Buffer) {
  const inviteCode = url.searchParams.get('inviteCode') ?? '';
  const ref = ctx.state.invites.get(inviteCode);
  const user = ref ? ref.loc.users.get(ref.clientUserId) : undefined;
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
