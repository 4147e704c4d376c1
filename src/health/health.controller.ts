import { Controller, Get, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import { Public } from '../common/auth/auth.decorators';
import { ApiZodResponse } from '../common/openapi/zod-openapi';
import { createZodDto } from '../common/validation/zod-dto';
import { HealthService, Readiness } from './health.service';

const checkSchema = z.object({
  status: z.enum(['up', 'down']),
  latencyMs: z.number().int(),
  error: z.string().optional(),
});

class LivenessDto extends createZodDto(z.object({ status: z.literal('alive') })) {}

class ReadinessDto extends createZodDto(
  z.object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.object({ database: checkSchema, redis: checkSchema }),
    workers: z
      .object({ lifecycle: z.number().int().nonnegative(), background: z.number().int().nonnegative() })
      .optional()
      .describe('Worker processes consuming each lane; a lane at 0 holds its jobs until a worker starts'),
  }),
) {}

@ApiTags('health')
@Public()
@Controller('healthz')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('live')
  @ApiOperation({ operationId: 'getLiveness', summary: 'The process is up (no dependency checks)' })
  @ApiZodResponse(200, 'Alive', LivenessDto)
  live(): { status: 'alive' } {
    return { status: 'alive' };
  }

  @Get('ready')
  @ApiOperation({ operationId: 'getReadiness', summary: 'PostgreSQL and Redis answer; 503 otherwise' })
  @ApiZodResponse(200, 'Ready', ReadinessDto)
  @ApiZodResponse(503, 'A dependency is down', ReadinessDto)
  async ready(@Res({ passthrough: true }) response: Response): Promise<Readiness> {
    const readiness = await this.health.readiness();
    if (readiness.status !== 'ready') response.status(503);
    return readiness;
  }
}
