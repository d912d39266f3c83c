import { useState } from 'preact/hooks';
import type { Api, Bundle, Device, Snapshot } from './api.js';
import { enc } from './api.js';
import type { RunTask } from './app.js';
import { Status, When, epoch } from './format.js';
import { deviceLabel, userLabel } from './names.js';
import { DataTable, type Column } from './table.js';

interface DeviceApp { bundle: string; status: string; reason: string | null }

const pushState = (d: Device) => (!d.enrolled ? 'not enrolled' : d.tokenDead ? 'push token dead' : d.pushable ? 'reachable' : 'no push token yet');

export function DeviceSection({ snapshot, api, run }: { snapshot: Snapshot; api: Api; run: RunTask }) {
  const now = snapshot.loadedAt;
  const bundles = new Map(snapshot.bundles.map((b) => [b.id, b]));
  const users = new Map(snapshot.users.map((u) => [u.id, u]));
  const apps = new Map<string, DeviceApp[]>();
  const installable = new Map<string, Bundle[]>();
  for (const a of snapshot.assignments) {
    const bundle = bundles.get(a.bundleId);
    if (!bundle) continue;
    for (const d of a.devices) apps.set(d.udid, [...(apps.get(d.udid) ?? []), { bundle: bundle.name, status: d.status, reason: d.reason }]);
    // Install Bundle works on device assignments only (SPEC: the quick task).
    if (a.targetType === 'device') installable.set(a.targetId, [...(installable.get(a.targetId) ?? []), bundle]);
  }
  const appsOf = (d: Device) => (apps.get(d.udid) ?? []).sort((x, y) => x.bundle.localeCompare(y.bundle));
  const userOf = (d: Device) => (d.userId ? users.get(d.userId) : undefined);

  const refresh = (d: Device) => run(`Refresh Device ${deviceLabel(d)}`, async () => {
    await api.post(`/api/v1/devices/${enc(d.udid)}/refresh`);
    return 'push sent; the device syncs when it answers';
  });

  const columns: Array<Column<Device>> = [
    {
      key: 'device', label: 'Device', value: (d) => `${deviceLabel(d)} ${d.productName ?? ''} ${d.serialNumber ?? ''} ${d.udid}`,
      render: (d) => <>{deviceLabel(d)}{d.deviceName ? <span class="muted small">{d.productName ?? ''} · {d.serialNumber ?? d.udid}</span> : null}</>,
    },
    {
      key: 'user', label: 'User', value: (d) => { const u = userOf(d); return u ? `${userLabel(u)} ${u.id}` : d.userId; },
      render: (d) => { const u = userOf(d); return u ? <>{userLabel(u)}<span class="muted small">{u.id}</span></> : <span class="muted">{d.userId ?? 'none'}</span>; },
    },
    { key: 'os', label: 'OS', value: (d) => d.osVersion, render: (d) => (d.osVersion ? `iOS ${d.osVersion}` : <span class="muted">unknown</span>) },
    { key: 'seen', label: 'Last sync', value: (d) => epoch(d.lastSeenAt), render: (d) => <When iso={d.lastSeenAt} now={now} /> },
    { key: 'push', label: 'Push', value: pushState, render: pushState },
    {
      key: 'apps', label: 'Apps', value: (d) => appsOf(d).map((a) => `${a.bundle} ${a.status}`).join(' '),
      render: (d) => {
        const list = appsOf(d);
        if (list.length === 0) return <span class="muted">none assigned</span>;
        return <ul class="plain">{list.map((a) => <li key={a.bundle}>{a.bundle}: <Status status={a.status} reason={a.status === 'Installed' ? null : a.reason} /></li>)}</ul>;
      },
    },
    {
      key: 'tasks', label: 'Quick tasks',
      render: (d) => (
        <div class="tasks">
          <button type="button" aria-label={`Refresh Device ${deviceLabel(d)}`} disabled={!d.pushable} onClick={() => refresh(d)}>Refresh Device</button>
          <InstallBundle device={d} bundles={installable.get(d.udid) ?? []} api={api} run={run} />
        </div>
      ),
    },
  ];

  return (
    <section id="devices" aria-labelledby="devices-title">
      <h2 id="devices-title">Devices</h2>
      <DataTable caption="Enrolled devices with their apps" noun="devices" rows={snapshot.devices} columns={columns} rowKey={(d) => d.udid}
        initialSort={{ key: 'device' }} empty="No device has enrolled yet (try npm run simulate in sandbox mode)." />
    </section>
  );
}

function InstallBundle({ device, bundles, api, run }: { device: Device; bundles: Bundle[]; api: Api; run: RunTask }) {
  const [chosen, setChosen] = useState('');
  if (bundles.length === 0) return null;
  const id = `install-${device.udid}`;
  const bundleId = bundles.some((b) => b.id === chosen) ? chosen : bundles[0]!.id;
  return (
    <form class="install" onSubmit={async (e) => {
      e.preventDefault();
      const b = bundles.find((x) => x.id === bundleId)!;
      await run(`Install Bundle ${b.name} on ${deviceLabel(device)}`, async () => {
        const res = await api.post<{ status: string }>(`/api/v1/devices/${enc(device.udid)}/bundles/${enc(b.id)}/install`);
        return `started (${res.body.status})`;
      });
    }}>
      <label for={id} class="visually-hidden">Bundle to install on {deviceLabel(device)}</label>
      <select id={id} value={bundleId} onChange={(e) => setChosen(e.currentTarget.value)}>
        {bundles.map((b) => <option key={b.id} value={b.id}>{b.name}</option>)}
      </select>
      <button type="submit" aria-label={`Install Bundle on ${deviceLabel(device)}`}>Install Bundle</button>
    </form>
  );
}
