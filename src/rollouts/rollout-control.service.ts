import { Injectable } from '@nestjs/common';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import {
  ForbiddenError,
  ResourceNotFoundError,
  StateConflictError,
  UnprocessableError,
} from '../common/errors/domain-errors';
import type { Principal } from '../common/auth/principal';
import { isUnfinishedRollout, rolloutControlAction, type RolloutControl } from '@drover/protocol';
import type { RolloutResponse, RolloutStrategy } from './dto/rollout.dto';
import { describeOverlaps, queuedReason } from './rollout-admission';
import { LockedRollout, RolloutsRepository } from './rollouts.repository';
import { RolloutAuthorityService } from './rollout-authority.service';
import { RolloutsService } from './rollouts.service';

export interface ControlOptions {
  reason?: string | undefined;
  /** Retry only: what to do when a rollout admitted since overlaps this one. */
  onOverlap?: 'queue' | 'reject' | undefined;
}

/** Control actions after which the rollout acts on hosts again. */
const GOES_ON: readonly RolloutControl[] = ['resume', 'approve', 'retry'];

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
    action: RolloutControl,
    { reason, onOverlap }: ControlOptions,
    actor: RequestActor,
    principal: Principal,
  ): Promise<RolloutResponse> {
    if (onOverlap !== undefined && action !== 'retry') {
      throw new UnprocessableError('invalid_request', 'onOverlap', 'onOverlap applies to retry only');
    }
    const done = await this.rollouts.locked(
      id,
      async (locked) => {
        // A bounded token steers only rollouts it started itself (which its bounds were checked for).
        const bounded = principal.hostSelector !== null || principal.unitGlob !== null;
        if (bounded && locked.rollout.requestedByTokenId !== principal.tokenId) {
          throw new ForbiddenError(
            `a token with host or unit bounds can ${action} only the rollouts it started; rollout ${id} was started by ${locked.rollout.requestedBy}`,
          );
        }
        await this.assertMayGoOn(locked, action);
        const detail = await this.apply(locked, action, actor, reason, onOverlap ?? 'reject');
        locked.event(`rollout.${detail.event}`, {
          by: actor.tokenName,
          reason: reason ?? null,
          status: locked.rollout.status,
          ...(locked.rollout.status === 'queued' ? { blockedBy: locked.rollout.blockedBy } : {}),
        });
        await locked.audit(
          auditActorOf(actor),
          rolloutControlAction(action),
          'ok',
          { status: locked.rollout.status },
          reason,
        );
        return detail;
      },
      // A retry is admitted again, in order with new rollouts.
      { admission: action === 'retry' },
    );
    if (done === null) throw new ResourceNotFoundError('rollout', id);
    if (done.quiesced) await this.rolloutsService.cameToRest(id);
    await this.rolloutsService.wake(id);
    return this.rolloutsService.get(id);
  }

  /**
   * Resume, approve and retry let the rollout act again, under the token that started it: that
   * token must still be allowed to act on the hosts left. Pause and cancel only stop things, so they
   * are never refused for this (a rollout whose token was revoked can always be cancelled).
   */
  private async assertMayGoOn(locked: LockedRollout, action: RolloutControl): Promise<void> {
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
    action: RolloutControl,
    actor: RequestActor,
    reason: string | undefined,
    onOverlap: 'queue' | 'reject',
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
        if (!isUnfinishedRollout(rollout.status)) refuse(`it already ended ${rollout.status}`);
        // With hosts in flight, the step that sees the last of them end queues the discoveries.
        const quiesced = await locked.cancel(`cancelled ${by}`);
        return { event: 'finished', quiesced };
      }
      case 'retry': {
        const failed = await locked.countHosts(['failed', 'cancelled', 'interrupted']);
        if (isUnfinishedRollout(rollout.status)) refuse(`it is ${rollout.status}`);
        if (failed === 0) refuse('every host already succeeded');
        if ((await locked.countHosts(['acting'])) > 0) refuse('tasks of its last batch still run; retry once they end');
        const blockers = await locked.overlaps();
        if (blockers.length > 0 && onOverlap === 'reject') {
          throw new StateConflictError(
            'rollout_overlaps',
            `cannot retry rollout ${rollout.id}: a rollout admitted since acts on some of the same hosts and units: ` +
              `${describeOverlaps(blockers)}; retrying now could undo it. Send onOverlap 'queue' to run the retry after it`,
            'onOverlap',
          );
        }
        await locked.readmit();
        const strategy = rollout.strategy as unknown as RolloutStrategy;
        // Done hosts stay done; hosts acted on but not yet proven healthy are checked, not acted on
        // again (once it runs: a queued rollout's gate would hold units its blockers act on).
        if (blockers.length === 0) await locked.regateInterrupted();
        await locked.updateHosts(['failed', 'cancelled'], { state: 'pending', reason: null, finishedAt: null });
        await locked.update({
          status: blockers.length > 0 ? 'queued' : 'running',
          reason: blockers.length > 0 ? queuedReason(blockers) : null,
          blockedBy: blockers.map((blocker) => blocker.rolloutId),
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
