// Small renderers shared by the sections: status badges, times, the consumption bar.

// The tone only adds colour: the status word is always written out, so colour is never the only signal.
const TONES: Record<string, 'good' | 'busy' | 'wait' | 'bad'> = {
  Installed: 'good', Active: 'good', Licensed: 'good', Associated: 'good',
  Installing: 'busy', Associating: 'busy', InvitationSent: 'busy', ClaimInProgress: 'busy', New: 'busy',
  Waiting: 'wait', ClaimRequired: 'wait', Removed: 'wait',
  Failed: 'bad', Error: 'bad', DeviceLimitReached: 'bad', OSVersionTooOld: 'bad', Rejected: 'bad', SerialNumberConflict: 'bad',
};

export function Status({ status, reason }: { status: string; reason?: string | null }) {
  return (
    <span class="status-cell">
      <span class={`badge ${TONES[status] ?? 'wait'}`}>{status}</span>
      {reason ? <span class="reason">{reason}</span> : null}
    </span>
  );
}

export function timeAgo(iso: string | null, now: Date): string {
  if (!iso) return 'never';
  const s = Math.round((now.getTime() - new Date(iso).getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

export function When({ iso, now }: { iso: string | null; now: Date }) {
  if (!iso) return <span class="muted">never</span>;
  return <time dateTime={iso} title={new Date(iso).toLocaleString()}>{timeAgo(iso, now)}</time>;
}

export const epoch = (iso: string | null) => (iso ? new Date(iso).getTime() : null);

export function ConsumptionBar({ used, total, label }: { used: number; total: number; label: string }) {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  const percent = Math.round(share * 100);
  const level = share >= 1 ? 'full' : share >= 0.8 ? 'high' : 'ok';
  // A real <meter>: screen readers announce its value; the text beside it says the same for everyone.
  return (
    <span class="consumption">
      <meter class={`bar ${level}`} min={0} max={Math.max(total, 1)} low={Math.max(total, 1) * 0.8} high={Math.max(total, 1) * 0.99}
        optimum={0} value={Math.min(used, total)} aria-label={`${label}: ${used} of ${total} licenses assigned`} />
      <span class="percent">{percent}%</span>
    </span>
  );
}

export function AppIcon({ name, url }: { name: string; url?: string }) {
  if (url) return <img class="app-icon" src={url} alt="" width={32} height={32} loading="lazy" referrerpolicy="no-referrer" />;
  const letters = name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0]!.toUpperCase()).join('');
  return <span class="app-icon placeholder" aria-hidden="true">{letters || '?'}</span>;
}
