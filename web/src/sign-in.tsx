import { useState } from 'preact/hooks';

export function SignIn({ error, onToken }: { error: string | null; onToken: (token: string) => Promise<void> }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <main class="sign-in">
      <h1>Apple VPP licenses</h1>
      <form onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        await onToken(token.trim());
        setBusy(false);
      }}>
        <label for="admin-token">Admin token</label>
        <p id="admin-token-help" class="muted">The server prints it on first start and keeps it in <code>DATA_DIR/admin-token</code>. It stays in this tab only.</p>
        <input id="admin-token" name="admin-token" type="password" required autocomplete="off" spellcheck={false}
          aria-describedby={error ? 'admin-token-help sign-in-error' : 'admin-token-help'} aria-invalid={error ? true : undefined}
          value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        {error ? <p id="sign-in-error" role="alert" class="message error">{error}</p> : null}
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </main>
  );
}
