import { checkNotificationAuth, NotificationError, parseNotification } from '../../vpp/notifications.js';
import { AppError, invalid, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { SecretBox } from '../secrets.js';
import type { Storage } from '../storage/ports.js';
import type { AppleEvents } from './apple-events.js';
import type { Subscriptions } from './subscriptions.js';
import type { UserRegistrations } from './user-registrations.js';

type NotificationPorts = Pick<Storage, 'subscriptions' | 'notifications' | 'vppUsers' | 'devices'>;

/** Apple's notifications to the subscription's notificationUrl, authenticated with its own token, handled once each. */
export class AppleNotifications {
  constructor(private readonly deps: {
    storage: NotificationPorts; secrets: SecretBox; log: Logger; push: PushService;
    events: AppleEvents; registrations: UserRegistrations; subscriptions: Subscriptions;
  }) {}

  async handle(subscriptionId: string, authorization: string | undefined, body: unknown): Promise<void> {
    const { storage, log } = this.deps;
    const sub = await storage.subscriptions.get(subscriptionId);
    if (!sub) throw notFound('unknown subscription');
    if (!checkNotificationAuth(authorization, this.deps.secrets.open(sub.sealedNotificationToken))) throw new AppError('unauthorized', 'wrong notification token');
    let n;
    try { n = parseNotification(body); } catch (err) {
      if (err instanceof NotificationError) throw invalid(err.message, 'invalid_notification');
      throw err;
    }
    if (!(await storage.notifications.record(sub.id, n.notificationId, n.notificationType))) {
      log.debug({ notificationId: n.notificationId }, 'duplicate notification ignored');
      return;
    }
    const payload = n.notification as { eventId?: string; users?: Array<{ clientUserId?: string }>; clientUserId?: string };
    if (n.notificationType === 'ASSET_MANAGEMENT' && payload.eventId) {
      await this.deps.events.poll(payload.eventId);
    } else if (n.notificationType === 'USER_ASSOCIATED' || n.notificationType === 'USER_MANAGEMENT') {
      const ids = [payload.clientUserId, ...(payload.users ?? []).map((u) => u.clientUserId)].filter((x): x is string => !!x);
      for (const id of ids) {
        if (!(await storage.vppUsers.get(sub.id, id))) continue;
        const fresh = await this.deps.registrations.refresh(sub, id).catch(() => undefined);
        // The second refresh: push the user's devices so they sync and get the license.
        if (fresh?.status === 'Associated') await this.deps.push.request((await storage.devices.list({ userId: id })).filter((d) => d.enrolled).map((d) => d.udid), 'VPP user associated');
      }
    } else if (n.notificationType === 'ASSET_COUNT') {
      await this.deps.subscriptions.syncAssets(sub.id).catch((e) => log.error({ error: (e as Error).message }, 'vpp asset sync after ASSET_COUNT failed'));
    }
    log.info({ subscriptionId: sub.id, type: n.notificationType }, 'VPP notification handled');
  }
}
