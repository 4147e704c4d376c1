import { useEffect, useState } from 'preact/hooks';
import { describeError, may, unwrapResult, type Schemas, type Session } from '../api';
import { duration } from '../format';
import { href, navigate } from '../router';

type Strategy = Schemas['RolloutStrategy'];
type Plan = Schemas['RolloutPlan'];
type Verb = NonNullable<Strategy['verb']>;
type Probe = NonNullable<NonNullable<Strategy['healthGate']>['probes']>[number];

const VERBS: Verb[] = [
  'restart',
  'reload',
  'try-restart',
  'reload-or-restart',
  'start',
  'stop',
  'enable',
  'disable',
  'mask',
  'unmask',
  'daemon-reload',
];

interface Form {
  verb: Verb;
  unit: string;
  selector: string;
  batches: string;
  order: 'name' | 'shuffle';
  seed: string;
  maxFailures: string;
  maxUnavailable: string;
  pauseBetweenBatchesMs: string;
  approveAfterCanary: boolean;
  minHealthyTimeMs: string;
  gateTimeoutMs: string;
  httpProbe: string;
  tcpProbe: string;
  commandProbe: string;
  taskTimeoutMs: string;
  deadlineMs: string;
  onOverlap: 'queue' | 'reject' | 'supersede';
}

/** The fields typed in as text. */
type TextField = { [K in keyof Form]: Form[K] extends string ? K : never }[keyof Form];

const INITIAL: Form = {
  verb: 'restart',
  unit: '',
  selector: '',
  batches: '1,25%',
  order: 'name',
  seed: '1',
  maxFailures: '0',
  maxUnavailable: '',
  pauseBetweenBatchesMs: '0',
  approveAfterCanary: false,
  minHealthyTimeMs: '10000',
  gateTimeoutMs: '60000',
  httpProbe: '',
  tcpProbe: '',
  commandProbe: '',
  taskTimeoutMs: '',
  deadlineMs: '',
  onOverlap: 'queue',
};

const countOrPercent = (text: string): number | string => (/^\d+$/.test(text.trim()) ? Number(text) : text.trim());
const optionalNumber = (text: string): number | undefined => (text.trim() === '' ? undefined : Number(text));

/** The form as the API's strategy; the API validates it (its field paths are shown as they come). */
export function strategyOf(form: Form): Strategy {
  const sizes = form.batches
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(countOrPercent);
  const probes: Probe[] = [];
  if (form.httpProbe.trim() !== '') {
    const [port = '', ...path] = form.httpProbe.trim().split('/');
    probes.push({ type: 'http', port: Number(port), path: `/${path.join('/')}` });
  }
  if (form.tcpProbe.trim() !== '') probes.push({ type: 'tcp', port: Number(form.tcpProbe) });
  if (form.commandProbe.trim() !== '') probes.push({ type: 'command', name: form.commandProbe.trim() });
  return {
    verb: form.verb,
    unit: form.unit.trim(),
    selector: form.selector.trim(),
    order: form.order === 'shuffle' ? { by: 'shuffle', seed: Number(form.seed) } : { by: 'name' },
    batches: sizes.length === 1 ? { size: sizes[0]! } : { sizes },
    maxFailures: countOrPercent(form.maxFailures || '0'),
    ...(form.maxUnavailable.trim() !== '' ? { maxUnavailable: countOrPercent(form.maxUnavailable) } : {}),
    pauseBetweenBatchesMs: Number(form.pauseBetweenBatchesMs || 0),
    approveAfterCanary: form.approveAfterCanary,
    healthGate: {
      minHealthyTimeMs: Number(form.minHealthyTimeMs || 0),
      timeoutMs: Number(form.gateTimeoutMs || 0),
      probes,
    },
    ...(optionalNumber(form.taskTimeoutMs) !== undefined ? { taskTimeoutMs: optionalNumber(form.taskTimeoutMs) } : {}),
    ...(optionalNumber(form.deadlineMs) !== undefined ? { deadlineMs: optionalNumber(form.deadlineMs) } : {}),
    onOverlap: form.onOverlap,
  };
}

function PlanView({ plan }: { plan: Plan }) {
  const widest = Math.max(1, ...plan.batches.map((batch) => batch.size));
  const down = new Set(plan.alreadyUnavailable);
  return (
    <section aria-label="Dry run" data-testid="plan">
      <h2>Dry run</h2>
      <p>
        {plan.ok ? (
          <span class="badge r-succeeded">could start now</span>
        ) : (
          <span class="badge r-failed">cannot start</span>
        )}{' '}
        {plan.verb} {plan.unit} on {plan.total} host(s) in {plan.batches.length} batch(es); aborts at failure{' '}
        {plan.failureBudget.abortsAtFailure} (tolerates {plan.failureBudget.maxFailures}); at least{' '}
        {duration(plan.estimatedMinimumDurationMs)}.
      </p>
      {plan.problems.length > 0 && (
        <ul class="error" data-testid="plan-problems">
          {plan.problems.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      )}
      {plan.overlaps.length > 0 && (
        <p class="warn">
          Overlaps {plan.overlaps.length} unfinished rollout(s) ({plan.onOverlap}):{' '}
          {plan.overlaps.map((overlap) => (
            <a key={overlap.rolloutId} href={href('rollouts', overlap.rolloutId)}>
              {overlap.rolloutId.slice(0, 8)} ({overlap.status}){' '}
            </a>
          ))}
        </p>
      )}
      {plan.alreadyUnavailable.length > 0 && <p class="warn">Down now: {plan.alreadyUnavailable.join(', ')}</p>}
      {plan.daemonReload.hosts.length > 0 && (
        <p class="warn">
          Needs daemon-reload: {plan.daemonReload.hosts.join(', ')} ({plan.daemonReload.effect})
        </p>
      )}
      {plan.skipped.length > 0 && (
        <p class="muted">Skipped: {plan.skipped.map((host) => `${host.name} (${host.reason})`).join('; ')}</p>
      )}
      {plan.probeCommands.length > 0 && (
        <p class="muted">
          Probe commands:{' '}
          {plan.probeCommands.map((probe) => (
            <code key={probe.name}>
              {probe.name}: {probe.argv.join(' ')}{' '}
            </code>
          ))}
        </p>
      )}
      <ol class="bars" data-testid="plan-batches">
        {plan.batches.map((batch) => (
          <li key={batch.index}>
            <span class="bar-label">
              batch {batch.index}
              {batch.index === 0 ? ' (canary)' : ''}: {batch.size}
            </span>
            <span class="bar" style={{ width: `${(100 * batch.size) / widest}%` }} aria-hidden="true" />
            <span class="bar-hosts">
              {batch.hosts.map((host) => (
                <span key={host} class={down.has(host) ? 'down' : undefined}>
                  {host}{' '}
                </span>
              ))}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function NewRolloutPage({ session }: { session: Session }) {
  const [form, setForm] = useState<Form>(INITIAL);
  const [plan, setPlan] = useState<Plan | null>(null);
  const [planError, setPlanError] = useState<string | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const set =
    <K extends keyof Form>(key: K) =>
    (value: Form[K]) =>
      setForm((previous) => ({ ...previous, [key]: value }));

  // The preview follows the form: a dry run 400 ms after the last change.
  useEffect(() => {
    if (form.unit.trim() === '') {
      setPlan(null);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      session.client
        .POST('/v1/rollouts/plan', { body: strategyOf(form) })
        .then(unwrapResult)
        .then(
          (result) => live && (setPlan(result), setPlanError(null)),
          (caught: unknown) => live && (setPlan(null), setPlanError(describeError(caught))),
        );
    }, 400);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [form]);

  if (!may(session.me, 'operate')) {
    return <p class="muted">Starting a rollout needs a token with the operate scope.</p>;
  }
  const start = async (event: Event) => {
    event.preventDefault();
    setStarting(true);
    setStartError(null);
    try {
      const rollout = unwrapResult(await session.client.POST('/v1/rollouts', { body: strategyOf(form) }));
      navigate('rollouts', rollout.id);
    } catch (caught) {
      setStartError(describeError(caught));
    } finally {
      setStarting(false);
    }
  };
  const text = (key: TextField, label: string, hint?: string, wide = false) => (
    <div class="field">
      <label for={`f-${key}`}>{label}</label>
      <input
        id={`f-${key}`}
        class={wide ? 'wide mono' : 'mono'}
        value={form[key]}
        onInput={(event) => set(key)(event.currentTarget.value)}
        aria-describedby={hint ? `h-${key}` : undefined}
      />
      {hint && (
        <small id={`h-${key}`} class="muted">
          {hint}
        </small>
      )}
    </div>
  );
  return (
    <>
      <h1 tabIndex={-1}>New rollout</h1>
      <div class="split">
        <form onSubmit={(event) => void start(event)} class="strategy" aria-label="Strategy">
          <div class="field">
            <label for="f-verb">Verb</label>
            <select id="f-verb" value={form.verb} onChange={(event) => set('verb')(event.currentTarget.value as Verb)}>
              {VERBS.map((verb) => (
                <option key={verb}>{verb}</option>
              ))}
            </select>
          </div>
          {text('unit', 'Unit', 'nginx.service, or a glob such as api-*.service')}
          {text('selector', 'Host selector', 'e.g. role=web,env in (prod); empty: every host', true)}
          {text('batches', 'Batch sizes', 'canary first; the last repeats: 1,25% or 5')}
          <div class="field">
            <label for="f-order">Order</label>
            <select
              id="f-order"
              value={form.order}
              onChange={(event) => set('order')(event.currentTarget.value as Form['order'])}
            >
              <option value="name">by name</option>
              <option value="shuffle">shuffled (seed)</option>
            </select>
          </div>
          {form.order === 'shuffle' && text('seed', 'Seed')}
          {text('maxFailures', 'Failures tolerated', 'a count or N%; one more aborts')}
          {text('maxUnavailable', 'Max unavailable', 'a count or N%; empty: batch size')}
          {text('pauseBetweenBatchesMs', 'Pause between batches (ms)')}
          <div class="field check">
            <input
              id="f-approve"
              type="checkbox"
              checked={form.approveAfterCanary}
              onChange={(event) => set('approveAfterCanary')(event.currentTarget.checked)}
            />
            <label for="f-approve">Wait for approval after the canary</label>
          </div>
          {text('minHealthyTimeMs', 'Healthy for (ms)')}
          {text('gateTimeoutMs', 'Health gate timeout (ms)')}
          {text('httpProbe', 'HTTP probe', 'port/path, e.g. 80/healthz')}
          {text('tcpProbe', 'TCP probe port')}
          {text('commandProbe', 'Command probe', 'a probe catalogue name')}
          {text('taskTimeoutMs', 'Task timeout (ms)')}
          {text('deadlineMs', 'Deadline (ms)')}
          <div class="field">
            <label for="f-overlap">If it overlaps another rollout</label>
            <select
              id="f-overlap"
              value={form.onOverlap}
              onChange={(event) => set('onOverlap')(event.currentTarget.value as Form['onOverlap'])}
            >
              <option value="queue">queue behind it</option>
              <option value="reject">refuse</option>
              <option value="supersede">supersede it</option>
            </select>
          </div>
          <button type="submit" class="primary" disabled={starting || !plan?.ok} data-testid="start-rollout">
            Start rollout
          </button>
          {startError && (
            <pre role="alert" class="error">
              {startError}
            </pre>
          )}
        </form>
        <div aria-live="polite">
          {planError && (
            <pre class="error" data-testid="plan-error">
              {planError}
            </pre>
          )}
          {plan ? <PlanView plan={plan} /> : !planError && <p class="muted">Name a unit to see the dry run.</p>}
        </div>
      </div>
    </>
  );
}
