import { Global, Module } from '@nestjs/common';
import { AuditController } from './audit.controller';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

/** Reading, exporting and verifying the audit trail (events are written by the changes they record). */
@Global()
@Module({ controllers: [AuditController], providers: [AuditRepository, AuditService], exports: [AuditRepository] })
export class AuditModule {}
