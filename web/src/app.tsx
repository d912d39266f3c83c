import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, apiClient, forgetToken, loadSnapshot, saveToken, savedToken, type Snapshot } from './api.js';
import { SignIn } from './sign-in.js';
import { LicenseSection } from './licenses.js';
import { SubscriptionSection } from './subscriptions.js';
import { BundleSection } from './bundles.js';
import { DeviceSection } from './devices.js';

/** How often the page reloads what it shows; a quick task reloads at once. */
export const POLL_MS = 3000;

/** A quick task: a button's API call, whose outcome is announced and followed by a reload. */
export type RunTask = (label: string, call: () => Promise<string>) => Promise<void>;

export function App() {
  const [token, setToken] = useState<string | null>(savedToken);
  const [signInError, setSignInError] = useState<string | null>(null);
  if (!token) {
    return <SignIn error={signInError} onToken={async (t) => {
      try {
        await apiClient(t).get('/api/v1/vpp/subscriptions');
        saveToken(t);
        setSignInError(null);
        setToken(t);
      } catch (err) {
        setSignInError(err instanceof ApiError && err.status === 401 ? 'The server refused this token. It is in DATA_DIR/admin-token (or ADMIN_TOKEN).' : `Cannot reach the server: ${(err as Error).message}`);
      }
    }} />;
  }
  return <Dashboard token={token} onSignOut={(why) => { forgetToken(); setSignInError(why ?? null); setToken(null); }} />;
}

function Dashboard({ token, onSignOut }: { token: string; onSignOut: (why?: string) => void }) {
  const api = useMemo(() => apiClient(token), [token]);
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const [sandbox, setSandbox] = useState(false);
  const reloadNow = useRef<() => void>(() => {});

  useEffect(() => {
    let stopped = false;
    let loading = false;
    let again = false;
    let timer: number | undefined;
    const reload = async () => {
      // A reload asked for during a load (a quick task finished) runs right after it, never beside it.
      if (loading) { again = true; return; }
      loading = true;
      window.clearTimeout(timer);
      try {
        const next = await loadSnapshot(api);
        if (stopped) return;
        setSnapshot(next);
        setLoadError(null);
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 401) { stopped = true; onSignOut('The server no longer accepts this token; sign in again.'); return; }
        setLoadError(`Could not refresh: ${(err as Error).message}. Showing the last data; retrying.`);
      } finally {
        loading = false;
        if (!stopped) {
          if (again) { again = false; void reload(); } else timer = window.setTimeout(() => void reload(), POLL_MS);
        }
      }
    };
    reloadNow.current = () => void reload();
    void reload();
    api.get('/sandbox').then(() => !stopped && setSandbox(true), () => !stopped && setSandbox(false));
    return () => { stopped = true; window.clearTimeout(timer); };
  }, [api]);

  const run: RunTask = async (label, call) => {
    try {
      setMessage({ text: `${label}: ${await call()}`, error: false });
    } catch (err) {
      setMessage({ text: `${label} failed: ${(err as Error).message}`, error: true });
    }
    reloadNow.current();
  };

  return (
    <>
      <header class="top">
        <div>
          <h1>Apple VPP licenses</h1>
          <p class="muted">vpp-mdm{sandbox ? ' · sandbox (simulated Apple services)' : ''}</p>
        </div>
        <nav aria-label="Sections">
          <a href="#licenses">Licenses</a> <a href="#subscriptions">Subscriptions</a> <a href="#bundles">Bundles</a> <a href="#devices">Devices</a>
        </nav>
        <div class="session">
          <span class="muted" data-testid="updated">{snapshot ? `Updated ${snapshot.loadedAt.toLocaleTimeString()} · every ${POLL_MS / 1000} s` : 'Loading…'}</span>
          <button type="button" onClick={() => onSignOut()}>Sign out</button>
        </div>
      </header>
      <main>
        <div role="status" aria-live="polite" class={message ? `message ${message.error ? 'error' : 'ok'}` : 'message empty'}>{message?.text ?? ''}</div>
        {loadError ? <p role="alert" class="message error">{loadError}</p> : null}
        {snapshot ? (
          <>
            <LicenseSection snapshot={snapshot} api={api} run={run} />
            <SubscriptionSection snapshot={snapshot} api={api} run={run} sandbox={sandbox} />
            <BundleSection snapshot={snapshot} api={api} run={run} />
            <DeviceSection snapshot={snapshot} api={api} run={run} />
          </>
        ) : null}
      </main>
    </>
  );
}
