// The Apps and Books invitations a user accepts once the connection that brought them (InviteToProgram) is over:
// with their Apple Account, or not at all without one.
import type { SimulatedDevice } from './simulated-device.js';
import { DeviceError, type DeviceEnvironment } from './types.js';

export async function acceptInvitations(device: SimulatedDevice, env: DeviceEnvironment, urls: string[]): Promise<void> {
  for (const url of urls) {
    if (!device.appleAccount) {
      env.onInvitation?.(device, url, 'no-account');
      continue;
    }
    try {
      const res = await env.http.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ appleAccount: device.appleAccount }),
      });
      if (res.status < 200 || res.status >= 300) {
        throw new DeviceError(`accepting invitation ${url} → ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
      }
      env.onInvitation?.(device, url, 'accepted');
    } catch (err) {
      env.onInvitation?.(device, url, err instanceof Error ? err : new DeviceError(String(err)));
    }
  }
}
