import { Inject, Injectable, Logger } from '@nestjs/common';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import { ForbiddenError } from '../common/errors/domain-errors';
import { createdCursorKey, decodeCreatedCursor, Page, toPage } from '../common/pagination/cursor';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type { Host } from '../hosts/hosts.repository';
import { HostsRepository } from '../hosts/hosts.repository';
import { HostsService } from '../hosts/hosts.service';
import { assertMayActOn, BoundedAction, BoundsTarget, reloadFirstAction } from '../tokens/token-bounds';
import type { Principal } from '../common/auth/principal';
import { DispatcherService } from './dispatcher.service';
import type {
  CreateOperationInput,
  HostActionInput,
  ListOperationsQuery,
  OperationResponse,
  OperationSummary,
  TaskResponse,
} from './dto/operation.dto';
import { Operation, OperationsRepository, Task, TaskState } from './operations.repository';

const NO_TASKS: Record<TaskState, number> = {
  queued: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  timed_out: 0,
  unreachable: 0,
  cancelled: 0,
  skipped: 0,
};

/** What a token's bounds are checked against: the host's name and its labels now. */
function boundsTarget(host: Host) {
  return { name: host.name, labels: host.labels as Record<string, string> };
}

function actionOf(input: HostActionInput): BoundedAction {
  return { verb: input.verb, units: input.unit ? [input.unit] : [] };
}

function assertMayReloadFirst(
  principal: Principal,
  targets: readonly BoundsTarget[],
  daemonReload: HostActionInput['daemonReload'],
): void {
  const reload = reloadFirstAction(daemonReload);
  if (reload) assertMayActOn(principal, targets, reload);
}

/** Trusting a first key pins it in the inventory: an inventory change, for unbounded admins only. */
function assertMayTrustKeys(principal: Principal, trustOnFirstUse: boolean): void {
  const unboundedAdmin =
    principal.scopes.includes('admin') && principal.hostSelector === null && principal.unitGlob === null;
  if (trustOnFirstUse && !unboundedAdmin) {
    throw new ForbiddenError('trustOnFirstUse pins host keys in the inventory: it needs an unbounded admin token');
  }
}

function toSummary(operation: Operation, counts: Partial<Record<TaskState, number>>): OperationSummary {
  return {
    id: operation.id,
    verb: operation.verb as OperationSummary['verb'],
    unit: operation.unit,
    selector: operation.selector,
    concurrency: operation.concurrency,
    onConflict: operation.onConflict,
    daemonReload: operation.daemonReload as OperationSummary['daemonReload'],
    status: operation.status,
    requestedBy: operation.requestedBy,
    createdAt: operation.createdAt.toISOString(),
    finishedAt: operation.finishedAt?.toISOString() ?? null,
    counts: { ...NO_TASKS, ...counts },
  };
}

function toTaskResponse(task: Task): TaskResponse {
  return {
    id: task.id,
    hostName: task.hostName,
    verb: task.verb as TaskResponse['verb'],
    unit: task.unit,
    state: task.state,
    attempts: task.attempts,
    startedAt: task.startedAt?.toISOString() ?? null,
    finishedAt: task.finishedAt?.toISOString() ?? null,
    exitCode: task.exitCode,
    reason: task.reason,
    before: task.before as TaskResponse['before'],
    after: task.after as TaskResponse['after'],
    output: task.output,
    diagnostics: task.diagnostics,
    waitingFor:
      task.waitingFor === null
        ? null
        : {
            reason: task.waitingFor,
            rolloutId: task.waitingForRolloutId,
            since: (task.waitingSince ?? task.startedAt ?? new Date()).toISOString(),
          },
  };
}

@Injectable()
export class OperationsService {
  private readonly logger = new Logger(OperationsService.name);

  constructor(
    private readonly operations: OperationsRepository,
    private readonly hostsService: HostsService,
    private readonly hosts: HostsRepository,
    private readonly dispatcher: DispatcherService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Acts on a unit across the hosts a selector matches. Nothing is queued unless all is valid. */
  async create(input: CreateOperationInput, actor: RequestActor, principal: Principal): Promise<OperationResponse> {
    const targets = await this.hostsService.resolveTargets(input.selector);
    assertMayActOn(principal, targets.map(boundsTarget), actionOf(input));
    assertMayReloadFirst(principal, targets.map(boundsTarget), input.daemonReload);
    assertMayTrustKeys(principal, input.trustOnFirstUse);
    return this.start(input, input.selector, input.concurrency ?? targets.length, targets, actor);
  }

  /** Acts on a unit of one host. */
  async createForHost(
    hostName: string,
    input: HostActionInput,
    actor: RequestActor,
    principal: Principal,
  ): Promise<OperationResponse> {
    const host = await this.hosts.findByName(hostName);
    assertMayActOn(principal, [boundsTarget(host)], actionOf(input));
    assertMayReloadFirst(principal, [boundsTarget(host)], input.daemonReload);
    assertMayTrustKeys(principal, input.trustOnFirstUse);
    return this.start(input, null, 1, [host], actor);
  }

  private async start(
    input: HostActionInput,
    selector: string | null,
    concurrency: number,
    targets: Host[],
    actor: RequestActor,
  ): Promise<OperationResponse> {
    // What was asked, as stored and as audited.
    const request = {
      verb: input.verb,
      unit: input.unit ?? null,
      selector,
      concurrency,
      onConflict: input.onConflict,
      daemonReload: input.daemonReload,
    };
    const operation = await this.operations.create(
      {
        ...request,
        commandTimeoutMs: input.timeoutMs ?? this.config.SSH_COMMAND_TIMEOUT_MS,
        trustOnFirstUse: input.trustOnFirstUse,
        requestedByTokenId: actor.tokenId,
        requestedBy: actor.tokenName,
        requestId: actor.requestId,
      },
      targets,
      request,
      auditActorOf(actor),
    );
    try {
      await this.dispatcher.dispatch(operation.id);
    } catch (error) {
      // The operation is committed: answering 500 would invite a retry that acts twice. The
      // reconciler dispatches it within RECONCILE_INTERVAL_MS.
      this.logger.error({ operationId: operation.id, err: error }, 'dispatch failed; the reconciler will queue it');
    }
    return this.get(operation.id);
  }

  async get(id: string): Promise<OperationResponse> {
    const operation = await this.operations.findWithTasks(id);
    const counts = (await this.operations.countTasks([id])).get(id) ?? {};
    return { ...toSummary(operation, counts), tasks: operation.tasks.map(toTaskResponse) };
  }

  async list(query: ListOperationsQuery): Promise<Page<OperationSummary>> {
    const rows = await this.operations.list(query, decodeCreatedCursor(query.cursor), query.limit + 1);
    const counts = await this.operations.countTasks(rows.slice(0, query.limit).map((operation) => operation.id));
    return toPage(
      rows,
      query.limit,
      (operation) => toSummary(operation, counts.get(operation.id) ?? {}),
      createdCursorKey,
    );
  }
}
