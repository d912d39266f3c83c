import { useState } from 'preact/hooks';
import type { Api, Assignment, Bundle, Snapshot, TargetType } from './api.js';
import { enc } from './api.js';
import type { RunTask } from './app.js';
import { Status } from './format.js';
import { deviceLabel, targetLabel, userLabel } from './names.js';
import { DataTable, type Column } from './table.js';

export function BundleSection({ snapshot, api, run }: { snapshot: Snapshot; api: Api; run: RunTask }) {
  const bundleName = new Map(snapshot.bundles.map((b) => [b.id, b.name]));
  const subscriptionName = new Map(snapshot.subscriptions.map((s) => [s.id, s.name]));
  const assignmentsOf = (b: Bundle) => snapshot.assignments.filter((a) => a.bundleId === b.id);
  const count = (b: Bundle, status: string) => assignmentsOf(b).filter((a) => a.status === status).length;

  const bundleColumns: Array<Column<Bundle>> = [
    { key: 'name', label: 'Bundle', value: (b) => b.name, render: (b) => <>{b.name}<span class="muted small">{b.bundleId ?? `adamId ${b.adamId}`}</span></> },
    { key: 'subscription', label: 'Subscription', value: (b) => subscriptionName.get(b.subscriptionId) ?? b.subscriptionId, render: (b) => subscriptionName.get(b.subscriptionId) ?? b.subscriptionId },
    { key: 'targets', label: 'Assignable to', value: (b) => (b.deviceAssignable ? 'devices and users' : 'users only'), render: (b) => (b.deviceAssignable ? 'devices and users' : 'users only') },
    { key: 'assignments', label: 'Assignments', numeric: true, value: (b) => assignmentsOf(b).length, render: (b) => assignmentsOf(b).length },
    { key: 'installed', label: 'Installed', numeric: true, value: (b) => count(b, 'Installed'), render: (b) => count(b, 'Installed') },
    { key: 'waiting', label: 'Waiting', numeric: true, value: (b) => count(b, 'Waiting'), render: (b) => count(b, 'Waiting') },
  ];

  const unassign = (a: Assignment) => run(`Unassign ${bundleName.get(a.bundleId)}`, async () => {
    await api.delete(`/api/v1/bundles/${enc(a.bundleId)}/assignments/${a.targetType}/${enc(a.targetId)}`);
    return `removed from ${targetLabel(snapshot, a.targetType, a.targetId)}; its license goes back to the pool`;
  });
  const assignmentColumns: Array<Column<Assignment>> = [
    { key: 'bundle', label: 'Bundle', value: (a) => bundleName.get(a.bundleId) ?? a.bundleId, render: (a) => bundleName.get(a.bundleId) ?? a.bundleId },
    {
      key: 'target', label: 'Target', value: (a) => `${targetLabel(snapshot, a.targetType, a.targetId)} ${a.targetType}`,
      render: (a) => <>{targetLabel(snapshot, a.targetType, a.targetId)}<span class="muted small">{a.targetType}</span></>,
    },
    { key: 'status', label: 'Status', value: (a) => `${a.status} ${a.reason ?? ''}`, render: (a) => <Status status={a.status} reason={a.reason} /> },
    {
      key: 'license', label: 'License', value: (a) => a.license?.state ?? 'none',
      render: (a) => (a.license ? <>{a.license.state}{a.license.failure ? <span class="reason warn">{a.license.failure}</span> : null}</> : <span class="muted">none</span>),
    },
    {
      key: 'devices', label: 'Devices', value: (a) => a.devices.map((d) => `${targetLabel(snapshot, 'device', d.udid)} ${d.status}`).join(' '),
      render: (a) => (a.devices.length === 0 ? <span class="muted">no enrolled device</span> : (
        <ul class="plain">{a.devices.map((d) => <li key={d.udid}>{targetLabel(snapshot, 'device', d.udid)}: <Status status={d.status} /></li>)}</ul>
      )),
    },
    {
      key: 'remove', label: 'Remove',
      render: (a) => <button type="button" class="quiet" aria-label={`Unassign ${bundleName.get(a.bundleId)} from ${targetLabel(snapshot, a.targetType, a.targetId)}`} onClick={() => unassign(a)}>Unassign</button>,
    },
  ];

  return (
    <section id="bundles" aria-labelledby="bundles-title">
      <h2 id="bundles-title">Bundles and assignments</h2>
      <DataTable caption="App bundles" noun="bundles" rows={snapshot.bundles} columns={bundleColumns} rowKey={(b) => b.id}
        initialSort={{ key: 'name' }} empty="No bundles: a subscription's asset sync creates one per purchased app." />
      <AssignForm snapshot={snapshot} api={api} run={run} />
      <h3>Assignments</h3>
      <DataTable caption="Assignments and each target's status" noun="assignments" rows={snapshot.assignments} columns={assignmentColumns}
        rowKey={(a) => `${a.bundleId}/${a.targetType}/${a.targetId}`} initialSort={{ key: 'bundle' }} empty="Nothing is assigned yet." />
    </section>
  );
}

function AssignForm({ snapshot, api, run }: { snapshot: Snapshot; api: Api; run: RunTask }) {
  const [bundleId, setBundleId] = useState('');
  const [targetType, setTargetType] = useState<TargetType>('device');
  const [targetId, setTargetId] = useState('');
  const bundle = snapshot.bundles.find((b) => b.id === bundleId);
  const targets = targetType === 'device'
    ? snapshot.devices.filter((d) => d.enrolled).map((d) => ({ id: d.udid, label: d.deviceName ? `${deviceLabel(d)} (${d.serialNumber ?? d.udid})` : deviceLabel(d) }))
    : snapshot.users.map((u) => ({ id: u.id, label: `${userLabel(u)} (${u.id})` }));
  const sorted = [...snapshot.bundles].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <form class="inline-form" aria-labelledby="assign-title" onSubmit={async (e) => {
      e.preventDefault();
      if (!bundle || !targetId) return;
      await run(`Assign ${bundle.name}`, async () => {
        const res = await api.post<Assignment>(`/api/v1/bundles/${enc(bundle.id)}/assignments`, { targetType, targetId });
        return `assigned to ${targetLabel(snapshot, targetType, targetId)}: ${res.body.status}${res.body.reason ? ` (${res.body.reason})` : ''}`;
      });
    }}>
      <h3 id="assign-title">Assign a bundle</h3>
      <label for="assign-bundle">Bundle</label>
      <select id="assign-bundle" required value={bundleId} onChange={(e) => setBundleId(e.currentTarget.value)}>
        <option value="">Choose a bundle…</option>
        {sorted.map((b) => <option key={b.id} value={b.id}>{b.name}{b.deviceAssignable ? '' : ' (users only)'}</option>)}
      </select>
      <label for="assign-target-type">Assign to</label>
      <select id="assign-target-type" value={targetType} onChange={(e) => { setTargetType(e.currentTarget.value as TargetType); setTargetId(''); }}>
        <option value="device">a device</option>
        <option value="user">a user</option>
      </select>
      <label for="assign-target">{targetType === 'device' ? 'Device' : 'User'}</label>
      <select id="assign-target" required value={targetId} onChange={(e) => setTargetId(e.currentTarget.value)}>
        <option value="">Choose a {targetType}…</option>
        {targets.map((t) => <option key={t.id} value={t.id}>{t.label}</option>)}
      </select>
      <button type="submit">Assign</button>
    </form>
  );
}
