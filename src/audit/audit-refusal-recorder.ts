import { Injectable } from '@nestjs/common';
import { AUDIT_ACTION } from '@drover/protocol';
import { Refusal, RefusalRecorder } from '../common/errors/refusal-recorder';
import { AuditRepository } from './audit.repository';

/** A refused request is part of the history too: recorded as an `access.denied` event. */
@Injectable()
export class AuditRefusalRecorder implements RefusalRecorder {
  constructor(private readonly audit: AuditRepository) {}

  async record(refusal: Refusal): Promise<void> {
    await this.audit.append({
      actorTokenId: refusal.principal.tokenId,
      actorName: refusal.principal.tokenName,
      requestId: refusal.requestId,
      sourceAddress: refusal.sourceAddress,
      action: AUDIT_ACTION.accessDenied,
      result: 'denied',
      parameters: { method: refusal.method, path: refusal.path },
      reason: refusal.reason,
    });
  }
}
