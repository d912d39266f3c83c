// Things that expire and must be renewed by hand (the VPP sToken, the APNs push certificate) are shown with
// the days left, and a warning from 30 days before: enough time to get a new one from Apple.

export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 24 * 3600_000;

export const daysUntil = (expiresAt: Date, now = new Date()): number => Math.floor((expiresAt.getTime() - now.getTime()) / DAY_MS);

/** `daysUntilExpiry`, and `warning` (saying what to do) when fewer than 30 days are left. */
export function expiryFields(expiresAt: Date, what: string, advice: string): { daysUntilExpiry: number; warning?: string } {
  const days = daysUntil(expiresAt);
  return { daysUntilExpiry: days, ...(days < EXPIRY_WARNING_DAYS ? { warning: `${what} expires in ${days} days: ${advice}` } : {}) };
}
