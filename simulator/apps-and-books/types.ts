// What tests, benchmarks and the sandbox see of the simulated Apps and Books service: its options, the
// assets a token is issued with, the faults it can inject, its logs and the control surface.

export interface SimAsset {
  adamId: string;
  pricingParam?: string;
  productType?: 'App' | 'Book';
  totalCount: number;
  deviceAssignable?: boolean;
  name?: string;
  bundleId?: string;
  /**
   * A custom (B2B) app: the content metadata lookup shows it only with platform=enterprisestore and the owning
   * organisation's sToken as the `itvt` cookie (getting-app-and-book-information-legacy).
   */
  customApp?: boolean;
  /** The lookup's artwork.url (default: a generated SVG icon, so the sandbox's page shows icons offline). */
  artworkUrl?: string;
}

export interface IssueTokenOptions {
  orgName: string;
  expDate?: Date;
  assets: SimAsset[];
  locationName?: string;
  /** The client config's defaultPlatform (default enterprisestore, as for an Apple Business Manager location). */
  defaultPlatform?: 'volumestore' | 'enterprisestore';
}

export type SimFaultKind = 'none' | 'slow' | 'hold' | 'error5xx' | 'error' | 'throttle' | 'error200' | 'drop' | 'lostAnswer' | 'maintenance';

export interface SimFault {
  /**
   * slow: delay, then answer normally. hold: wait until releaseHeldRequests(), then answer normally. error5xx: 503 with 9729 (or `status` 500 with 9603, Apple's pairs),
   * Retry-After if retryAfterSeconds. throttle: 429 with 9646 and Retry-After (default 1 s). error200: 200 whose
   * body is an Apple error (`errorNumber`, default 9601), as Apple sometimes does. drop: close the connection
   * without answering. lostAnswer: handle the request, then close the connection instead of answering (what
   * a client sees when its timeout fires after Apple took the request). error: Apple's ErrorResponse for
   * `errorNumber` with the HTTP status Apple's table gives it. maintenance: a manage request is accepted
   * (eventId) but its event fails for every target with the asynchronous 9644 "The service is in maintenance mode".
   */
  kind: SimFaultKind;
  delayMs?: number;
  retryAfterSeconds?: number;
  /** How many API requests the fault hits, then back to none (default: until changed). */
  times?: number;
  status?: number;
  errorNumber?: number;
  /** Only requests whose path below the base starts with this, e.g. '/assets/associate'. */
  path?: string;
}

export interface SimRequestLogEntry {
  method: string;
  /** Full path without query, e.g. /mdm/v2/assets/associate. */
  path: string;
  /** 0 when the connection was dropped by a fault. */
  status: number;
}

export interface SimNotificationLogEntry {
  notificationId: string;
  notificationType: string;
  uId: string;
  url: string;
  attempts: number;
  delivered: boolean;
  /** No more attempts will be made (delivered, or all three failed). */
  done: boolean;
  lastStatus?: number;
  body: Record<string, unknown>;
}

export interface SimUser {
  clientUserId: string;
  email?: string;
  managedAppleId?: string;
  status: 'Registered' | 'Associated' | 'Retired' | 'Deleted';
  inviteCode?: string;
  idHash?: string;
  appleAccount?: string;
}

/** Documented-but-surprising answers a test can switch on, each as one of Apple's own examples shows it. */
export interface SimQuirks {
  /**
   * GET /users?activeOnly=true also lists Retired records, as Apple's own get-users-4mwln example does
   * (users-get-active-only.json: asked with activeOnly=true, it returns client-103 as Retired).
   */
  activeOnlyListsRetired?: boolean;
  /**
   * The endpoint's versionId changes after each non-last page served, `times` times: Apple "The versionId for an
   * endpoint can change while traversing a paginated result set" (using-paginated-endpoints).
   */
  versionIdChangesWhilePaging?: { path: '/assets' | '/assignments' | '/users'; times: number };
  /**
   * No event or user notification is delivered (TEST_NOTIFICATION still is, so subscribing works): Apple's
   * "Notifications are best-effort and should not be the sole mechanism for confirming request completion".
   */
  notificationsLost?: boolean;
}

/** GET /status calls per event: how many, and how many were refused for polling a PENDING event too soon. */
export interface SimEventPolls {
  eventId: string;
  eventType: string;
  polls: number;
  refusedPolls: number;
}

export interface SimulatedAppsAndBooks {
  /** What the server uses as VPP_URL, e.g. http://127.0.0.1:PORT/mdm/v2 */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  issueToken(opts: IssueTokenOptions): string;
  /** The sToken was issued by this service (now or, with a state file, before a restart). */
  hasToken(sToken: string): boolean;
  revokeToken(sToken: string): void;
  /** A renewed sToken for the same location (the old one stops working); default expiry in a year. */
  renewToken(sToken: string, opts?: { expDate?: Date }): string;
  setMdmInfo(sToken: string, mdmInfo: { id: string; name: string; metadata?: string } | null): void;
  acceptInvitation(inviteCode: string, appleAccount: string): void;
  assignedCount(sToken: string, adamId: string): number;
  assignments(sToken: string): Array<{ adamId: string; serialNumber?: string; clientUserId?: string }>;
  /** The location's user records as the service sees them (retired ones included). */
  users(sToken: string): SimUser[];
  /** Adds assets to a location (a purchase of a new app). */
  addAssets(sToken: string, assets: SimAsset[]): void;
  /** Changes a purchased count (purchase, transfer, refund) and sends ASSET_COUNT with the delta. */
  setTotalCount(sToken: string, adamId: string, totalCount: number): void;
  setFault(fault: SimFault): void;
  /** Requests a `hold` fault is keeping unanswered. */
  heldRequests(): number;
  /** Lets the held requests go on, to be answered as usual. */
  releaseHeldRequests(): void;
  setEventDelay(ms: number): void;
  /** Keeps every event PENDING (even past its delay) until releaseEvents(), e.g. to test a server restart mid-event. */
  holdEvents(): void;
  /** Completes the held events, in the order they were due, and lets new ones complete after their delay again. */
  releaseEvents(): void;
  setQuirks(quirks: SimQuirks): void;
  /** Per event, the GET /status polls it got and those refused (Apple: ≥ 30 s between polls of a PENDING event). */
  eventPolls(sToken: string): SimEventPolls[];
  /** The minimum between two /status polls of a PENDING event that the service accepts. */
  readonly minStatusPollIntervalMs: number;
  requestLog(): SimRequestLogEntry[];
  clearRequestLog(): void;
  notificationLog(): SimNotificationLogEntry[];
  close(): Promise<void>;
}

export interface StartSimulatedAppsAndBooksOptions {
  port?: number;
  host?: string;
  /** How long async events stay PENDING (default 50 ms). */
  eventDelayMs?: number;
  /** Items per page of /assets, /assignments, /users (default 10, small so callers exercise paging). */
  pageSize?: number;
  /** Wait between notification delivery attempts (Apple: 3 attempts within 1–5 min; default 100 ms here). */
  notificationRetryDelayMs?: number;
  /**
   * Minimum time after a PENDING answer before /status of the same event may be asked again; faster polls are
   * refused with 429/9646. Apple: "While the returned eventStatus is PENDING, wait at least 30 seconds between
   * subsequent status queries" (subscribing-to-notifications), so the default is 30 000. Tests and the sandbox
   * shorten it together with the server's VPP_EVENT_POLL_MS, never one without the other.
   */
  minStatusPollIntervalMs?: number;
  /** The clock the poll spacing is measured with (default Date.now), so a test can keep Apple's 30 s. */
  now?: () => number;
  /**
   * Keeps the service's state in this JSON file: read at start, written after changes and on close, so a
   * restarted service knows its tokens, licenses, users and events (./persistence.ts). Without `port`, the
   * port it last listened on is taken again when free.
   */
  stateFile?: string;
  /** A state file could not be written (the service goes on; default: a process warning). */
  onStateFileError?: (err: Error) => void;
}

export class SimulatorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatorError';
  }
}
