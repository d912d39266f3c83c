import { useState } from 'preact/hooks';
import type { Api, SandboxInfo, Snapshot, Subscription } from './api.js';
import { enc } from './api.js';
import type { RunTask } from './app.js';
import { Status, When, epoch } from './format.js';
import { DataTable, type Column } from './table.js';

const scheduleText = (s: Subscription['schedule']) =>
  s.type === 'recurring' ? `every ${s.every}` : s.type === 'date' && s.at ? `once, ${new Date(s.at).toLocaleString()}` : 'none';

export function SubscriptionSection({ snapshot, api, run, sandbox }: { snapshot: Snapshot; api: Api; run: RunTask; sandbox: boolean }) {
  const now = snapshot.loadedAt;
  const columns: Array<Column<Subscription>> = [
    { key: 'name', label: 'Name', value: (s) => s.name, render: (s) => s.name },
    {
      key: 'org', label: 'Organisation', value: (s) => `${s.orgName} ${s.locationName ?? ''}`,
      render: (s) => <>{s.orgName}{s.locationName ? <span class="muted small">{s.locationName}</span> : null}</>,
    },
    { key: 'status', label: 'Status', value: (s) => s.status, render: (s) => <Status status={s.status} reason={s.statusReason} /> },
    {
      key: 'expiry', label: 'Token expiry', value: (s) => epoch(s.expiresAt),
      render: (s) => (
        <>
          <time dateTime={s.expiresAt}>{new Date(s.expiresAt).toLocaleDateString()}</time>
          <span class={s.warning ? 'reason warn' : 'muted small'}>{s.warning ?? `in ${s.daysUntilExpiry} days`}</span>
        </>
      ),
    },
    {
      key: 'sync', label: 'Last sync', value: (s) => epoch(s.lastSyncAt),
      render: (s) => <><When iso={s.lastSyncAt} now={now} />{s.lastSyncError ? <span class="reason warn">{s.lastSyncError}</span> : null}</>,
    },
    { key: 'schedule', label: 'Schedule', value: (s) => scheduleText(s.schedule), render: (s) => scheduleText(s.schedule) },
    {
      key: 'run', label: 'Asset sync',
      render: (s) => (
        <button type="button" aria-label={`Run Now: sync ${s.name}`} onClick={() => run(`Run Now (${s.name})`, async () => {
          await api.post(`/api/v1/vpp/subscriptions/${enc(s.id)}/run`);
          return 'asset sync started';
        })}>Run Now</button>
      ),
    },
  ];
  return (
    <section id="subscriptions" aria-labelledby="subscriptions-title">
      <h2 id="subscriptions-title">VPP subscriptions</h2>
      <DataTable caption="VPP subscriptions" noun="subscriptions" rows={snapshot.subscriptions} columns={columns} rowKey={(s) => s.id}
        initialSort={{ key: 'name' }} empty="No VPP subscription is linked yet." />
      <LinkForm api={api} run={run} sandbox={sandbox} startOpen={snapshot.subscriptions.length === 0} />
    </section>
  );
}

function LinkForm({ api, run, sandbox, startOpen }: { api: Api; run: RunTask; sandbox: boolean; startOpen: boolean }) {
  const [name, setName] = useState('');
  const [sToken, setSToken] = useState('');
  const [open, setOpen] = useState(startOpen);
  return (
    <details class="form-panel" open={open} onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Link a VPP token</summary>
      <form onSubmit={async (e) => {
        e.preventDefault();
        await run(`Link ${name}`, async () => {
          const res = await api.post<Subscription>('/api/v1/vpp/subscriptions', { name, sToken: sToken.trim() });
          setSToken('');
          setOpen(false);
          return `subscription ${res.body.name} is ${res.body.status}`;
        });
      }}>
        <label for="subscription-name">Name</label>
        <input id="subscription-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="subscription-stoken">sToken (from Apple Business or School Manager)</label>
        <textarea id="subscription-stoken" required rows={3} spellcheck={false} value={sToken} onInput={(e) => setSToken(e.currentTarget.value)} />
        <div class="buttons">
          <button type="submit">Link</button>
          {sandbox ? (
            <button type="button" onClick={async () => {
              const info = await api.get<SandboxInfo>('/sandbox');
              setSToken(info.demoSToken);
              if (!name) setName('Sandbox');
            }}>Use the sandbox demo token</button>
          ) : null}
        </div>
      </form>
    </details>
  );
}
