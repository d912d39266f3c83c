export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export type Authenticate = {
  MessageType: 'Authenticate';
  Topic: string;
  UDID: string;
  OSVersion?: string;
  BuildVersion?: string;
  ProductName?: string;
  SerialNumber?: string;
  IMEI?: string;
  MEID?: string;
  DeviceName?: string;
  Model?: string;
  ModelName?: string;
};
export type TokenUpdate = {
  MessageType: 'TokenUpdate';
  Topic: string;
  UDID: string;
  Token: Buffer;
  PushMagic: string;
  UnlockToken?: Buffer;
  AwaitingConfiguration: boolean;
  UserID?: string;
  UserShortName?: string;
  UserLongName?: string;
};
export type CheckOut = { MessageType: 'CheckOut'; Topic: string; UDID: string };
/** The user channel's first message (macOS, mdm/apple-schema/mdm/checkin/userauthenticate.yaml): no Topic. */
export type UserAuthenticate = { MessageType: 'UserAuthenticate'; UDID: string; UserID: string };
export type CheckInMessage = Authenticate | TokenUpdate | CheckOut | UserAuthenticate;

export type ReportStatus = 'Idle' | 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow';
export interface ErrorChainItem {
  ErrorCode: number;
  ErrorDomain: string;
  LocalizedDescription?: string;
  USEnglishDescription?: string;
}
export interface CommandReport {
  UDID: string;
  Status: ReportStatus;
  CommandUUID?: string;
  ErrorChain?: ErrorChainItem[];
  /** Every other key of the report, e.g. QueryResponses, InstalledApplicationList, Identifier, State. */
  result: Record<string, unknown>;
}

// Real check-in types that this iOS/iPadOS server does not implement; named so the rejection says so
// instead of calling them unknown.
const UNSERVED_MESSAGE_TYPES = new Set([
  'SetBootstrapToken',
  'GetBootstrapToken',
  'DeclarativeManagement',
  'GetToken',
  'ReturnToService',
]);

const AUTHENTICATE_OPTIONAL = [
  'OSVersion',
  'BuildVersion',
  'ProductName',
  'SerialNumber',
  'IMEI',
  'MEID',
  'DeviceName',
  'Model',
  'ModelName',
] as const;
const TOKEN_UPDATE_USER_KEYS = ['UserID', 'UserShortName', 'UserLongName'] as const;

const REPORT_STATUSES: readonly ReportStatus[] = ['Idle', 'Acknowledged', 'Error', 'CommandFormatError', 'NotNow'];
const REPORT_COMMON_KEYS = new Set(['UDID', 'Status', 'CommandUUID', 'ErrorChain']);

/**
 * A check-in dict (already parsed from the plist) → a typed message. Keys the device adds that we do not
 * use are ignored; keys we use must be present and of Apple's type.
 */
export function parseCheckIn(dict: Record<string, unknown>): CheckInMessage {
  const messageType = dict.MessageType;
  if (messageType === undefined) throw new ProtocolError('MessageType: missing');
  if (typeof messageType !== 'string') throw new ProtocolError(`MessageType: expected a string, got ${kind(messageType)}`);
  if (UNSERVED_MESSAGE_TYPES.has(messageType)) {
    throw new ProtocolError(`MessageType '${messageType}' is not supported by this server (iOS/iPadOS device enrollment only)`);
  }
  if (messageType === 'UserAuthenticate') {
    // Read as far as the decline needs: which device and which user (DigestResponse is not looked at).
    return { MessageType: 'UserAuthenticate', UDID: requiredString(dict, 'UDID'), UserID: requiredString(dict, 'UserID') };
  }
  if (messageType !== 'Authenticate' && messageType !== 'TokenUpdate' && messageType !== 'CheckOut') {
    throw new ProtocolError(`unknown MessageType '${clip(messageType)}'`);
  }
  if (dict.UDID === undefined && dict.EnrollmentID !== undefined) {
    throw new ProtocolError(`${messageType}: User Enrollment (EnrollmentID without UDID) is not supported by this server`);
  }
  const Topic = requiredString(dict, 'Topic');
  const UDID = requiredString(dict, 'UDID');

  switch (messageType) {
    case 'Authenticate': {
      const msg: Authenticate = { MessageType: 'Authenticate', Topic, UDID };
      for (const key of AUTHENTICATE_OPTIONAL) {
        const v = optionalString(dict, key);
        if (v !== undefined) msg[key] = v;
      }
      return msg;
    }
    case 'TokenUpdate': {
      const Token = requiredData(dict, 'Token');
      const PushMagic = requiredString(dict, 'PushMagic');
      const msg: TokenUpdate = {
        MessageType: 'TokenUpdate',
        Topic,
        UDID,
        Token,
        PushMagic,
        AwaitingConfiguration: optionalBoolean(dict, 'AwaitingConfiguration') ?? false,
      };
      const unlock = optionalData(dict, 'UnlockToken');
      if (unlock !== undefined) msg.UnlockToken = unlock;
      for (const key of TOKEN_UPDATE_USER_KEYS) {
        const v = optionalString(dict, key);
        if (v !== undefined) msg[key] = v;
      }
      return msg;
    }
    case 'CheckOut':
      return { MessageType: 'CheckOut', Topic, UDID };
  }
}

/** A ServerURL report dict → status, the command it answers, and its result keys. */
export function parseReport(dict: Record<string, unknown>): CommandReport {
  const UDID = requiredString(dict, 'UDID');
  const status = dict.Status;
  if (status === undefined) throw new ProtocolError('Status: missing');
  if (typeof status !== 'string') throw new ProtocolError(`Status: expected a string, got ${kind(status)}`);
  if (!(REPORT_STATUSES as readonly string[]).includes(status)) {
    throw new ProtocolError(`Status: unknown value '${clip(status)}', expected one of ${REPORT_STATUSES.join(', ')}`);
  }
  const Status = status as ReportStatus;
  const CommandUUID = Status === 'Idle' ? optionalString(dict, 'CommandUUID') : requiredString(dict, 'CommandUUID');

  const report: CommandReport = { UDID, Status, result: {} };
  if (CommandUUID !== undefined) report.CommandUUID = CommandUUID;
  if (dict.ErrorChain !== undefined) report.ErrorChain = parseErrorChain(dict.ErrorChain);
  for (const [k, v] of Object.entries(dict)) {
    if (!REPORT_COMMON_KEYS.has(k)) report.result[k] = v;
  }
  return report;
}

function parseErrorChain(v: unknown): ErrorChainItem[] {
  if (!Array.isArray(v)) throw new ProtocolError(`ErrorChain: expected an array, got ${kind(v)}`);
  return v.map((item, i) => {
    const path = `ErrorChain[${i}]`;
    if (!isDict(item)) throw new ProtocolError(`${path}: expected a dict, got ${kind(item)}`);
    const code = item.ErrorCode;
    if (typeof code !== 'number' || !Number.isInteger(code)) {
      throw new ProtocolError(`${path}.ErrorCode: expected an integer, got ${kind(code)}`);
    }
    const domain = item.ErrorDomain;
    if (typeof domain !== 'string') throw new ProtocolError(`${path}.ErrorDomain: expected a string, got ${kind(domain)}`);
    const out: ErrorChainItem = { ErrorCode: code, ErrorDomain: domain };
    for (const key of ['LocalizedDescription', 'USEnglishDescription'] as const) {
      const d = item[key];
      if (d === undefined) continue;
      if (typeof d !== 'string') throw new ProtocolError(`${path}.${key}: expected a string, got ${kind(d)}`);
      out[key] = d;
    }
    return out;
  });
}

function requiredString(dict: Record<string, unknown>, key: string): string {
  const v = dict[key];
  if (v === undefined) throw new ProtocolError(`${key}: missing`);
  if (typeof v !== 'string') throw new ProtocolError(`${key}: expected a string, got ${kind(v)}`);
  if (v.length === 0) throw new ProtocolError(`${key}: empty`);
  return v;
}

function optionalString(dict: Record<string, unknown>, key: string): string | undefined {
  const v = dict[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ProtocolError(`${key}: expected a string, got ${kind(v)}`);
  return v;
}

function requiredData(dict: Record<string, unknown>, key: string): Buffer {
  const v = dict[key];
  if (v === undefined) throw new ProtocolError(`${key}: missing`);
  const data = asBuffer(v, key);
  if (data.length === 0) throw new ProtocolError(`${key}: empty <data>`);
  return data;
}

function optionalData(dict: Record<string, unknown>, key: string): Buffer | undefined {
  const v = dict[key];
  return v === undefined ? undefined : asBuffer(v, key);
}

function asBuffer(v: unknown, key: string): Buffer {
  if (!(v instanceof Uint8Array)) throw new ProtocolError(`${key}: expected <data>, got ${kind(v)}`);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function optionalBoolean(dict: Record<string, unknown>, key: string): boolean | undefined {
  const v = dict[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ProtocolError(`${key}: expected a boolean, got ${kind(v)}`);
  return v;
}

function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return '<data>';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a real';
  if (typeof v === 'object') return 'a dict';
  return `a ${typeof v}`;
}

// Device-supplied strings end up in error messages and logs; keep them short.
function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
