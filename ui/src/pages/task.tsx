import type { Schemas } from '../api';
import { duration } from '../format';

type Task = Schemas['Operation']['tasks'][number];
type UnitState = NonNullable<Task['before']>;

export function UnitStateLine({
  state,
}: {
  state: Pick<UnitState, 'activeState' | 'subState' | 'mainPid'> & { unitFileState?: string | null };
}) {
  return (
    <span>
      <span class={`badge a-${state.activeState}`}>
        {state.activeState}/{state.subState}
      </span>
      {state.mainPid !== null && ` pid ${state.mainPid}`}
      {state.unitFileState ? ` (${state.unitFileState})` : ''}
    </span>
  );
}

/** One task: its result, the unit before and after, and the output (hostile text: rendered as text). */
export function TaskDetail({ task }: { task: Task }) {
  const took =
    task.startedAt && task.finishedAt ? duration(Date.parse(task.finishedAt) - Date.parse(task.startedAt)) : null;
  return (
    <div class="task" data-testid="task">
      <p>
        <strong>{task.hostName}</strong> {task.verb} {task.unit ?? ''}:{' '}
        <span class={`badge r-${task.state}`}>{task.state}</span>
        {task.exitCode !== null && ` exit ${task.exitCode}`}
        {took && ` in ${took}`}
        {task.attempts > 1 && ` (${task.attempts} attempts)`}
      </p>
      {task.reason && <p data-testid="task-reason">{task.reason}</p>}
      <dl class="beforeafter">
        <dt>Before</dt>
        <dd>{task.before ? <UnitStateLine state={task.before} /> : '–'}</dd>
        <dt>After</dt>
        <dd>{task.after ? <UnitStateLine state={task.after} /> : '–'}</dd>
      </dl>
      {task.output && (
        <pre class="output" data-testid="task-output">
          {task.output}
        </pre>
      )}
    </div>
  );
}
