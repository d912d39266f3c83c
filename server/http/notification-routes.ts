import express, { type NextFunction, type Request, type Response } from 'express';
import { invalid } from '../errors.js';
import type { AppleNotifications } from '../licensing/notifications.js';
import type { Logger } from '../log.js';
import { asAppError, httpStatus, sendError } from './errors.js';
import { jsonBody } from './parse-body.js';

// Apple's notification endpoint: authenticated with the subscription's own notificationAuthToken, not the
// admin token, so it lives outside the admin API. Anyone can reach it, so what it logs is fixed: one JSON line
// per notification, with a reason and never the body (nor a parser's excerpt of it) or a stack trace.
export function notificationRoutes(notifications: AppleNotifications, log: Logger): express.Router {
  const r = express.Router();
  const path = '/vpp/notifications/:subscriptionId';

  const answer = (req: Request, res: Response, err: unknown) => {
    const subscriptionId = String(req.params.subscriptionId);
    const known = asAppError(err);
    if (known) {
      // A parser's message can quote the body: say only what kind of problem it was.
      const reason = known.reason === 'invalid_json' ? 'body is not valid JSON or is nested too deep' : known.message;
      log.warn({ subscriptionId, status: httpStatus(known), reason }, 'VPP notification refused');
      sendError(res, known.reason === 'invalid_json' ? invalid(reason, 'invalid_json') : known);
      return;
    }
    log.error({ subscriptionId, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, 'VPP notification failed');
    res.status(500).json({ error: { code: 'internal', message: 'internal server error' } });
  };

  // The error handler is the route's last: body-parser failures of this path (bad JSON, too large, too deep)
  // end there, not in the admin API's handler.
  r.post(path, jsonBody('256kb'), async (req: Request, res: Response) => {
    try {
      if (JSON.stringify(req.body ?? {}).includes('\\u0000')) throw invalid('NUL characters are not allowed', 'invalid_notification');
      await notifications.handle(String(req.params.subscriptionId), req.header('authorization'), req.body);
      res.status(200).json({ received: true });
    } catch (err) {
      answer(req, res, err);
    }
  }, (err: unknown, req: Request, res: Response, _next: NextFunction) => answer(req, res, err));
  return r;
}
