// What the App Store checks when a simulated device installs a VPP app (PurchaseMethod 1): is a license
// for that app assigned to this device's serial number, or to the Apps and Books user whose Apple Account
// is signed in on the device? Answered from the simulated Apps and Books service in the same process, so
// a device fails the install when the server queued InstallApplication without a real assignment.
import type { VppLicenseCheck } from './device.js';
import type { SimulatedAppsAndBooks } from './apps-and-books.js';

export function appsAndBooksLicenseCheck(
  service: Pick<SimulatedAppsAndBooks, 'assignments' | 'users'>,
  /** The sTokens of the locations whose licenses count (all the server has linked). */
  sTokens: () => string[],
): VppLicenseCheck {
  return async ({ adamId, serialNumber, appleAccount }) => {
    const id = String(adamId);
    let userLicensed = false;
    for (const sToken of sTokens()) {
      const assignments = service.assignments(sToken).filter((a) => a.adamId === id);
      if (assignments.some((a) => a.serialNumber === serialNumber)) return 'device';
      if (!appleAccount || userLicensed) continue;
      // A user license works on a device signed in with the Apple Account that accepted the invitation.
      const account = appleAccount.trim().toLowerCase();
      const clientUserIds = new Set(
        service
          .users(sToken)
          .filter((u) => u.status === 'Associated' && u.appleAccount?.trim().toLowerCase() === account)
          .map((u) => u.clientUserId),
      );
      userLicensed = assignments.some((a) => a.clientUserId !== undefined && clientUserIds.has(a.clientUserId));
    }
    return userLicensed ? 'user' : undefined;
  };
}
