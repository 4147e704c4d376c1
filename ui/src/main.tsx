import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { describeError, forgetToken, isBounded, may, signIn, storedToken, storeToken, type Session } from './api';
import { AuditPage } from './pages/audit';
import { FleetPage } from './pages/fleet';
import { HostPage } from './pages/host';
import { NewRolloutPage } from './pages/new-rollout';
import { RolloutPage } from './pages/rollout';
import { RolloutsPage } from './pages/rollouts';
import { TokensPage } from './pages/tokens';
import { href, useRoute } from './router';

function SignIn({ onSession }: { onSession: (session: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await signIn(token.trim());
      storeToken(session.token);
      setToken('');
      onSession(session);
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>drover</h1>
      <form onSubmit={(event) => void submit(event)} aria-describedby="signin-help">
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="drv_…"
          required
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <p id="signin-help" class="muted">
          The token stays in this tab (sessionStorage) and is sent only to this API.
        </p>
        {error && (
          <p role="alert" class="error" data-testid="signin-error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  const navigated = useRef(false);
  const [first = 'fleet', second, third] = route;
  useEffect(() => {
    // After navigation (not on the first page), keyboard and screen-reader users land on the new
    // page's heading.
    if (navigated.current) main.current?.querySelector<HTMLElement>('h1')?.focus();
    navigated.current = true;
  }, [route.join('/')]);
  const { me } = session;
  const page = (() => {
    if (first === 'hosts' && second) return <HostPage session={session} name={second} />;
    if (first === 'rollouts' && second === 'new') return <NewRolloutPage session={session} />;
    if (first === 'rollouts' && second) return <RolloutPage session={session} id={second} key={second} />;
    if (first === 'rollouts') return <RolloutsPage session={session} />;
    if (first === 'audit') return <AuditPage session={session} />;
    if (first === 'tokens') return <TokensPage session={session} />;
    return <FleetPage session={session} unit={first === 'fleet' ? third : undefined} />;
  })();
  const link = (target: string, label: string, current: boolean) => (
    <a href={href(target)} aria-current={current ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <a class="skip" href="#main" onClick={(event) => (event.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">drover</span>
        <nav aria-label="Sections">
          {may(me, 'read') && link('fleet', 'Fleet', first === 'fleet' || first === 'hosts')}
          {may(me, 'read') && link('rollouts', 'Rollouts', first === 'rollouts')}
          {may(me, 'audit') && link('audit', 'Audit', first === 'audit')}
          {may(me, 'admin') && !isBounded(me) && link('tokens', 'Tokens', first === 'tokens')}
        </nav>
        <span class="who" data-testid="whoami">
          {me.name} · {me.scopes.join(', ')}
          {me.hostSelector !== null && ` · hosts ${me.hostSelector}`}
          {me.unitGlob !== null && ` · units ${me.unitGlob}`}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(() => storedToken() !== null);
  useEffect(() => {
    const token = storedToken();
    if (token === null) return;
    signIn(token)
      .then(setSession, () => forgetToken())
      .finally(() => setRestoring(false));
  }, []);
  if (restoring) return <p class="muted">Loading…</p>;
  if (!session) return <SignIn onSession={setSession} />;
  return (
    <Shell
      session={session}
      onSignOut={() => {
        forgetToken();
        setSession(null);
        location.hash = '';
      }}
    />
  );
}

render(<App />, document.getElementById('root')!);
