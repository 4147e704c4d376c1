import type { RequestActor } from '../common/auth/auth.decorators';

/** Who did something and how it was asked for, as every audit event records it. */
export interface AuditActor {
  actorTokenId: string | null;
  actorName: string;
  requestId: string | null;
  sourceAddress: string | null;
}

/** Exactly the audit columns of an actor (a caller's actor object may carry more). */
export function auditActorColumns(actor: AuditActor): AuditActor {
  return {
    actorTokenId: actor.actorTokenId,
    actorName: actor.actorName,
    requestId: actor.requestId,
    sourceAddress: actor.sourceAddress,
  };
}

export function auditActorOf(actor: RequestActor): AuditActor {
  return {
    actorTokenId: actor.tokenId,
    actorName: actor.tokenName,
    requestId: actor.requestId,
    sourceAddress: actor.sourceAddress,
  };
}
