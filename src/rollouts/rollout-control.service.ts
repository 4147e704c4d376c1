import { Injectable } from '@nestjs/common';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import { ForbiddenError, ResourceNotFoundError, StateConflictError } from '../common/errors/domain-errors';
import type { Principal } from '../tokens/tokens.service';
import type { RolloutResponse, RolloutStatus, RolloutStrategy } from './dto/rollout.dto';
import { LockedRollout, RolloutsRepository } from './rollouts.repository';
import { RolloutAuthorityService } from './rollout-authority.service';
import { RolloutsService } from './rollouts.service';

export type ControlAction = 'pause' | 'resume' | 'approve' | 'cancel' | 'retry';

const ACTIVE: readonly RolloutStatus[] = ['running', 'paused', 'awaiting_approval'];

/** Control actions after which the rollout acts on hosts again. */
const GOES_ON: readonly ControlAction[] = ['resume', 'approve', 'retry'];

/**
 * Pause, resume, approve, cancel and retry. Each is a state change made holding the rollout's row
 * lock, so it never races a step; each is audited and appended to the rollout's events, and wakes
 * the rollout so its next step sees it at once.
 */
@Injectable()
export class RolloutControlService {
  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly rolloutsService: RolloutsService,
    private readonly authority: RolloutAuthorityService,
  ) {}

  async control(
    id: string,
    action: ControlAction,
    reason: string | undefined,
    actor: RequestActor,
    principal: Principal,
  ): Promise<RolloutResponse> {
    const done = await this.rollouts.locked(id, async (locked) => {
      // A bounded token steers only rollouts it started itself (which its bounds were checked for).
      const bounded = principal.hostSelector !== null || principal.unitGlob !== null;
      if (bounded && locked.rollout.requestedByTokenId !== principal.tokenId) {
        throw new ForbiddenError(
          `a token with host or unit bounds can ${action} only the rollouts it started; rollout ${id} was started by ${locked.rollout.requestedBy}`,
        );
      }
      await this.assertMayGoOn(locked, action);
      const detail = await this.apply(locked, action, actor, reason);
      locked.event(`rollout.${detail.event}`, {
        by: actor.tokenName,
        reason: reason ?? null,
        status: locked.rollout.status,
      });
      await locked.audit(auditActorOf(actor), `rollout.${action}`, 'ok', { status: locked.rollout.status }, reason);
      return detail;
    });
    if (done === null) throw new ResourceNotFoundError('rollout', id);
    if (done.quiesced) await this.rolloutsService.discoverActedHosts(id);
    await this.rolloutsService.wake(id);
    return this.rolloutsService.get(id);
  }

  /**
   * Resume, approve and retry let the rollout act again, under the token that started it: that
   * token must still be allowed to act on the hosts left. Pause and cancel only stop things, so they
   * are never refused for this (a rollout whose token was revoked can always be cancelled).
   */
  private async assertMayGoOn(locked: LockedRollout, action: ControlAction): Promise<void> {
    if (!GOES_ON.includes(action)) return;
    const left = await locked.hosts(
      action === 'retry' ? ['pending', 'failed', 'cancelled', 'interrupted'] : ['pending'],
    );
    const lost = await this.authority.problem(locked.rollout, left);
    if (lost !== null) {
      throw new StateConflictError(
        'rollout_authority_lost',
        `cannot ${action} rollout ${locked.rollout.id}: ${lost}. Start a new rollout with a token that may act on these hosts`,
      );
    }
  }

  private async apply(
    locked: LockedRollout,
    action: ControlAction,
    actor: RequestActor,
    reason: string | undefined,
  ): Promise<{ event: string; quiesced?: boolean }> {
    const { rollout } = locked;
    const refuse = (why: string): never => {
      throw new StateConflictError(`rollout_cannot_${action}`, `cannot ${action} rollout ${rollout.id}: ${why}`);
    };
    const by = `by ${actor.tokenName}${reason ? `: ${reason}` : ''}`;
    switch (action) {
      case 'pause':
        if (rollout.status !== 'running') refuse(`it is ${rollout.status}`);
        await locked.update({ status: 'paused', reason: `paused ${by}` });
        return { event: 'paused' };
      case 'resume':
        if (rollout.status !== 'paused') {
          refuse(
            rollout.status === 'awaiting_approval' ? 'it awaits approval (approve it)' : `it is ${rollout.status}`,
          );
        }
        await locked.update({ status: 'running', reason: null });
        return { event: 'resumed' };
      case 'approve': {
        const strategy = rollout.strategy as unknown as RolloutStrategy;
        const early = rollout.status === 'running' && strategy.approveAfterCanary && rollout.approvedAt === null;
        if (rollout.status !== 'awaiting_approval' && !early) refuse(`it is ${rollout.status} and awaits no approval`);
        await locked.update({
          status: 'running',
          reason: null,
          approvedAt: new Date(),
          approvedBy: actor.tokenName,
        });
        return { event: 'approved' };
      }
      case 'cancel': {
        if (!ACTIVE.includes(rollout.status)) refuse(`it already ended ${rollout.status}`);
        await locked.update({
          status: 'cancelled',
          reason: `cancelled ${by}`,
          finishedAt: new Date(),
          nextBatchAt: null,
        });
        await locked.updateHosts(['pending'], { state: 'cancelled', reason: 'not started: the rollout was cancelled' });
        const acting = await locked.hosts(['acting']);
        await locked.cancelQueuedTasks(
          [...new Set(acting.flatMap((host) => (host.operationId ? [host.operationId] : [])))],
          `the rollout was cancelled ${by}`,
        );
        // With hosts in flight, the step that sees the last of them end queues the discoveries.
        const quiesced = acting.length === 0 && (await locked.countHosts(['gating'])) === 0;
        return { event: 'finished', quiesced };
      }
      case 'retry': {
        const failed = await locked.countHosts(['failed', 'cancelled', 'interrupted']);
        if (ACTIVE.includes(rollout.status)) refuse(`it is ${rollout.status}`);
        if (failed === 0) refuse('every host already succeeded');
        if ((await locked.countHosts(['acting'])) > 0) refuse('tasks of its last batch still run; retry once they end');
        const strategy = rollout.strategy as unknown as RolloutStrategy;
        // Done hosts stay done; hosts acted on but not yet proven healthy are checked, not acted on again.
        // Their baseline is as old as their action: the gate reads the units again (a lastCheck
        // set means the next check reads the hosts instead of taking the baseline as it).
        const now = new Date();
        await locked.updateHosts(['interrupted'], {
          state: 'gating',
          reason: null,
          gateStartedAt: now,
          healthySince: null,
          lastCheck: { at: now.toISOString(), healthy: false, problems: ['not checked since the retry'], units: {} },
          finishedAt: null,
        });
        await locked.updateHosts(['failed', 'cancelled'], { state: 'pending', reason: null, finishedAt: null });
        await locked.update({
          status: 'running',
          reason: null,
          runs: { increment: 1 },
          finishedAt: null,
          nextBatchAt: null,
          approvedAt: null,
          approvedBy: null,
          deadlineAt: strategy.deadlineMs === undefined ? null : new Date(Date.now() + strategy.deadlineMs),
        });
        return { event: 'retried' };
      }
    }
  }
}
