import { Global, Module } from '@nestjs/common';
import { RefusalRecorder } from '../common/errors/refusal-recorder';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { AuditRefusalRecorder } from './audit-refusal-recorder';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

/** Reading, exporting and verifying the audit trail (events are written by the changes they record). */
@Global()
@Module({
  imports: [MetricsModule],
  controllers: [AuditController],
  providers: [AuditRepository, AuditService, { provide: RefusalRecorder, useClass: AuditRefusalRecorder }],
  exports: [AuditRepository, RefusalRecorder],
})
export class AuditModule {}
