import { createApnsSender, type ApnsSenderOptions, type PushSender } from '../../mdm/apns.js';
import { IdentityError, parsePushCertificate, type CertifiedKey } from '../../mdm/identity.js';
import { conflict, invalid } from '../errors.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets.js';
import type { DeviceStore, SettingsStore } from '../storage/ports.js';
import type { SealedKeyPair } from '../devices/server-ca.js';
import { daysUntil, EXPIRY_WARNING_DAYS } from '../expiry.js';

// The APNs push certificate's life: loaded from the database at start, swapped when the admin uploads one,
// and reloaded when another server process stored one. Each process holds its own APNs session (sender).

export interface PushCertificateInfo { topic: string; notAfter: string; notBefore: string }
/** What an upload did: with the number of enrolled devices left on another topic, when it changed the topic. */
export type StoredPushCertificate = PushCertificateInfo & { strandedDevices?: number };
type LoadedCertificate = PushCertificateInfo & CertifiedKey;
export type PushCertificateInput = Parameters<typeof parsePushCertificate>[0];

const SETTING = 'push_certificate';

export interface PushCertificatesDeps {
  settings: SettingsStore; secrets: SecretBox; log: Logger;
  devices: Pick<DeviceStore, 'countEnrolledOutsideTopic'>;
  apns: { url: string; caPem?: string; tunnel?: ApnsSenderOptions['tunnel'] };
  /** Told of every certificate this process starts using (the sandbox's APNs trusts it). */
  onInUse?: (certPem: string) => void;
  /** Called after the certificate changed, so waiting pushes go out with it. */
  onChange?: () => void;
}

export class PushCertificates {
  private certificate: LoadedCertificate | undefined;
  private currentSender: PushSender | undefined;
  private stamp: Date | undefined;
  private watcher: NodeJS.Timeout | undefined;

  constructor(private readonly deps: PushCertificatesDeps) {}

  /** The certificate's topic and validity, or undefined while none is configured. */
  info(): PushCertificateInfo | undefined {
    const c = this.certificate;
    return c && { topic: c.topic, notAfter: c.notAfter, notBefore: c.notBefore };
  }
  topic(): string | undefined { return this.certificate?.topic; }
  /** The APNs sender for the current certificate; undefined while none is configured (pushes wait in the queue). */
  sender(): PushSender | undefined { return this.currentSender; }

  /** At start: the stored certificate, or — when none is and `ifNone` is given — the one it makes. */
  async load(ifNone?: () => Promise<PushCertificateInput>): Promise<void> {
    const stored = await this.read();
    if (!stored && ifNone) await this.save(await ifNone());
    else await this.use(stored);
    this.stamp = await this.deps.settings.updatedAt(SETTING);
    const days = this.certificate && daysUntil(new Date(this.certificate.notAfter));
    if (days !== undefined && days < EXPIRY_WARNING_DAYS) this.deps.log.warn({ topic: this.certificate!.topic, daysUntilExpiry: days }, 'the push certificate expires soon: renew it at https://identity.apple.com');
  }

  /**
   * The admin's upload: checked, stored (key sealed), and used at once. APNs refuses a certificate outside its
   * validity, so none is stored; and devices enrolled under another topic cannot be pushed with this one (they
   * must enroll again), so a topic change needs `confirmTopicChange` and says how many it strands.
   */
  async store(input: PushCertificateInput, opts: { confirmTopicChange?: boolean } = {}): Promise<StoredPushCertificate> {
    const parsed = parse(input);
    const now = new Date();
    if (parsed.notAfter <= now) throw invalid(`the push certificate expired at ${parsed.notAfter.toISOString()}: renew it at https://identity.apple.com`, 'invalid_certificate');
    if (parsed.notBefore > now) throw invalid(`the push certificate is not valid before ${parsed.notBefore.toISOString()}`, 'invalid_certificate');
    const stranded = await this.deps.devices.countEnrolledOutsideTopic(parsed.topic);
    const topicChanges = this.certificate !== undefined && this.certificate.topic !== parsed.topic;
    if (stranded > 0 && !opts.confirmTopicChange) {
      throw conflict(`the certificate's topic ${parsed.topic} differs from the one of ${stranded} enrolled device(s); they would no longer receive pushes `
        + 'until they enroll again. A renewed certificate keeps its topic (renew it at https://identity.apple.com, do not create a new one); '
        + 'to change the topic anyway, send confirmTopicChange: true', 'topic_change');
    }
    const info = await this.save(parsed);
    if (topicChanges || stranded > 0) this.deps.log.warn({ topic: parsed.topic, strandedDevices: stranded }, 'push certificate topic changed');
    this.deps.onChange?.();
    return topicChanges || stranded > 0 ? { ...info, strandedDevices: stranded } : info;
  }

  private async save(input: PushCertificateInput | ReturnType<typeof parse>): Promise<PushCertificateInfo> {
    const parsed = 'certPem' in input ? input : parse(input);
    const info: PushCertificateInfo = { topic: parsed.topic, notAfter: parsed.notAfter.toISOString(), notBefore: parsed.notBefore.toISOString() };
    await this.deps.settings.put(SETTING, { ...info, certPem: parsed.certPem, sealedKey: this.deps.secrets.seal(parsed.keyPem) });
    await this.use({ ...info, certPem: parsed.certPem, keyPem: parsed.keyPem });
    return info;
  }

  /**
   * Notice a certificate another process stored. Agenda jobs run on one process at a time, so this is a
   * per-process timer, comparing only the setting's timestamp.
   */
  watch(everyMs: number): void {
    this.watcher = setInterval(() => {
      void (async () => {
        const stamp = await this.deps.settings.updatedAt(SETTING);
        if (stamp?.getTime() === this.stamp?.getTime()) return;
        this.stamp = stamp;
        await this.use(await this.read());
        this.deps.onChange?.();
      })().catch((e) => this.deps.log.error({ error: (e as Error).message }, 'push certificate reload failed'));
    }, everyMs);
    this.watcher.unref();
  }

  async close(): Promise<void> {
    if (this.watcher) clearInterval(this.watcher);
    await this.currentSender?.close();
  }

  private async read(): Promise<LoadedCertificate | undefined> {
    const s = await this.deps.settings.get<PushCertificateInfo & SealedKeyPair>(SETTING);
    if (!s) return undefined;
    return { topic: s.topic, notAfter: s.notAfter, notBefore: s.notBefore, certPem: s.certPem, keyPem: this.deps.secrets.open(s.sealedKey) };
  }

  private async use(cert: LoadedCertificate | undefined): Promise<void> {
    const current = this.certificate;
    if (cert && current && cert.certPem === current.certPem && cert.keyPem === current.keyPem) return;
    const old = this.currentSender;
    this.certificate = cert;
    this.currentSender = cert
      ? createApnsSender({ url: this.deps.apns.url, certPem: cert.certPem, keyPem: cert.keyPem, topic: cert.topic, caPem: this.deps.apns.caPem, tunnel: this.deps.apns.tunnel })
      : undefined;
    if (cert) this.deps.onInUse?.(cert.certPem);
    await old?.close().catch(() => {});
  }
}

function parse(input: PushCertificateInput) {
  try {
    return parsePushCertificate(input);
  } catch (err) {
    if (err instanceof IdentityError) throw invalid(err.message, 'invalid_certificate');
    throw err;
  }
}
