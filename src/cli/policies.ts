import { allPages, ApiError, DroverClient, Schemas, unwrap } from '../client';
import { finish, printPlan, ROLLOUT_EXIT, rolloutOptionsFrom, RolloutOptions } from './rollout';
import { renderTable } from './table';

export class PoliciesUsageError extends Error {}

export interface PolicyOptions extends RolloutOptions {
  enablement?: string | undefined;
  activity?: string | undefined;
  description?: string | undefined;
  unit?: string | undefined;
  rename?: string | undefined;
  apply?: boolean | undefined;
}

type Policy = Schemas['Policy'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENABLEMENTS = ['enabled', 'disabled', 'masked'] as const;
const ACTIVITIES = ['active', 'inactive'] as const;
/** What `--enablement any` and `--activity any` send: the policy leaves that aspect alone. */
const ANY = 'any';

function listPolicies(api: DroverClient): Promise<Policy[]> {
  return allPages(async (cursor) =>
    unwrap(await api.GET('/v1/policies', { params: { query: { cursor, limit: 1000 } } })),
  );
}

/** A policy's id from its id or its name. */
async function resolveId(api: DroverClient, nameOrId: string): Promise<string> {
  if (UUID.test(nameOrId)) return nameOrId;
  const found = (await listPolicies(api)).find((policy) => policy.name === nameOrId);
  if (!found) throw new PoliciesUsageError(`no policy named '${nameOrId}'`);
  return found.id;
}

/** --enablement/--activity: one of the values, `any` (null: the policy leaves it alone), or not given. */
function aspect<Value extends string>(
  option: string,
  text: string | undefined,
  values: readonly Value[],
): Value | null | undefined {
  if (text === undefined) return undefined;
  if (text === ANY) return null;
  if (!(values as readonly string[]).includes(text)) {
    throw new PoliciesUsageError(`--${option} takes ${[...values, ANY].join(', ')}, not '${text}'`);
  }
  return text as Value;
}

function printPolicies(policies: Policy[]): void {
  process.stdout.write(
    renderTable(
      ['NAME', 'ID', 'SELECTOR', 'UNIT', 'ENABLEMENT', 'ACTIVITY'],
      policies.map((policy) => [
        policy.name,
        policy.id,
        policy.selector === '' ? '(every host)' : policy.selector,
        policy.unit,
        policy.enablement ?? ANY,
        policy.activity ?? ANY,
      ]),
    ),
  );
}

function printReconcile(answer: Schemas['Reconcile']): void {
  for (const host of answer.unreconcilable) process.stdout.write(`cannot reconcile ${host.host}: ${host.reason}\n`);
  if (answer.verb === null) {
    process.stdout.write(`policy ${answer.policy}: nothing to reconcile\n`);
    return;
  }
  process.stdout.write(`policy ${answer.policy}: ${answer.verb} on ${answer.hosts.join(', ')}\n`);
  for (const host of answer.later)
    process.stdout.write(`then (next reconcile): ${host.steps.join(', ')} on ${host.host}\n`);
}

/** `drover policies ...`: desired-state policies, their drift, and reconciles. */
export async function policiesCommand(
  api: DroverClient,
  baseUrl: string,
  token: string | undefined,
  args: string[],
  values: PolicyOptions,
): Promise<void> {
  const [action, first, second] = args;
  const print = (value: unknown, human: () => void) =>
    values.json ? process.stdout.write(`${JSON.stringify(value, null, 2)}\n`) : human();
  if (action === 'list') {
    const policies = await listPolicies(api);
    print(policies, () => printPolicies(policies));
  } else if (action === 'show' && first) {
    const policy = unwrap(
      await api.GET('/v1/policies/{id}', { params: { path: { id: await resolveId(api, first) } } }),
    );
    print(policy, () => printPolicies([policy]));
  } else if (action === 'create' && first && second) {
    if (values.selector === undefined)
      throw new PoliciesUsageError('policies create needs -l SELECTOR ("" for every host)');
    const enablement = aspect('enablement', values.enablement, ENABLEMENTS);
    const activity = aspect('activity', values.activity, ACTIVITIES);
    const created = unwrap(
      await api.POST('/v1/policies', {
        body: {
          name: first,
          unit: second,
          selector: values.selector,
          ...(enablement === undefined ? {} : { enablement }),
          ...(activity === undefined ? {} : { activity }),
          ...(values.description === undefined ? {} : { description: values.description }),
        },
      }),
    );
    print(created, () => printPolicies([created]));
  } else if (action === 'update' && first) {
    const enablement = aspect('enablement', values.enablement, ENABLEMENTS);
    const activity = aspect('activity', values.activity, ACTIVITIES);
    const updated = unwrap(
      await api.PATCH('/v1/policies/{id}', {
        params: { path: { id: await resolveId(api, first) } },
        body: {
          ...(values.rename === undefined ? {} : { name: values.rename }),
          ...(values.selector === undefined ? {} : { selector: values.selector }),
          ...(values.unit === undefined ? {} : { unit: values.unit }),
          ...(enablement === undefined ? {} : { enablement }),
          ...(activity === undefined ? {} : { activity }),
          ...(values.description === undefined ? {} : { description: values.description }),
        },
      }),
    );
    print(updated, () => printPolicies([updated]));
  } else if (action === 'delete' && first) {
    unwrap(await api.DELETE('/v1/policies/{id}', { params: { path: { id: await resolveId(api, first) } } }));
    process.stdout.write(`policy ${first} deleted\n`);
  } else if (action === 'drift' && first) {
    const id = await resolveId(api, first);
    const items = await allPages(async (cursor) =>
      unwrap(await api.GET('/v1/policies/{id}/drift', { params: { path: { id }, query: { cursor, limit: 1000 } } })),
    );
    print(items, () => {
      process.stdout.write(
        renderTable(
          ['HOST', 'WHY'],
          items.map((item) => [item.host, item.reasons.join('; ')]),
        ),
      );
      process.stdout.write(`${items.length} host(s) out of line\n`);
    });
  } else if (action === 'reconcile' && first) {
    await reconcile(api, baseUrl, token, first, values);
  } else {
    throw new PoliciesUsageError(
      'policies takes: list | show NAME | create NAME UNIT -l SELECTOR [--enablement E] [--activity A] | ' +
        'update NAME [...] | delete NAME | drift NAME | reconcile NAME [--apply] [--wait]',
    );
  }
}

/** A dry run unless --apply; with --apply the rollout starts and, with --wait, is followed to its end. */
async function reconcile(
  api: DroverClient,
  baseUrl: string,
  token: string | undefined,
  nameOrId: string,
  values: PolicyOptions,
): Promise<void> {
  const id = await resolveId(api, nameOrId);
  const body = { ...rolloutOptionsFrom(values), dryRun: !values.apply };
  let answer: Schemas['Reconcile'];
  try {
    answer = unwrap(await api.POST('/v1/policies/{id}/reconcile', { params: { path: { id } }, body }));
  } catch (error) {
    // Refused before anything started (invalid, not allowed, cannot start now), as `drover rollout` says it.
    if (
      values.apply &&
      error instanceof ApiError &&
      error.status >= 400 &&
      error.status < 500 &&
      error.status !== 401
    ) {
      process.stderr.write(`drover: the reconcile did not start: ${error.message}\n`);
      process.exitCode = ROLLOUT_EXIT.rejected;
      return;
    }
    throw error;
  }
  if (answer.rollout !== null) {
    if (!values.json) {
      printReconcile(answer);
      process.stderr.write(`rollout ${answer.rollout.id} ${answer.rollout.status}\n`);
    }
    await finish(api, baseUrl, token, answer.rollout, values);
    return;
  }
  printDryRun(values, answer);
  if (answer.plan && !answer.plan.ok) process.exitCode = ROLLOUT_EXIT.rejected;
}

function printDryRun(values: PolicyOptions, answer: Schemas['Reconcile']): void {
  if (values.json) {
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return;
  }
  printReconcile(answer);
  if (answer.plan) {
    printPlan(answer.plan);
    process.stdout.write('dry run: nothing started; run again with --apply to start it\n');
  }
}
