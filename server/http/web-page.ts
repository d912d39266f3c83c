import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';

// The admin page (web/, built by `npm run build:web` into dist/web/) and the short text 404 for every other
// path outside /api. Mounted after all other routers: it only sees requests nobody else answered.

/** The package's root, from the source (server/http/) or from its compiled copy (dist/server/http/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

export const builtWebRoot = path.join(packageRoot(), 'dist', 'web') + path.sep;

// Vite names every file under assets/ after a hash of its content, so a cached copy can never be stale;
// index.html keeps its name and must be revalidated so a rebuild reaches browsers at once.
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

// The page holds the admin token: it loads nothing from elsewhere except app icons from the store.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' https: data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'", "object-src 'none'",
].join('; ');

export const NOT_BUILT_MESSAGE = 'The admin page is not built: run `npm run build:web` (it writes dist/web/), then reload.\n'
  + 'The JSON API works without it: /api/v1 (described at /api/v1/openapi.json).\n';

export function webPage({ root = builtWebRoot }: { root?: string } = {}): express.Router {
  const router = express.Router();
  const assets = path.join(root, 'assets') + path.sep;

  router.use((_req, res, next) => {
    res.set({ 'Content-Security-Policy': CONTENT_SECURITY_POLICY, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' });
    next();
  });
  router.get(['/', '/index.html'], (_req, res) => {
    const index = path.join(root, 'index.html');
    // Checked per request: a build made while the server runs is served without a restart.
    if (!fs.existsSync(index)) {
      res.status(503).set('Cache-Control', 'no-store').type('text/plain').send(NOT_BUILT_MESSAGE);
      return;
    }
    res.set('Cache-Control', REVALIDATE).sendFile(index);
  });
  router.use(express.static(root, {
    index: false, redirect: false, cacheControl: false,
    setHeaders: (res, file) => { res.setHeader('Cache-Control', file.startsWith(assets) ? IMMUTABLE : REVALIDATE); },
  }));
  router.use((req, res, next) => {
    if (req.path === '/api' || req.path.startsWith('/api/')) return next();
    res.status(404).type('text/plain').send('Not found. The admin page is at /, the admin API under /api/v1.\n');
  });
  return router;
}
