import type { Device, Snapshot, TargetType, User } from './api.js';

// Without a DeviceName (Authenticate may omit it) the serial number is what tells devices apart.
export const deviceLabel = (d: Device) => d.deviceName ?? (d.productName && d.serialNumber ? `${d.productName} ${d.serialNumber}` : d.serialNumber ?? d.udid);
export const userLabel = (u: User) => u.email;

/** What a person calls an assignment's target: the device's name or the user's email, else the raw id. */
export function targetLabel(snapshot: Snapshot, type: TargetType, id: string): string {
  if (type === 'device') {
    const d = snapshot.devices.find((x) => x.udid === id);
    return d ? deviceLabel(d) : id;
  }
  const u = snapshot.users.find((x) => x.id === id);
  return u ? userLabel(u) : id;
}
