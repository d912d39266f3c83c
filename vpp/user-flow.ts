// The user flow's states (SPEC §6): a user is registered at Apple, invited, and associated once they accept
// the invitation with their Apple Account; only then does a user license exist.

/** Apple's user statuses, plus ours: Creating (registration asked), Failed, AccountChanged (signed in with another account). */
export const VPP_USER_STATUSES = ['Creating', 'Registered', 'Associated', 'Retired', 'Deleted', 'Failed', 'AccountChanged'] as const;
export type VppUserStatus = (typeof VPP_USER_STATUSES)[number];
