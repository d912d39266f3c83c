// The check-in messages a device sends (Apple: mdm/apple-schema/mdm/checkin/authenticate.yaml,
// tokenupdate.yaml) and how it reads a server's refusal of a connection (errors/unrecognized.device.yaml).
import { randomBytes } from 'node:crypto';
import { parsePlistDict } from '../../mdm/plist.js';
import { compareVersions, imeiFor } from '../models.js';
import type { DeviceFacts, Dict } from './types.js';

export function authenticateMessage(d: DeviceFacts, topic: string): Dict {
  const msg: Dict = {
    MessageType: 'Authenticate',
    Topic: topic,
    UDID: d.udid,
    OSVersion: d.osVersion,
    BuildVersion: d.buildVersion,
    ProductName: d.productName,
    SerialNumber: d.serialNumber,
  };
  if (d.product.cellular) msg.IMEI = imeiFor(d.udid);
  return msg;
}

/** TokenUpdate; Apple allows the UnlockToken only once per enrollment, so the caller says when. */
export function tokenUpdateMessage(t: { topic: string; udid: string; token: Buffer; pushMagic?: string; withUnlockToken: boolean }): Dict {
  const msg: Dict = {
    MessageType: 'TokenUpdate',
    Topic: t.topic,
    UDID: t.udid,
    Token: t.token,
    PushMagic: t.pushMagic,
    AwaitingConfiguration: false,
  };
  if (t.withUnlockToken) msg.UnlockToken = unlockToken();
  return msg;
}

// Apple's UnlockToken is an opaque keybag blob ("DATA" tagged, ~1.2 KB); servers store it unread.
function unlockToken(): Buffer {
  return Buffer.concat([Buffer.from('DATA', 'latin1'), randomBytes(252)]);
}

// Apple (errors/unrecognized.device.yaml): from iOS 17 a 403 {"code":"com.apple.unrecognized.device"}
// unenrolls the device; a 401 always has.
export function connectRefusalUnenrolls(status: number, body: Buffer, osVersion: string): boolean {
  let unenroll = status === 401;
  if (status === 403 && compareVersions(osVersion, '17.0') >= 0) {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown };
      unenroll = parsed.code === 'com.apple.unrecognized.device';
    } catch {
      try {
        unenroll = parsePlistDict(body).code === 'com.apple.unrecognized.device';
      } catch {
        unenroll = false;
      }
    }
  }
  return unenroll;
}
