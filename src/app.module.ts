import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR, APP_PIPE } from '@nestjs/core';
import { AccessModule } from './access/access.module';
import { AgentsModule } from './agents/agents.module';
import { AuditModule } from './audit/audit.module';
import { BearerAuthGuard } from './tokens/bearer-auth.guard';
import { HttpDrain } from './common/http/http-drain';
import { JsonBodyInterceptor } from './common/http/json-body.interceptor';
import { ProblemFilter } from './common/errors/problem.filter';
import { ZodValidationPipe } from './common/validation/zod-validation.pipe';
import { ConfigModule } from './config/config.module';
import type { AppConfig } from './config/config.schema';
import { HealthModule } from './health/health.module';
import { HostsModule } from './hosts/hosts.module';
import { MetricsModule } from './infra/metrics/metrics.module';
import { OperationsModule } from './operations/operations.module';
import { PoliciesModule } from './policies/policies.module';
import { PrismaModule } from './infra/prisma/prisma.module';
import { RedisModule } from './infra/redis/redis.module';
import { ProbesModule } from './probes/probes.module';
import { RolloutsModule } from './rollouts/rollouts.module';
import { TokensModule } from './tokens/tokens.module';
import { UnitsModule } from './units/units.module';
import { WebhooksModule } from './webhooks/webhooks.module';

/**
 * The HTTP API: every domain module, one validation pipe, one auth guard, one body reader after it,
 * one error filter.
 */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        PrismaModule,
        RedisModule,
        MetricsModule,
        TokensModule,
        HealthModule,
        HostsModule,
        UnitsModule,
        OperationsModule,
        AccessModule,
        AuditModule,
        ProbesModule,
        RolloutsModule,
        PoliciesModule,
        WebhooksModule,
        AgentsModule,
      ],
      providers: [
        HttpDrain,
        { provide: APP_PIPE, useClass: ZodValidationPipe },
        { provide: APP_GUARD, useClass: BearerAuthGuard },
        // After the guard (Nest runs guards before interceptors): bodies of unauthenticated calls are never read.
        { provide: APP_INTERCEPTOR, useClass: JsonBodyInterceptor },
        { provide: APP_FILTER, useClass: ProblemFilter },
      ],
    };
  }
}
