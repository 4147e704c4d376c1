import { useState } from 'preact/hooks';
import { usePagedList } from '../paging';
import { describeError, unwrapResult, type Schemas, type Scope, type Session } from '../api';
import { time } from '../format';

type Token = Schemas['Token'];
type Created = Schemas['CreatedToken'];

const SCOPES: Scope[] = ['read', 'operate', 'admin', 'audit'];

export function TokensPage({ session }: { session: Session }) {
  const list = usePagedList(
    async (cursor) =>
      unwrapResult(await session.client.GET('/v1/tokens', { params: { query: { limit: 100, cursor } } })),
    [],
  );
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Set<Scope>>(new Set(['read']));
  const [hostSelector, setHostSelector] = useState('');
  const [unitGlob, setUnitGlob] = useState('');
  const [expiresInDays, setExpiresInDays] = useState('');
  const [created, setCreated] = useState<Created | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);

  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setCreated(null);
    try {
      const token = unwrapResult(
        await session.client.POST('/v1/tokens', {
          body: {
            name: name.trim(),
            scopes: [...scopes],
            hostSelector: hostSelector.trim() === '' ? null : hostSelector.trim(),
            unitGlob: unitGlob.trim() === '' ? null : unitGlob.trim(),
            ...(expiresInDays.trim() !== '' ? { expiresInDays: Number(expiresInDays) } : {}),
          },
        }),
      );
      setCreated(token);
      setName('');
      await list.reload();
    } catch (caught) {
      setError(describeError(caught));
    }
  };

  const revoke = async (token: Token) => {
    setRevoking(null);
    setError(null);
    try {
      unwrapResult(await session.client.POST('/v1/tokens/{id}/revoke', { params: { path: { id: token.id } } }));
      await list.reload();
    } catch (caught) {
      setError(describeError(caught));
    }
  };

  return (
    <>
      <h1 tabIndex={-1}>API tokens</h1>
      <form onSubmit={(event) => void create(event)} class="filters" aria-label="New token">
        <div class="field">
          <label for="t-name">Name</label>
          <input id="t-name" required value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </div>
        <fieldset class="field">
          <legend>Scopes</legend>
          {SCOPES.map((scope) => (
            <label key={scope} class="check">
              <input
                type="checkbox"
                checked={scopes.has(scope)}
                onChange={(event) => {
                  const next = new Set(scopes);
                  if (event.currentTarget.checked) next.add(scope);
                  else next.delete(scope);
                  setScopes(next);
                }}
              />{' '}
              {scope}
            </label>
          ))}
        </fieldset>
        <div class="field">
          <label for="t-hosts">Host selector bound</label>
          <input id="t-hosts" value={hostSelector} onInput={(event) => setHostSelector(event.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="t-units">Unit glob bound</label>
          <input id="t-units" value={unitGlob} onInput={(event) => setUnitGlob(event.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="t-days">Expires in days</label>
          <input id="t-days" value={expiresInDays} onInput={(event) => setExpiresInDays(event.currentTarget.value)} />
        </div>
        <div class="row">
          <button type="submit" data-testid="create-token">
            Create token
          </button>
        </div>
      </form>
      {created && (
        <section class="confirm" aria-label="New secret" data-testid="created-token">
          <p>
            Token <strong>{created.name}</strong> created. Copy its secret now: it is not shown again.
          </p>
          <code class="hash" data-testid="token-secret">
            {created.secret}
          </code>{' '}
          <button type="button" onClick={() => void navigator.clipboard?.writeText(created.secret)}>
            Copy
          </button>{' '}
          <button type="button" onClick={() => setCreated(null)}>
            Done
          </button>
        </section>
      )}
      {(error ?? list.error) && (
        <pre role="alert" class="error">
          {error ?? list.error}
        </pre>
      )}
      {revoking && (
        <div role="alertdialog" aria-labelledby="revoke-text" class="confirm">
          <p id="revoke-text">
            Revoke <strong>{revoking.name}</strong>? Every request with it is refused from now on.
          </p>
          <button type="button" class="danger" onClick={() => void revoke(revoking)} data-testid="confirm-revoke">
            Revoke {revoking.name}
          </button>
          <button type="button" onClick={() => setRevoking(null)} autoFocus>
            Keep it
          </button>
        </div>
      )}
      <table class="grid" data-testid="tokens">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Scopes</th>
            <th scope="col">Bounds</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {list.items.map((token) => (
            <tr key={token.id} data-testid="token-row" data-name={token.name}>
              <td>{token.name}</td>
              <td>{token.scopes.join(', ')}</td>
              <td>
                {token.hostSelector !== null && <code>hosts {token.hostSelector} </code>}
                {token.unitGlob !== null && <code>units {token.unitGlob}</code>}
              </td>
              <td>{time(token.createdAt)}</td>
              <td>{time(token.lastUsedAt)}</td>
              <td>{time(token.expiresAt)}</td>
              <td>
                {token.revokedAt ? (
                  <span class="badge r-failed">revoked {time(token.revokedAt)}</span>
                ) : token.id === session.me.id ? (
                  <span class="muted">this session</span>
                ) : (
                  <button type="button" class="danger" onClick={() => setRevoking(token)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.more && (
        <button type="button" onClick={list.more}>
          More
        </button>
      )}
    </>
  );
}
