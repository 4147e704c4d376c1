import { Global, Module } from '@nestjs/common';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

/** Reading, exporting and verifying the audit trail (events are written by the changes they record). */
@Global()
@Module({
  imports: [MetricsModule],
  controllers: [AuditController],
  providers: [AuditRepository, AuditService],
  exports: [AuditRepository],
})
export class AuditModule {}
