import { Component } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, describeError, mayControl, unwrapResult, type Rollout, type Schemas, type Session } from '../api';
import { duration, time } from '../format';
import { href } from '../router';
import { followRollout, type StreamEvent, type StreamState } from '../sse';
import { TaskDetail } from './task';

type RolloutHost = Rollout['hosts'][number];
type Task = Schemas['Operation']['tasks'][number];
type Control = 'pause' | 'resume' | 'approve' | 'cancel' | 'retry';

const ACTIVE = new Set(['queued', 'running', 'paused', 'awaiting_approval']);
/** How soon a read of the rollout that failed for want of an answer is made again. */
const RELOAD_RETRY_MS = 2_000;

/** Which controls apply to a rollout in this status (the API refuses the others anyway). */
export function controlsFor(rollout: Rollout): Control[] {
  switch (rollout.status) {
    case 'running':
      return ['pause', 'cancel'];
    case 'paused':
      return ['resume', 'cancel'];
    case 'awaiting_approval':
      return ['approve', 'cancel'];
    case 'queued':
      return ['cancel'];
    case 'aborted':
    case 'cancelled':
      return ['retry'];
    case 'succeeded':
      return rollout.counts.failed > 0 ? ['retry'] : [];
  }
}

/** One line for an event of the log: its type and the few fields that say what happened. */
function summary(event: StreamEvent): string {
  const data = event.data;
  const parts: string[] = [];
  for (const key of ['host', 'batch', 'hosts', 'state', 'status', 'reason', 'pidBefore', 'pidAfter', 'by']) {
    const value = data[key];
    if (value === undefined || value === null) continue;
    const text =
      typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? String(value)
        : JSON.stringify(value);
    parts.push(`${key}=${text}`);
  }
  return parts.join(' ');
}

/**
 * One entry of the event log. An event never changes once shown, so a row renders once: a log of
 * thousands of events costs a re-render of the page no more than a short one.
 */
class EventRow extends Component<{ event: StreamEvent }> {
  override shouldComponentUpdate(next: { event: StreamEvent }): boolean {
    return next.event !== this.props.event;
  }

  override render() {
    const { event } = this.props;
    return (
      <li data-event-id={event.id} data-event-type={event.type}>
        <span class="muted">{typeof event.data.at === 'string' ? time(event.data.at) : ''}</span>{' '}
        <strong>{event.type}</strong> {summary(event)}
      </li>
    );
  }
}

function HostCell({ host, selected, onSelect }: { host: RolloutHost; selected: boolean; onSelect: () => void }) {
  const label = `${host.name}: ${host.state}${host.reason ? ` (${host.reason})` : ''}`;
  return (
    <button
      type="button"
      class={`cell h-${host.state}${selected ? ' selected' : ''}`}
      title={label}
      aria-label={label}
      aria-pressed={selected}
      onClick={onSelect}
      data-testid="rollout-host"
      data-state={host.state}
    />
  );
}

function HostDetail({ session, host }: { session: Session; host: RolloutHost }) {
  const [task, setTask] = useState<Task | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setTask(null);
    if (!host.operationId) return;
    session.client
      .GET('/v1/operations/{id}', { params: { path: { id: host.operationId } } })
      .then(unwrapResult)
      .then(
        (operation) => setTask(operation.tasks.find((candidate) => candidate.hostName === host.name) ?? null),
        (caught: unknown) => setError(describeError(caught)),
      );
  }, [host.name, host.operationId, host.state]);
  return (
    <section class="detail" aria-label={`Host ${host.name}`} data-testid="host-detail">
      <h3>
        <a href={href('hosts', host.name)}>{host.name}</a> <span class={`badge h-${host.state}`}>{host.state}</span>
      </h3>
      <p>
        batch {host.batch ?? '–'} · units {host.units.join(', ')}
        {host.healthySince && ` · healthy since ${time(host.healthySince)}`}
      </p>
      {host.reason && <p data-testid="host-reason">{host.reason}</p>}
      {error && <p class="error">{error}</p>}
      {task && <TaskDetail task={task} />}
    </section>
  );
}

export function RolloutPage({ session, id }: { session: Session; id: string }) {
  const [rollout, setRollout] = useState<Rollout | null>(null);
  // Every event of the rollout, in order, none left out: the page shows what the table holds. The
  // array only grows (appending is O(1) however long the log); `logged` is its length, so that an
  // append re-renders the page.
  const events = useRef<StreamEvent[]>([]);
  const [, setLogged] = useState(0);
  const [stream, setStream] = useState<StreamState>('connecting');
  const [error, setError] = useState<string | null>(null);
  const [controlError, setControlError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [reconnects, setReconnects] = useState(0);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const refresh = useRef<() => void>(() => undefined);
  // The stream ends with the rollout; a retry brings it back, and the page follows it again from
  // the last event it has (following counts those restarts).
  const [following, setFollowing] = useState(0);
  const seenEvents = useRef(new Set<string>());
  const lastEventId = useRef<string | null>(null);

  // The rollout itself is re-read after events (at most twice a second); the events drive the page.
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let pending = false;
    let retry: ReturnType<typeof setTimeout> | null = null;
    const load = async () => {
      try {
        const loaded = unwrapResult(await session.client.GET('/v1/rollouts/{id}', { params: { path: { id } } }));
        if (!live) return;
        setRollout(loaded);
        setError(null);
      } catch (caught) {
        if (!live) return;
        setError(describeError(caught));
        // A busy or unreachable API (5xx, no answer) is asked again; a refusal (4xx) stands.
        if (!(caught instanceof ApiError && caught.status < 500) && retry === null) {
          retry = setTimeout(() => {
            retry = null;
            refresh.current();
          }, RELOAD_RETRY_MS);
        }
      }
    };
    refresh.current = () => {
      if (timer) {
        pending = true;
        return;
      }
      void load();
      timer = setTimeout(function again() {
        timer = null;
        if (pending) {
          pending = false;
          void load();
          timer = setTimeout(again, 500);
        }
      }, 500);
    };
    void load();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
      if (retry) clearTimeout(retry);
    };
  }, [id]);

  useEffect(() => {
    const abort = new AbortController();
    const seen = seenEvents.current;
    void followRollout({
      token: session.token,
      rolloutId: id,
      after: lastEventId.current,
      signal: abort.signal,
      onEvent: (event) => {
        if (event.id !== '' && seen.has(event.id)) return;
        seen.add(event.id);
        if (event.id !== '') lastEventId.current = event.id;
        events.current.push(event);
        setLogged(events.current.length);
        refresh.current();
      },
      onState: (state) => {
        setStream(state);
        if (state === 'reconnecting') setReconnects((count) => count + 1);
        if (state === 'ended') refresh.current();
      },
    });
    const ticker = setInterval(() => setNow(Date.now()), 1000);
    return () => {
      abort.abort();
      clearInterval(ticker);
    };
  }, [id, following]);

  // Once the stream ended, the rollout is re-read now and then: a retry (from here or elsewhere)
  // makes it active again, and the page follows its stream again.
  useEffect(() => {
    if (stream !== 'ended') return;
    const timer = setInterval(() => refresh.current(), 10_000);
    return () => clearInterval(timer);
  }, [stream]);
  // Only a rollout read as finished after its stream ended, then active again, was retried: the
  // status read just before the end may still be the old one.
  const status = rollout?.status;
  const finishedSinceEnd = useRef(false);
  useEffect(() => {
    if (stream !== 'ended' || status === undefined) return;
    if (!ACTIVE.has(status)) {
      finishedSinceEnd.current = true;
    } else if (finishedSinceEnd.current) {
      finishedSinceEnd.current = false;
      setFollowing((count) => count + 1);
    }
  }, [stream, status]);

  if (!rollout)
    return error ? (
      <p role="alert" class="error">
        {error}
      </p>
    ) : (
      <p class="muted">Loading…</p>
    );

  const control = async (action: Control) => {
    setControlError(null);
    setConfirmCancel(false);
    try {
      const path = `/v1/rollouts/{id}/${action}` as const;
      setRollout(unwrapResult(await session.client.POST(path, { params: { path: { id } }, body: {} })));
    } catch (caught) {
      setControlError(describeError(caught));
    }
  };
  const started = Date.parse(rollout.createdAt);
  const ended = rollout.finishedAt ? Date.parse(rollout.finishedAt) : now;
  const done = rollout.counts.succeeded + rollout.counts.failed + rollout.counts.cancelled + rollout.counts.interrupted;
  const remaining = rollout.total - done;
  const estimate =
    ACTIVE.has(rollout.status) && done > 0 && remaining > 0 ? ((ended - started) / done) * remaining : null;
  const byName = new Map(rollout.hosts.map((host) => [host.name, host]));
  const chosen = selected ? byName.get(selected) : undefined;
  const controls = mayControl(session.me, rollout) ? controlsFor(rollout) : [];
  return (
    <>
      <h1 tabIndex={-1}>
        {rollout.verb} {rollout.unit}
      </h1>
      <p>
        <span class={`badge r-${rollout.status}`} data-testid="rollout-status">
          {rollout.status}
        </span>{' '}
        on <code>{rollout.selector || 'every host'}</code> · {rollout.total} host(s) · by {rollout.requestedBy} · run{' '}
        {rollout.runs}
      </p>
      {rollout.reason && <p data-testid="rollout-reason">{rollout.reason}</p>}
      {rollout.blockedBy.length > 0 && (
        <p class="warn">
          Queued behind{' '}
          {rollout.blockedBy.map((blocker) => (
            <a key={blocker} href={href('rollouts', blocker)}>
              {blocker.slice(0, 8)}{' '}
            </a>
          ))}
        </p>
      )}
      <p class="stats" data-testid="rollout-progress">
        {done}/{rollout.total} finished ({rollout.counts.succeeded} succeeded, {rollout.counts.failed} failed of{' '}
        {rollout.maxFailures} tolerated, {rollout.counts.acting} acting, {rollout.counts.gating} gating) · elapsed{' '}
        {duration(ended - started)}
        {estimate !== null && ` · about ${duration(estimate)} left`} · stream{' '}
        <span data-testid="stream-state">{stream}</span>
        {reconnects > 0 && ` (resumed ${reconnects}×)`}
      </p>
      {controls.length > 0 && (
        <div class="row" role="group" aria-label="Controls" data-testid="controls">
          {controls.map((action) => (
            <button
              key={action}
              type="button"
              class={action === 'cancel' ? 'danger' : undefined}
              onClick={() => (action === 'cancel' ? setConfirmCancel(true) : void control(action))}
              data-testid={`control-${action}`}
            >
              {action[0]!.toUpperCase() + action.slice(1)}
            </button>
          ))}
        </div>
      )}
      {confirmCancel && controls.includes('cancel') && (
        <div role="alertdialog" aria-labelledby="cancel-text" class="confirm">
          <p id="cancel-text">Cancel this rollout? Nothing new starts; hosts in flight finish their action.</p>
          <button type="button" class="danger" onClick={() => void control('cancel')} data-testid="confirm-cancel">
            Cancel the rollout
          </button>
          <button type="button" onClick={() => setConfirmCancel(false)} autoFocus>
            Keep it running
          </button>
        </div>
      )}
      {controlError && (
        <pre role="alert" class="error" data-testid="control-error">
          {controlError}
        </pre>
      )}
      {error && (
        <p role="status" class="error" data-testid="reload-error">
          Could not read the rollout again (what is shown may be old): {error}
        </p>
      )}
      <h2>Batches</h2>
      <ol class="batches" data-testid="batches">
        {rollout.batches.map((batch) => {
          const hosts = batch.hosts.map((name) => byName.get(name)).filter((host) => host !== undefined);
          const ok = hosts.filter((host) => host.state === 'succeeded').length;
          return (
            <li key={`${batch.run}-${batch.index}`}>
              <span class="bar-label">
                {batch.run > 1 ? `run ${batch.run} ` : ''}batch {batch.index}: {ok}/{hosts.length}
                {batch.finishedAt ? ` in ${duration(Date.parse(batch.finishedAt) - Date.parse(batch.startedAt))}` : ''}
              </span>
              <span class="progress" aria-hidden="true">
                {hosts.map((host) => (
                  <span key={host.name} class={`seg h-${host.state}`} />
                ))}
              </span>
            </li>
          );
        })}
      </ol>
      <h2>Hosts</h2>
      <p class="legend">
        {(['pending', 'acting', 'gating', 'succeeded', 'failed', 'interrupted', 'cancelled'] as const).map((state) => (
          <span key={state} class={`badge h-${state}`}>
            {state} {rollout.counts[state]}
          </span>
        ))}
      </p>
      <div class="matrix" data-testid="rollout-hosts">
        {rollout.hosts.map((host) => (
          <HostCell
            key={host.name}
            host={host}
            selected={host.name === selected}
            onSelect={() => setSelected(host.name === selected ? null : host.name)}
          />
        ))}
      </div>
      {chosen && <HostDetail session={session} host={chosen} />}
      <h2>Events</h2>
      <ol class="events" data-testid="events" aria-live="off">
        {events.current.map((event) => (
          <EventRow key={event.id} event={event} />
        ))}
      </ol>
    </>
  );
}
