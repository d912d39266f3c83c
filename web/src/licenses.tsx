import type { Api, LicenseRow, Snapshot } from './api.js';
import { enc } from './api.js';
import type { RunTask } from './app.js';
import { AppIcon, ConsumptionBar } from './format.js';
import { DataTable, type Column } from './table.js';

const appName = (r: LicenseRow) => r.name ?? `App ${r.adamId}`;

export function LicenseSection({ snapshot, api, run }: { snapshot: Snapshot; api: Api; run: RunTask }) {
  const rows = snapshot.licenses;
  const sum = (k: 'total' | 'assigned' | 'available' | 'reserved' | 'waiting') => rows.reduce((n, r) => n + r[k], 0);
  const bundled = new Set(snapshot.bundles.map((b) => b.adamId));

  const createBundle = (r: LicenseRow) => run(`Create Bundle for ${appName(r)}`, async () => {
    const res = await api.post<{ name: string }>(`/api/v1/vpp/apps/${enc(r.adamId)}/bundle`, {});
    return res.status === 201 ? `bundle ${res.body.name} created` : `bundle ${res.body.name} already exists`;
  });

  const columns: Array<Column<LicenseRow>> = [
    {
      key: 'app', label: 'App', value: (r) => `${appName(r)} ${r.adamId} ${r.bundleId ?? ''}`,
      render: (r) => (
        <span class="app">
          <AppIcon name={appName(r)} url={r.iconUrl} />
          <span><span class="app-name">{appName(r)}</span><span class="muted small">{r.bundleId ?? r.adamId} · {r.pricingParam}</span></span>
        </span>
      ),
    },
    { key: 'total', label: 'Total', numeric: true, value: (r) => r.total, render: (r) => r.total },
    { key: 'assigned', label: 'Assigned', numeric: true, value: (r) => r.assigned, render: (r) => r.assigned },
    { key: 'available', label: 'Available', numeric: true, value: (r) => r.available, render: (r) => r.available },
    { key: 'reserved', label: 'Reserved', numeric: true, value: (r) => r.reserved, render: (r) => r.reserved },
    { key: 'waiting', label: 'Waiting', numeric: true, value: (r) => r.waiting, render: (r) => (r.waiting > 0 ? <strong class="waiting">{r.waiting}</strong> : 0) },
    {
      key: 'consumption', label: 'Consumption', value: (r) => (r.total ? r.assigned / r.total : 0),
      render: (r) => <ConsumptionBar used={r.assigned} total={r.total} label={appName(r)} />,
    },
    {
      key: 'bundle', label: 'Bundle',
      render: (r) => (
        bundled.has(r.adamId)
          ? <span class="bundle-state"><span class="muted">exists</span><button type="button" class="quiet" onClick={() => createBundle(r)} aria-label={`Create Bundle for ${appName(r)} (it exists)`}>Create Bundle</button></span>
          : <button type="button" onClick={() => createBundle(r)} aria-label={`Create Bundle for ${appName(r)}`}>Create Bundle</button>
      ),
    },
  ];

  return (
    <section id="licenses" aria-labelledby="licenses-title">
      <h2 id="licenses-title">License summary</h2>
      <dl class="totals">
        {(['total', 'assigned', 'available', 'reserved', 'waiting'] as const).map((k) => (
          <div key={k} class={k === 'waiting' && sum(k) > 0 ? 'waiting' : undefined}><dt>{k[0]!.toUpperCase() + k.slice(1)}</dt><dd data-testid={`total-${k}`}>{sum(k)}</dd></div>
        ))}
      </dl>
      <DataTable caption="Licenses per app" noun="apps" rows={rows} columns={columns} rowKey={(r) => `${r.adamId}/${r.pricingParam}`}
        initialSort={{ key: 'app' }} empty="No purchased apps yet: link a VPP subscription below." />
    </section>
  );
}
