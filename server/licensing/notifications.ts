import { checkNotificationAuth, NotificationError, readNotification, type AppleNotification } from '../../vpp/notifications.js';
import { AppError, invalid, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { SecretBox } from '../secrets.js';
import type { Storage } from '../storage/ports.js';
import type { AppleEvents } from './apple-events.js';
import type { Subscriptions } from './subscriptions.js';
import type { UserRegistrations } from './user-registrations.js';

type NotificationPorts = Pick<Storage, 'subscriptions' | 'notifications' | 'devices'>;

/**
 * Apple's notifications to the subscription's notificationUrl, authenticated with its own token, read once at
 * the boundary (vpp/notifications.ts readNotification) and handled once each (Apple retries deliveries).
 * https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
 */
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
    let n: AppleNotification;
    try { n = readNotification(body); } catch (err) {
      if (err instanceof NotificationError) throw invalid(err.message, 'invalid_notification');
      throw err;
    }
    if (!(await storage.notifications.record(sub.id, n.notificationId, n.otherType ?? n.notificationType))) {
      log.debug({ notificationId: n.notificationId }, 'duplicate notification ignored');
      return;
    }
    switch (n.notificationType) {
      case 'ASSET_MANAGEMENT': await this.deps.events.fromAssetNotification(sub, n.notification); break;
      case 'USER_MANAGEMENT': await this.deps.events.fromUserNotification(sub, n.notification); break;
      case 'USER_ASSOCIATED': {
        // Apple: "Track users upon receiving a USER_ASSOCIATED notification type that the server sends when a
        // user accepts an invitation." Their devices sync now for the second refresh, which licenses the user.
        for (const userId of await this.deps.registrations.associated(sub, n.notification.associatedUsers)) {
          const udids = (await storage.devices.list({ userId })).filter((d) => d.enrolled).map((d) => d.udid);
          if (udids.length) await this.deps.push.request(udids, 'VPP user associated');
        }
        break;
      }
      case 'ASSET_COUNT':
        await this.deps.subscriptions.syncAssets(sub.id).catch((e) => log.error({ error: (e as Error).message }, 'vpp asset sync after ASSET_COUNT failed'));
        break;
      default: break;
    }
    log.info({ subscriptionId: sub.id, type: n.otherType ?? n.notificationType }, 'VPP notification handled');
  }
}
