import { Injectable } from '@nestjs/common';
import { rolloutControlAction, type RolloutControl } from '@drover/protocol';
import { auditActorOf } from '../audit/audit-actor';
import type { RequestActor } from '../common/auth/auth.decorators';
import {
  ForbiddenError,
  ResourceNotFoundError,
  StateConflictError,
  UnprocessableError,
} from '../common/errors/domain-errors';
import type { Principal } from '../common/auth/principal';
import type { RolloutResponse } from './dto/rollout.dto';
import { describeOverlaps } from './rollout-admission';
import { control } from './rollout-decisions';
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
        // A retry queues behind (or is refused for) the overlapping rollouts admitted since.
        const blockers = action === 'retry' ? await locked.overlaps() : [];
        const decision = control(await locked.state(), action, { by: actor.tokenName, reason, blockers });
        if ('refused' in decision) {
          throw new StateConflictError(
            `rollout_cannot_${action}`,
            `cannot ${action} rollout ${id}: ${decision.refused}`,
          );
        }
        if (blockers.length > 0 && (onOverlap ?? 'reject') === 'reject') {
          throw new StateConflictError(
            'rollout_overlaps',
            `cannot retry rollout ${id}: a rollout admitted since acts on some of the same hosts and units: ` +
              `${describeOverlaps(blockers)}; retrying now could undo it. Send onOverlap 'queue' to run the retry after it`,
            'onOverlap',
          );
        }
        // A retry is admitted again: it takes a new place at the end of the order of admission.
        if (action === 'retry') await locked.readmit();
        await locked.apply(decision);
        await locked.audit(
          auditActorOf(actor),
          rolloutControlAction(action),
          'ok',
          { status: locked.rollout.status },
          reason,
        );
        return decision;
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
}
