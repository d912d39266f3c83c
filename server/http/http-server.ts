import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Logger } from '../log.js';
import { serviceRoutes } from './admin-routes.js';
import { mount } from './api-route.js';
import { asPortInUse } from './port.js';

// The HTTP server: a guard every route relies on, the health check, and the routers in order (Apple's
// notifications, the device endpoints, the admin API with its error handler, the admin page).

export interface ListeningServer { url: string; close(): Promise<void> }

export async function listen(opts: {
  host: string; port: number; log: Logger; routers: express.Router[];
  health: () => { ready: boolean; database: string };
}): Promise<ListeningServer> {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use((req, res, next) => {
    // NUL cannot be stored or looked up in PostgreSQL text: answer 400 before any route touches it.
    let path = req.path;
    try { path = decodeURIComponent(req.path); } catch { /* undecodable: the route answers 404 */ }
    if (path.includes('\0')) {
      opts.log.warn({ path: req.path, reason: 'NUL character in the path' }, 'request refused');
      if (req.path.startsWith('/api/')) res.status(400).json({ error: { code: 'bad_request', message: 'NUL character in the path' } });
      else res.status(400).type('text/plain').send('NUL character in the path');
      return;
    }
    next();
  });
  mount(app, serviceRoutes.health, (_in, _req, res) => {
    const { ready, database } = opts.health();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ok' : 'starting', database });
  });
  for (const router of opts.routers) app.use(router);
  // Whatever no router answered under /api gets the API's JSON error, not Express's HTML page.
  app.use('/api', (_req, res) => { res.status(404).json({ error: { code: 'not_found', message: 'no such API endpoint' } }); });

  const server = http.createServer({ keepAliveTimeout: 65_000 }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(asPortInUse(err, opts.host, opts.port)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
