import { useEffect, useState } from 'preact/hooks';
import { describeError, may, unwrapResult, type Schemas, type Session } from '../api';
import { mayActOn } from '../bounds';
import { since, time } from '../format';
import { TaskDetail, UnitStateLine } from './task';

type Host = Schemas['Host'];
type Unit = Schemas['UnitPage']['items'][number];
type AuditEvent = Schemas['AuditEventPage']['items'][number];
type Operation = Schemas['Operation'];
type Verb = Schemas['HostAction']['verb'];

const VERBS: Verb[] = [
  'status',
  'restart',
  'reload',
  'start',
  'stop',
  'try-restart',
  'reload-or-restart',
  'enable',
  'disable',
];
const DONE = new Set(['succeeded', 'failed', 'cancelled']);

function UnitActions({
  session,
  host,
  unit,
  onDone,
}: {
  session: Session;
  host: Host;
  unit: Unit;
  onDone: () => void;
}) {
  const [verb, setVerb] = useState<Verb>('status');
  const [confirming, setConfirming] = useState(false);
  const [operation, setOperation] = useState<Operation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const act = async () => {
    setConfirming(false);
    setError(null);
    try {
      let current = unwrapResult(
        await session.client.POST('/v1/hosts/{name}/actions', {
          params: { path: { name: host.name } },
          body: { verb, unit: unit.name },
        }),
      );
      setOperation(current);
      const deadline = Date.now() + 120_000;
      while (!DONE.has(current.status) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        current = unwrapResult(
          await session.client.GET('/v1/operations/{id}', { params: { path: { id: current.id } } }),
        );
        setOperation(current);
      }
      onDone();
    } catch (caught) {
      setError(describeError(caught));
    }
  };
  return (
    <div class="actions">
      <div class="row">
        <label for="verb">Verb</label>
        <select id="verb" value={verb} onChange={(event) => setVerb(event.currentTarget.value as Verb)}>
          {VERBS.map((candidate) => (
            <option key={candidate}>{candidate}</option>
          ))}
        </select>
        <button type="button" onClick={() => setConfirming(true)} data-testid="act">
          {verb}…
        </button>
      </div>
      {confirming && (
        <div role="alertdialog" aria-labelledby="confirm-text" class="confirm">
          <p id="confirm-text">
            Run <code>systemctl {verb}</code> on <strong>{unit.name}</strong> of <strong>{host.name}</strong>?
          </p>
          <button type="button" class="danger" onClick={() => void act()} autoFocus>
            Confirm {verb}
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {error && (
        <pre role="alert" class="error">
          {error}
        </pre>
      )}
      {operation && (
        <div data-testid="action-result">
          <p>
            Operation <code>{operation.id}</code>:{' '}
            <span class={`badge r-${operation.status}`} data-testid="operation-status">
              {operation.status}
            </span>
          </p>
          {operation.tasks.map((task) => (
            <TaskDetail key={task.id} task={task} />
          ))}
        </div>
      )}
    </div>
  );
}

function UnitHistory({ session, host, unit }: { session: Session; host: string; unit: string }) {
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    session.client
      .GET('/v1/audit/history', { params: { query: { host, unit, limit: 50 } } })
      .then(unwrapResult)
      .then(
        (page) => setEvents(page.items),
        (caught: unknown) => setError(describeError(caught)),
      );
  }, [host, unit]);
  if (error) return <p class="error">{error}</p>;
  if (!events) return <p class="muted">Loading history…</p>;
  if (events.length === 0) return <p class="muted">Nothing recorded for this unit yet.</p>;
  return (
    <table class="grid" data-testid="unit-history">
      <caption>History of {unit}</caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Actor</th>
          <th scope="col">Action</th>
          <th scope="col">Result</th>
          <th scope="col">Reason</th>
        </tr>
      </thead>
      <tbody>
        {events.map((event) => (
          <tr key={event.seq}>
            <td>{time(event.occurredAt)}</td>
            <td>{event.actorName}</td>
            <td>{event.action}</td>
            <td>{event.result}</td>
            <td>{event.reason}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function HostPage({ session, name }: { session: Session; name: string }) {
  const [host, setHost] = useState<Host | null>(null);
  const [units, setUnits] = useState<Unit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);
  const [filter, setFilter] = useState('');
  const [historyVersion, setHistoryVersion] = useState(0);
  useEffect(() => {
    Promise.all([
      session.client.GET('/v1/hosts/{name}', { params: { path: { name } } }).then(unwrapResult),
      session.client
        .GET('/v1/hosts/{name}/units', { params: { path: { name }, query: { limit: 1000 } } })
        .then(unwrapResult),
    ]).then(
      ([loadedHost, page]) => {
        setHost(loadedHost);
        setUnits(page.items);
      },
      (caught: unknown) => setError(describeError(caught)),
    );
  }, [name]);
  if (error)
    return (
      <p role="alert" class="error">
        {error}
      </p>
    );
  if (!host || !units) return <p class="muted">Loading…</p>;
  const unit = units.find((candidate) => candidate.name === chosen) ?? null;
  const shown = units.filter((candidate) => candidate.name.includes(filter.trim()));
  return (
    <>
      <h1 tabIndex={-1}>{host.name}</h1>
      <p>
        {host.address}:{host.port} as {host.sshUser} · <span class={`badge s-${host.status}`}>{host.status}</span> ·
        last seen {since(host.lastSeenAt)} ·{' '}
        {Object.entries(host.labels).map(([key, value]) => (
          <code key={key}>
            {key}={value}{' '}
          </code>
        ))}
      </p>
      <div class="split">
        <section aria-label="Units">
          <h2>Units ({units.length})</h2>
          <label for="unit-filter">Filter units</label>
          <input id="unit-filter" value={filter} onInput={(event) => setFilter(event.currentTarget.value)} />
          <table class="grid" data-testid="units">
            <thead>
              <tr>
                <th scope="col">Unit</th>
                <th scope="col">Description</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((candidate) => (
                <tr key={candidate.name} class={candidate.name === chosen ? 'chosen' : undefined}>
                  <td>
                    <button type="button" class="link" onClick={() => setChosen(candidate.name)}>
                      {candidate.name}
                    </button>
                  </td>
                  <td data-testid="unit-description">{candidate.description}</td>
                  <td>
                    <span class={`badge a-${candidate.activeState}`}>
                      {candidate.activeState}/{candidate.subState}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section aria-label="Unit">
          {unit ? (
            <>
              <h2>{unit.name}</h2>
              <UnitStateLine state={unit} />
              {mayActOn(session.me, host.labels, unit.name) ? (
                <UnitActions
                  session={session}
                  host={host}
                  unit={unit}
                  key={unit.name}
                  onDone={() => setHistoryVersion((version) => version + 1)}
                />
              ) : (
                <p class="muted" data-testid="no-actions">
                  This token may not act on this unit here.
                </p>
              )}
              {may(session.me, 'audit') && (
                <UnitHistory
                  session={session}
                  host={host.name}
                  unit={unit.name}
                  key={`${unit.name}-${historyVersion}`}
                />
              )}
            </>
          ) : (
            <p class="muted">Choose a unit to see its history and act on it.</p>
          )}
        </section>
      </div>
    </>
  );
}
