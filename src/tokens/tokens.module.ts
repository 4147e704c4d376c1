import { Module } from '@nestjs/common';
import { MetricsModule } from '../infra/metrics/metrics.module';
import { AuthFailureRecorder } from './auth-failure-recorder';
import { TokensController } from './tokens.controller';
import { TokensRepository } from './tokens.repository';
import { TokensService } from './tokens.service';

@Module({
  imports: [MetricsModule],
  controllers: [TokensController],
  providers: [TokensRepository, TokensService, AuthFailureRecorder],
  exports: [TokensService, AuthFailureRecorder],
})
export class TokensModule {}
