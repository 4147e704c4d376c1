import { useEffect, useState } from 'preact/hooks';
import { allPages, describeError, unwrapResult, type Schemas, type Session } from '../api';
import { since } from '../format';
import { href } from '../router';

type Host = Schemas['Host'];
type Unit = Schemas['UnitPage']['items'][number];

const ROW_HEIGHT = 34;
const VIEWPORT_ROWS = 16;
const MAX_HOSTS = 10_000;

/** Only the rows in view (plus a few) are in the DOM, so 10,000 hosts scroll as smoothly as 10. */
function HostList({ hosts }: { hosts: Host[] }) {
  const [top, setTop] = useState(0);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 4);
  const last = Math.min(hosts.length, first + VIEWPORT_ROWS + 8);
  return (
    <div class="vtable" role="table" aria-label="Hosts" aria-rowcount={hosts.length + 1}>
      <div role="rowgroup">
        <div class="vrow vhead" role="row" aria-rowindex={1}>
          <span role="columnheader">Name</span>
          <span role="columnheader">Address</span>
          <span role="columnheader">Status</span>
          <span role="columnheader">Last seen</span>
          <span role="columnheader">Labels</span>
        </div>
      </div>
      <div
        class="vscroll"
        role="rowgroup"
        tabIndex={0}
        aria-label="Host rows (scroll)"
        style={{ height: `${Math.min(hosts.length, VIEWPORT_ROWS) * ROW_HEIGHT + 2}px` }}
        onScroll={(event) => setTop(event.currentTarget.scrollTop)}
        data-testid="host-scroll"
      >
        <div style={{ height: `${hosts.length * ROW_HEIGHT}px`, position: 'relative' }} role="presentation">
          {hosts.slice(first, last).map((host, offset) => (
            <div
              key={host.id}
              class="vrow"
              role="row"
              aria-rowindex={first + offset + 2}
              style={{ top: `${(first + offset) * ROW_HEIGHT}px` }}
              data-testid="host-row"
            >
              <span role="cell">
                <a href={href('hosts', host.name)}>{host.name}</a>
              </span>
              <span role="cell">
                {host.address}:{host.port}
              </span>
              <span role="cell">
                <span class={`badge s-${host.status}`}>{host.status}</span>
              </span>
              <span role="cell">{since(host.lastSeenAt)}</span>
              <span role="cell" class="labels">
                {Object.entries(host.labels).map(([key, value]) => (
                  <code key={key}>
                    {key}={value}
                  </code>
                ))}
              </span>
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

function UnitMatrix({ units, hosts }: { units: Unit[]; hosts: Host[] }) {
  const byHost = new Map(units.map((unit) => [unit.hostName, unit]));
  const counts = new Map<string, number>();
  for (const host of hosts) {
    const state = byHost.get(host.name)?.activeState ?? 'unknown';
    counts.set(state, (counts.get(state) ?? 0) + 1);
  }
  return (
    <section aria-label="Unit matrix">
      <p class="legend">
        {[...counts].map(([state, count]) => (
          <span key={state} class={`badge a-${state}`}>
            {state}: {count}
          </span>
        ))}
      </p>
      <div class="matrix" data-testid="unit-matrix">
        {hosts.map((host) => {
          const unit = byHost.get(host.name);
          const state = unit?.activeState ?? 'unknown';
          const label = unit
            ? `${host.name}: ${unit.activeState}/${unit.subState}${unit.mainPid ? ` pid ${unit.mainPid}` : ''}`
            : `${host.name}: not discovered`;
          return (
            <a
              key={host.name}
              href={href('hosts', host.name)}
              class={`cell a-${state}`}
              title={label}
              aria-label={label}
            />
          );
        })}
      </div>
    </section>
  );
}

export function FleetPage({ session, unit: initialUnit }: { session: Session; unit?: string | undefined }) {
  const [selector, setSelector] = useState('');
  const [applied, setApplied] = useState('');
  const [hosts, setHosts] = useState<Host[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unit, setUnit] = useState(initialUnit ?? '');
  const [units, setUnits] = useState<Unit[] | null>(null);
  const [unitError, setUnitError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setError(null);
    allPages(
      async (cursor) =>
        unwrapResult(
          await session.client.GET('/v1/hosts', { params: { query: { selector: applied, limit: 1000, cursor } } }),
        ),
      MAX_HOSTS,
    ).then(
      (items) => live && setHosts(items),
      (caught: unknown) => live && (setError(describeError(caught)), setHosts([])),
    );
    return () => {
      live = false;
    };
  }, [applied]);

  const showUnit = async (event: Event) => {
    event.preventDefault();
    setUnitError(null);
    try {
      setUnits(
        await allPages(
          async (cursor) =>
            unwrapResult(
              await session.client.GET('/v1/units', {
                params: { query: { name: unit.trim(), selector: applied, limit: 1000, cursor } },
              }),
            ),
          MAX_HOSTS,
        ),
      );
    } catch (caught) {
      setUnits(null);
      setUnitError(describeError(caught));
    }
  };

  return (
    <>
      <h1 tabIndex={-1}>Fleet</h1>
      <form
        class="row"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          setApplied(selector.trim());
        }}
      >
        <label for="selector">Label selector</label>
        <input
          id="selector"
          class="wide mono"
          placeholder="role=web,env in (prod,staging),!canary"
          value={selector}
          onInput={(event) => setSelector(event.currentTarget.value)}
        />
        <button type="submit">Filter</button>
      </form>
      {error && (
        <pre role="alert" class="error" data-testid="selector-error">
          {error}
        </pre>
      )}
      {hosts === null ? (
        <p class="muted">Loading hosts…</p>
      ) : (
        <>
          <p class="muted" data-testid="host-count">
            {hosts.length} host(s){hosts.length >= MAX_HOSTS ? ` (first ${MAX_HOSTS})` : ''}
          </p>
          <HostList hosts={hosts} />
          <h2>Unit across these hosts</h2>
          <form class="row" onSubmit={(event) => void showUnit(event)}>
            <label for="matrix-unit">Unit</label>
            <input
              id="matrix-unit"
              class="mono"
              placeholder="nginx.service"
              required
              value={unit}
              onInput={(event) => setUnit(event.currentTarget.value)}
            />
            <button type="submit">Show states</button>
          </form>
          {unitError && (
            <pre role="alert" class="error">
              {unitError}
            </pre>
          )}
          {units && <UnitMatrix units={units} hosts={hosts} />}
        </>
      )}
    </>
  );
}
