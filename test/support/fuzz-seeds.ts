// The messages device fuzzing starts from: real device captures (test/fixtures/device-captures, MIT) and
// what the simulator sends (its check-ins, recorded on the wire, and its answers to commands), all
// rewritten to come from one enrolled test device so that mutations get past the device lookup.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deviceInformation, installApplication, installedApplicationList, managedApplicationList, profileList, removeApplication, commandEnvelope } from '../../mdm/commands.js';
import { buildPlist, parsePlistDict } from '../../mdm/plist.js';
import { SimulatedDevice } from '../../simulator/device.js';
import { SimulatorHttpClient, type HttpRequestOptions } from '../../simulator/http.js';
import type { TestDevice } from './device-client.js';
import type { Endpoint, Seed } from './plist-mutations.js';
import type { TestServer } from './server.js';

const CAPTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/device-captures');
const PAGES = 361309726;

/** Every device request body the simulator sends, as it went on the wire. */
class RecordingHttp extends SimulatorHttpClient {
  readonly sent: Array<{ url: string; body: Buffer }> = [];
  override async request(url: string, opts: HttpRequestOptions = {}) {
    if (opts.method === 'PUT' && opts.body !== undefined) this.sent.push({ url, body: Buffer.from(opts.body) });
    return super.request(url, opts);
  }
}

/** The seeds, each made to come from `device` and to answer `commandUUID` (a command sent to it). */
export async function deviceSeeds(server: TestServer, device: TestDevice, commandUUID: string): Promise<Seed[]> {
  const raw: Array<{ endpoint: Endpoint; name: string; text: string }> = [];

  for (const file of fs.readdirSync(CAPTURES).filter((f) => f.endsWith('.plist')).sort()) {
    const text = fs.readFileSync(path.join(CAPTURES, file), 'utf8');
    raw.push({ endpoint: /^(Authenticate|TokenUpdate|CheckOut)\./.test(file) ? 'checkin' : 'connect', name: `capture ${file}`, text });
  }

  const http = new RecordingHttp({ maxSockets: 2 });
  const apns = server.sandbox!.apns;
  const sim = new SimulatedDevice({ http, push: apns, installDelayMs: 0 }, { osVersion: '17.5', productName: 'iPhone14,2' });
  const enrollment = await server.api('POST', '/api/v1/enrollments', {});
  if (enrollment.status !== 201) throw new Error(`enrollment for the seed device: ${enrollment.status}`);
  await sim.enroll(enrollment.body.url);
  for (const s of http.sent) {
    const dict = parsePlistDict(s.body);
    raw.push({ endpoint: s.url.endsWith('/checkin') ? 'checkin' : 'connect', name: `simulator ${String(dict.MessageType ?? dict.Status)}`, text: s.body.toString('utf8') });
  }
  const commands = [
    deviceInformation(['UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ModelName', 'ProductName', 'SerialNumber', 'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'IMEI', 'WiFiMAC', 'IsSupervised', 'TimeZone', 'iTunesStoreAccountHash']),
    installedApplicationList(), managedApplicationList(), profileList(), installApplication({ iTunesStoreID: PAGES }),
    removeApplication('com.example.not-installed'), { RequestType: 'NoSuchCommand' },
  ];
  for (const command of commands) {
    const report = await sim.answerCommand(commandEnvelope('SEED-COMMAND', command as Parameters<typeof commandEnvelope>[1]));
    raw.push({ endpoint: 'connect', name: `simulator ${command.RequestType} → ${String(report.Status)}`, text: buildPlist(report) });
  }
  raw.push({ endpoint: 'connect', name: 'simulator Idle', text: buildPlist({ UDID: sim.udid, Status: 'Idle' }) });
  raw.push({ endpoint: 'connect', name: 'simulator NotNow', text: buildPlist({ UDID: sim.udid, Status: 'NotNow', CommandUUID: 'SEED-COMMAND' }) });
  raw.push({ endpoint: 'checkin', name: 'simulator CheckOut', text: buildPlist({ MessageType: 'CheckOut', Topic: sim.topic!, UDID: sim.udid }) });

  return raw.map((r) => {
    const original = parsePlistDict(r.text);
    const udids = [original.UDID, (original.QueryResponses as Record<string, unknown> | undefined)?.UDID].filter((u): u is string => typeof u === 'string');
    let text = r.text;
    for (const u of udids) text = text.split(u).join(device.udid);
    if (typeof original.Topic === 'string') text = text.split(original.Topic).join(device.enrolled.topic);
    if (typeof original.CommandUUID === 'string') text = text.split(original.CommandUUID).join(commandUUID);
    return { ...r, text, dict: parsePlistDict(text) };
  });
}
