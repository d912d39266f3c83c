import express from 'express';
import { invalid } from '../errors.js';
import type { AppleNotifications } from '../licensing/notifications.js';
import type { Logger } from '../log.js';
import { asAppError, httpStatus, sendError } from './errors.js';

// Apple's notification endpoint: authenticated with the subscription's own notificationAuthToken, not the
// admin token, so it lives outside the admin API.
export function notificationRoutes(notifications: AppleNotifications, log: Logger): express.Router {
  const r = express.Router();
  r.post('/vpp/notifications/:subscriptionId', express.json({ limit: '256kb' }), async (req, res) => {
    try {
      if (JSON.stringify(req.body ?? {}).includes('\\u0000')) throw invalid('NUL characters are not allowed', 'invalid_notification');
      await notifications.handle(String(req.params.subscriptionId), req.header('authorization'), req.body);
      res.status(200).json({ received: true });
    } catch (err) {
      const known = asAppError(err);
      if (known) {
        log.warn({ status: httpStatus(known), reason: known.message }, 'VPP notification refused');
        sendError(res, known);
        return;
      }
      log.error({ error: (err as Error).message }, 'VPP notification failed');
      res.status(500).json({ error: { code: 'internal', message: 'internal server error' } });
    }
  });
  return r;
}
