// The seed's story as one command (issue 11, point 10): `npm run simulate -- --scenario vpp` against a
// sandbox links the demo token, assigns a scarce app to more devices than it has licenses, shows first come
// first served (licenses go in the order devices sync), makes a chosen device win with Refresh Device and
// another with Install Bundle, and plays the user flow's two refreshes — printing a timeline and the final
// license summary, and exiting non-zero when a step does not happen.
//
// Only the public HTTP API and simulator pieces: the admin API, GET /sandbox, the simulated APNs's control
// API and simulated devices. Devices are asleep (they keep a push, as a phone that is off) until the story
// wakes them, so each step shows on its own; an awake device answers pushes at once.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createApnsControlClient } from '../apns-client.js';
import { CliError, Interrupted, adminToken, discoverSandbox, errorReporter, interruptible, numberOption, serverOption, table } from '../cli-support.js';
import type { SimulatedDevice } from '../device.js';
import { Fleet, pushNetworkFromControlClient, type FleetObserver } from '../fleet.js';
import { SimulatorHttpClient } from '../http.js';
import { AdminApi, StepFailed, Timeline, waitFor } from './story.js';

interface Subscription { id: string; status: string; statusReason: string | null; orgName: string; locationName: string | null; lastSyncAt: string | null }
interface Bundle { id: string; subscriptionId: string; adamId: string; name: string | null; deviceAssignable: boolean }
interface Assignment { targetType: string; targetId: string; status: string; reason: string | null; license: { state: string } | null }
interface LicenseRow { adamId: string; name: string | null; total: number; assigned: number; available: number; reserved: number; waiting: number }

// Syncs a device makes on its own to report a finished install before the step counts as not happening.
const MAX_CHECK_IN_SYNCS = 4;

export const VPP_SCENARIO_HELP = `Usage: npm run simulate -- --scenario vpp [options]

Plays the licensing story against a server running in sandbox mode (npm start -- --sandbox): links the
sandbox's demo VPP token, assigns its scarcest app to more devices than it has licenses (first come
first served), makes a chosen device win with Refresh Device and another with Install Bundle, and plays
the user flow (refresh 1: registered and invited; the user accepts; refresh 2: licensed and installed).
Prints a timeline and the license summary; exits 1 when a step does not happen.

Options:
  --server URL         server base URL (default http://127.0.0.1:8080, or PUBLIC_URL)
  --token T            admin token (default: ADMIN_TOKEN, else DATA_DIR/admin-token)
  --step-timeout S     seconds each step may take (default 30)
  --keep               keep the scenario's devices, user and assignments (default: give them back)
  -h, --help           this text
`;

export async function runVppScenario(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: { scenario: { type: 'string' }, server: { type: 'string' }, token: { type: 'string' }, 'step-timeout': { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(VPP_SCENARIO_HELP);
    return 0;
  }
  const server = serverOption(values.server);
  const token = adminToken(values.token);
  const stepMs = numberOption('--step-timeout', values['step-timeout'], 30) * 1000;
  const http = new SimulatorHttpClient({ maxSockets: 16 });
  const timeline = new Timeline((line) => process.stdout.write(line));
  const run = interruptible();
  let story: VppStory | undefined;
  try {
    const sandbox = await discoverSandbox(http, server, token);
    if (!sandbox.demoSToken) throw new CliError(`GET ${server}/sandbox names no demoSToken: is this a sandbox server?`);
    story = new VppStory({ api: new AdminApi(http, server, token), http, server, token, timeline, stepMs, controlUrl: sandbox.apnsControlUrl, demoSToken: sandbox.demoSToken });
    await run.step(story.play());
    return 0;
  } catch (err) {
    if (err instanceof Interrupted) return 130;
    if (!(err instanceof StepFailed)) throw err;
    process.stdout.write(`\nFAILED: ${err.message}\n`);
    return 1;
  } finally {
    // Also after a failed step: a run that kept its licenses would leave the next one none to show.
    if (story && !values.keep && !run.interrupted()) await story.giveBack();
    await story?.close();
    http.close();
  }
}

class VppStory {
  private readonly runId = `vpp-${randomBytes(3).toString('hex')}`;
  private readonly labels = new Map<SimulatedDevice, string>();
  private readonly asleep = new Set<SimulatedDevice>();
  private fleets: Fleet[] = [];
  private devicesFleet?: Fleet;
  private userFleet?: Fleet;
  private accepted = false;
  private pushedAfterAccept = false;
  private installAnswered = false;
  private subscription?: Subscription;
  private assigned: Array<{ bundleId: string; targetType: 'device' | 'user'; targetId: string }> = [];

  constructor(private readonly o: {
    api: AdminApi; http: SimulatorHttpClient; server: string; token: string; timeline: Timeline; stepMs: number; controlUrl: string; demoSToken: string;
  }) {}

  async play(): Promise<void> {
    const { timeline } = this.o;
    timeline.section('Link the sandbox demo VPP token');
    const bundles = await this.link();
    const { scarce, userApp, free } = await this.chooseApps(bundles);

    timeline.section('Devices and a user');
    const fcfs = await this.enroll(free + 3);
    const userDevice = this.userFleet!.devices[0]!;
    const user = this.userFleet!.users[0]!;

    timeline.section(`First come, first served: ${scarce.name} has ${free} free licenses for ${fcfs.length} devices`);
    for (const d of fcfs) await this.assign(scarce, 'device', d.udid);
    timeline.say(`assigned ${scarce.name} to ${fcfs.map((d) => this.label(d)).join(', ')}; nobody holds a license until their device syncs`);
    const licensed: SimulatedDevice[] = [];
    const waiting: SimulatedDevice[] = [];
    for (const d of fcfs) {
      const a = await this.syncAndSettle(scarce, d, `${this.label(d)} to take a license or wait`);
      if (a.status === 'Failed') throw new StepFailed(`${this.label(d)}: ${scarce.name} Failed (${a.reason})`);
      const winner = a.status !== 'Waiting';
      const licensesLeft = licensed.length < free;
      if (winner !== licensesLeft) {
        throw new StepFailed(`first come first served: ${this.label(d)} synced with ${free - licensed.length} licenses left but is ${a.status} (${a.reason})`);
      }
      (winner ? licensed : waiting).push(d);
      if (!winner) this.sleep(d);
    }
    for (const d of licensed) await this.installed(scarce, 'device', d.udid, d);
    timeline.say(`${licensed.map((d) => this.label(d)).join(', ')} synced first and got the licenses; ${waiting.map((d) => this.label(d)).join(', ')} wait`);

    timeline.section('Refresh Device: a chosen device syncs first and takes the license that comes back');
    const refreshed = waiting.pop()!;
    await this.release(scarce, licensed[0]!);
    await this.o.api.post(`/devices/${refreshed.udid}/refresh`);
    timeline.say(`Refresh Device on ${this.label(refreshed)}: the server pushes it; it wakes and syncs`);
    this.wake(refreshed);
    await this.installed(scarce, 'device', refreshed.udid, refreshed);
    await this.stillWaiting(scarce, waiting);

    timeline.section('Install Bundle: the server takes the license for a chosen device at once');
    const installed = waiting.pop()!;
    await this.release(scarce, licensed[1]!);
    await this.o.api.post(`/devices/${installed.udid}/bundles/${scarce.id}/install`);
    timeline.say(`Install Bundle on ${this.label(installed)} (asleep): the server takes the license now and pushes it`);
    await this.reach(scarce, 'device', installed.udid, 'a license Apple confirmed', (a) => a.license?.state === 'Associated');
    timeline.say(`Apple confirmed the license of ${this.label(installed)} before ${this.label(installed)} has even synced`);
    this.wake(installed);
    await this.installed(scarce, 'device', installed.udid, installed);
    await this.stillWaiting(scarce, waiting);

    timeline.section(`User assignment: ${userApp.name} for ${user.id}, in two refreshes`);
    await this.assign(userApp, 'user', user.id);
    await this.o.api.post(`/devices/${userDevice.udid}/refresh`);
    timeline.say(`refresh 1: Refresh Device on ${this.label(userDevice)}`);
    // The flow may already be past InvitationSent when we look (the invitation answered and accepted within one
    // poll); the next step, the user accepting it, shows the invitation came.
    await this.reach(userApp, 'user', user.id, 'InvitationSent', (a) => ['InvitationSent', 'Associating', 'Installing', 'Installed'].includes(a.status));
    await waitFor('the user accepting the invitation', () => (this.accepted ? true : undefined), this.o.stepMs);
    await waitFor(`refresh 2 (the server pushing ${this.label(userDevice)} after Apple's USER_ASSOCIATED)`, () => (this.pushedAfterAccept ? true : undefined), this.o.stepMs);
    await waitFor(`${this.label(userDevice)} answering InstallApplication`, () => (this.installAnswered ? true : undefined), this.o.stepMs);
    await this.installed(userApp, 'user', user.id, userDevice);

    timeline.section('License summary');
    await this.printSummary([scarce.adamId, userApp.adamId]);
    const errors = this.fleets.flatMap((f) => f.stats().errorSamples);
    if (errors.length) throw new StepFailed(`the simulated devices met errors: ${errors.join('; ')}`);
    timeline.say('every step happened');
  }

  /** Unassigns what the story assigned and deletes its devices and user, so it can be played again. */
  async giveBack(): Promise<void> {
    for (const a of this.assigned) await this.o.api.delete(`/bundles/${a.bundleId}/assignments/${a.targetType}/${encodeURIComponent(a.targetId)}`).catch(() => {});
    for (const d of this.fleets.flatMap((f) => f.devices)) await this.o.api.delete(`/devices/${d.udid}`).catch(() => {});
    for (const u of this.userFleet?.users ?? []) await this.o.api.delete(`/users/${encodeURIComponent(u.id)}`).catch(() => {});
    this.o.timeline.say('gave back the licenses, devices and user this run took (--keep keeps them)');
  }

  async close(): Promise<void> {
    await Promise.all(this.fleets.map((f) => f.close()));
  }

  // ---------------------------------------------------------------------------------------------

  /** Links the demo token, or finds the subscription that already has it; resolves to its bundles. */
  private async link(): Promise<Bundle[]> {
    const { api, timeline } = this.o;
    const created = await api.attempt('POST', '/vpp/subscriptions', { name: 'Sandbox demo', sToken: this.o.demoSToken });
    if (created.status === 201) {
      this.subscription = created.body as Subscription;
      timeline.say(`linked the demo token: subscription ${this.subscription.id} (${this.subscription.orgName}), ${this.subscription.status}`);
    } else {
      // Linked before (an earlier run, the README, the page): the same location is not linked twice.
      const existing = (await api.get<Subscription[]>('/vpp/subscriptions')).find((s) => s.orgName === 'Sandbox School' && s.status === 'Active');
      if (!existing) throw new StepFailed(`linking the demo token: ${created.status} ${JSON.stringify(created.body)}`);
      this.subscription = existing;
      timeline.say(`the demo token is already linked: subscription ${existing.id}, ${existing.status}`);
    }
    const sub = await waitFor('the subscription to be Active with its assets synced', async () => {
      const s = await api.get<Subscription>(`/vpp/subscriptions/${this.subscription!.id}`);
      return s.status === 'Active' && s.lastSyncAt ? s : undefined;
    }, this.o.stepMs);
    const bundles = (await api.get<Bundle[]>('/bundles')).filter((b) => b.subscriptionId === sub.id);
    timeline.say(`${bundles.length} bundles, one per purchased app: ${bundles.map((b) => b.name).join(', ')}`);
    return bundles;
  }

  /** The device-assignable app with the fewest free licenses (at least 2), and an app for the user. */
  private async chooseApps(bundles: Bundle[]): Promise<{ scarce: Bundle; userApp: Bundle; free: number }> {
    const rows = await this.o.api.get<LicenseRow[]>('/vpp/licenses');
    const freeOf = (b: Bundle) => rows.find((r) => r.adamId === b.adamId)?.available ?? 0;
    const scarce = bundles.filter((b) => b.deviceAssignable && freeOf(b) >= 2 && freeOf(b) <= 10).sort((a, b) => freeOf(a) - freeOf(b))[0];
    if (!scarce) throw new StepFailed('no device-assignable app with 2 to 10 free licenses to show first come first served (earlier runs kept theirs? unassign them)');
    const userApp = bundles.filter((b) => b !== scarce && freeOf(b) >= 1).sort((a, b) => Number(a.deviceAssignable) - Number(b.deviceAssignable))[0];
    if (!userApp) throw new StepFailed('no other app with a free license for the user assignment');
    this.o.timeline.say(`scarce app: ${scarce.name} (${freeOf(scarce)} free); the user's app: ${userApp.name}${userApp.deviceAssignable ? '' : ' (user-only)'}`);
    return { scarce, userApp, free: freeOf(scarce) };
  }

  private async enroll(devices: number): Promise<SimulatedDevice[]> {
    const { timeline } = this.o;
    const common = {
      serverUrl: this.o.server, adminToken: this.o.token, http: this.o.http, os: '17.5', installDelayMs: 50, retryDelayMs: 300,
      push: pushNetworkFromControlClient(createApnsControlClient(this.o.controlUrl)),
      observer: this.observer(), onError: errorReporter((l) => process.stdout.write(l)), onNotice: (m: string) => timeline.say(m),
    };
    this.devicesFleet = new Fleet({ ...common, devices, users: 0, runId: `${this.runId}-d` });
    this.userFleet = new Fleet({ ...common, devices: 1, users: 1, runId: this.runId });
    this.fleets = [this.devicesFleet, this.userFleet];
    this.devicesFleet.devices.forEach((d, i) => { this.labels.set(d, `d${i + 1}`); this.sleep(d); });
    this.labels.set(this.userFleet.devices[0]!, `${this.userFleet.users[0]!.id}'s iPhone`);
    for (const f of this.fleets) {
      await f.start();
      await f.createUsers();
      await f.enrollAll();
      if (f.stats().enrollFailures > 0) throw new StepFailed(`enrolling the simulated devices: ${f.stats().errorSamples.join('; ')}`);
    }
    for (const [d, l] of this.labels) timeline.say(`${l.padEnd(4)} UDID ${d.udid}  serial ${d.serialNumber}${d.userId ? `  user ${d.userId}` : ''}`);
    return this.devicesFleet.devices;
  }

  private observer(): FleetObserver {
    const t = this.o.timeline;
    return {
      pushed: (d) => {
        if (this.accepted && !this.pushedAfterAccept && d === this.userFleet?.devices[0]) {
          this.pushedAfterAccept = true;
          t.say(`refresh 2: Apple told the server the user accepted (USER_ASSOCIATED); the server pushed ${this.label(d)}`);
        } else t.say(`${this.label(d)} was pushed${this.asleep.has(d) ? ' (asleep: it keeps the push)' : ''}`);
      },
      answered: (d, requestType, status) => {
        if (!requestType) return;
        t.say(`${this.label(d)} answered ${requestType}: ${status}`);
        if (requestType === 'InstallApplication' && d === this.userFleet?.devices[0] && status === 'Acknowledged') this.installAnswered = true;
      },
      invitation: (d, outcome) => {
        if (outcome === 'accepted') {
          this.accepted = true;
          t.say(`the user accepted the invitation on ${this.label(d)} with their Apple Account (${d.appleAccount})`);
        } else t.say(`${this.label(d)} could not accept the invitation: ${outcome instanceof Error ? outcome.message : outcome}`);
      },
    };
  }

  private async assign(bundle: Bundle, targetType: 'device' | 'user', targetId: string): Promise<void> {
    await this.o.api.post(`/bundles/${bundle.id}/assignments`, { targetType, targetId });
    this.assigned.push({ bundleId: bundle.id, targetType, targetId });
  }

  /** The device wakes and syncs on its own; resolves once the server has decided its license. */
  private async syncAndSettle(bundle: Bundle, d: SimulatedDevice, step: string): Promise<Assignment> {
    const before = await this.assignment(bundle, 'device', d.udid);
    this.wake(d);
    this.fleetOf(d).requestSync(d);
    this.o.timeline.say(`${this.label(d)} syncs`);
    const a = await this.reach(bundle, 'device', d.udid, step,
      (x) => ['Installing', 'Installed', 'Failed'].includes(x.status) || (x.status === 'Waiting' && x.reason !== before?.reason));
    return a;
  }

  /** Devices that wake now and sync find no license: the one that came back went to the chosen device. */
  private async stillWaiting(bundle: Bundle, devices: SimulatedDevice[]): Promise<void> {
    for (const d of devices) {
      const syncs = d.syncCount;
      this.wake(d);
      this.fleetOf(d).requestSync(d);
      await waitFor(`${this.label(d)} to sync`, () => (d.syncCount > syncs ? true : undefined), this.o.stepMs);
      await this.fleetOf(d).idle();
      await this.reach(bundle, 'device', d.udid, 'Waiting');
      this.sleep(d);
    }
    if (devices.length) this.o.timeline.say(`${devices.map((d) => this.label(d)).join(', ')} synced later and still wait`);
  }

  /** Unassigns a licensed device and waits until Apple has the license back (the summary shows it free). */
  private async release(bundle: Bundle, d: SimulatedDevice): Promise<void> {
    const freeBefore = await this.free(bundle);
    await this.o.api.delete(`/bundles/${bundle.id}/assignments/device/${d.udid}`);
    this.assigned = this.assigned.filter((a) => !(a.bundleId === bundle.id && a.targetId === d.udid));
    this.o.timeline.say(`unassigned ${bundle.name} from ${this.label(d)}: its license goes back to Apple`);
    await waitFor(`the license of ${this.label(d)} to come back`, async () => ((await this.free(bundle)) > freeBefore ? true : undefined), this.o.stepMs);
    this.o.timeline.say(`Apple confirmed: a license of ${bundle.name} is free; the server pushes the devices that wait for one`);
  }

  /**
   * The device finishes installing; the server hears of it from ManagedApplicationList, which it queues
   * without a push (so checking never wakes a device in a loop): it rides along with the device's next
   * syncs, which the device makes here on its own.
   */
  private async installed(bundle: Bundle, targetType: 'device' | 'user', targetId: string, d: SimulatedDevice): Promise<void> {
    const adamId = Number(bundle.adamId);
    await waitFor(`${this.label(d)} to finish installing ${bundle.name}`,
      () => (d.appStates().some((a) => a.iTunesStoreID === adamId && a.managed && !a.installing) ? true : undefined), this.o.stepMs);
    this.o.timeline.say(`${this.label(d)} has installed ${bundle.name}; it tells the server when it next syncs`);
    const fleet = this.fleetOf(d);
    for (let sync = 0; sync < MAX_CHECK_IN_SYNCS; sync++) {
      if ((await this.assignment(bundle, targetType, targetId))?.status === 'Installed') break;
      fleet.requestSync(d);
      await fleet.idle();
    }
    await this.reach(bundle, targetType, targetId, 'Installed');
  }

  private async reach(bundle: Bundle, targetType: 'device' | 'user', targetId: string, what: string, ok: (a: Assignment) => boolean = (a) => a.status === what): Promise<Assignment> {
    let last: Assignment | undefined;
    const who = targetType === 'user' ? `user ${targetId}` : this.labelOf(targetId);
    const a = await waitFor(`${who}: ${what} for ${bundle.name}`, async () => {
      last = await this.assignment(bundle, targetType, targetId);
      return last && ok(last) ? last : undefined;
    }, this.o.stepMs, () => (last ? `${last.status} (${last.reason ?? ''})` : 'not assigned'));
    this.o.timeline.say(`${who}: ${bundle.name} ${a.status}${a.reason ? ` — ${a.reason}` : ''}`);
    return a;
  }

  private async assignment(bundle: Bundle, targetType: string, targetId: string): Promise<Assignment | undefined> {
    return (await this.o.api.get<Assignment[]>(`/bundles/${bundle.id}/assignments`)).find((a) => a.targetType === targetType && a.targetId === targetId);
  }

  private async free(bundle: Bundle): Promise<number> {
    return (await this.o.api.get<LicenseRow[]>('/vpp/licenses')).find((r) => r.adamId === bundle.adamId)?.available ?? 0;
  }

  private async printSummary(highlight: string[]): Promise<void> {
    const rows = await this.o.api.get<LicenseRow[]>('/vpp/licenses');
    const lines = [['app', 'total', 'assigned', 'available', 'reserved', 'waiting'],
      ...rows.map((r) => [`${highlight.includes(r.adamId) ? '* ' : '  '}${r.name ?? r.adamId}`, ...[r.total, r.assigned, r.available, r.reserved, r.waiting].map(String)])];
    process.stdout.write(`${table(lines)}\n(* the apps of this story)\n`);
  }

  private sleep(d: SimulatedDevice): void {
    this.asleep.add(d);
    this.fleetOf(d).sleep(d);
  }

  private wake(d: SimulatedDevice): void {
    this.asleep.delete(d);
    this.fleetOf(d).wake(d);
  }

  private fleetOf(d: SimulatedDevice): Fleet {
    return this.fleets.find((f) => f.devices.includes(d))!;
  }

  private label(d: SimulatedDevice): string {
    return this.labels.get(d) ?? d.udid;
  }

  private labelOf(udid: string): string {
    for (const [d, l] of this.labels) if (d.udid === udid) return l;
    return udid;
  }
}
