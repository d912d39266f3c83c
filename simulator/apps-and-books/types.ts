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
}

export type SimFaultKind = 'none' | 'slow' | 'error5xx' | 'throttle' | 'error200' | 'drop';

export interface SimFault {
  /**
   * slow: delay, then answer normally. error5xx: 503 (or `status`) with 9603, Retry-After if retryAfterSeconds.
   * throttle: 429 with 9646 and Retry-After (default 1 s). error200: 200 whose body is an Apple error
   * (`errorNumber`, default 9601), as Apple sometimes does. drop: close the connection without answering.
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
  userId: string;
  appleAccount?: string;
}

export interface SimulatedAppsAndBooks {
  /** What the server uses as VPP_URL, e.g. http://127.0.0.1:PORT/mdm/v2 */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  issueToken(opts: { orgName: string; expDate?: Date; assets: SimAsset[]; locationName?: string }): string;
  /** The sToken was issued by this service (now or, with a state file, before a restart). */
  hasToken(sToken: string): boolean;
  revokeToken(sToken: string): void;
  setMdmInfo(sToken: string, mdmInfo: { id: string; name: string; metadata?: string } | null): void;
  acceptInvitation(inviteCode: string, appleAccount: string): void;
  assignedCount(sToken: string, adamId: string): number;
  assignments(sToken: string): Array<{ adamId: string; serialNumber?: string; clientUserId?: string }>;
  /** The location's users as the service sees them. */
  users(sToken: string): SimUser[];
  /** Adds assets to a location (a purchase of a new app). */
  addAssets(sToken: string, assets: SimAsset[]): void;
  /** Changes a purchased count (purchase, transfer, refund) and sends ASSET_COUNT with the delta. */
  setTotalCount(sToken: string, adamId: string, totalCount: number): void;
  setFault(fault: SimFault): void;
  setEventDelay(ms: number): void;
  /** Keeps every event PENDING (even past its delay) until releaseEvents(), e.g. to test a server restart mid-event. */
  holdEvents(): void;
  /** Completes the held events, in the order they were due, and lets new ones complete after their delay again. */
  releaseEvents(): void;
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
