import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { AuthFailureRecorder } from './auth-failure-recorder';
import { TokensController } from './tokens.controller';
import { TokensRepository } from './tokens.repository';
import { TokensService } from './tokens.service';
import { WhoAmIController } from './whoami.controller';

@Module({
  // Explicit (AuditModule is global): the admin command builds a context with this module alone.
  imports: [AuditModule, MetricsModule],
  controllers: [TokensController, WhoAmIController],
  providers: [TokensRepository, TokensService, AuthFailureRecorder],
  exports: [TokensService, TokensRepository, AuthFailureRecorder],
})
export class TokensModule {}
