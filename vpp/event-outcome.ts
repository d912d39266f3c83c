// What an Apple event's outcome means for the licenses and users it was about.

/** Why we wait for an Apple event: to associate or disassociate licenses, to release another MDM's, to create a user. */
export const APPLE_EVENT_KINDS = ['associate', 'disassociate', 'reset', 'createUser'] as const;
export type AppleEventKind = (typeof APPLE_EVENT_KINDS)[number];
