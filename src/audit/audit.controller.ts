import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { RequireScope } from '../common/auth/auth.decorators';
import { writeChunks } from '../common/http/write-chunks';
import { ApiProblems, ApiZodQuery, ApiZodResponse } from '../common/openapi/zod-openapi';
import type { Page } from '../common/pagination/cursor';
import { AuditService } from './audit.service';
import {
  AuditEventPageDto,
  AuditEventResponse,
  AuditExportQueryDto,
  AuditQueryDto,
  AuditVerification,
  AuditVerificationDto,
  AuditVerifyQueryDto,
  UnitHistoryQueryDto,
} from './dto/audit.dto';

@ApiTags('audit')
@RequireScope('audit')
@Controller('v1/audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get('events')
  @ApiOperation({ operationId: 'listAuditEvents', summary: 'Audit events matching the filters, newest first' })
  @ApiZodQuery(AuditQueryDto)
  @ApiZodResponse(200, 'A page of events', AuditEventPageDto)
  @ApiProblems(400, 401, 403)
  list(@Query() query: AuditQueryDto): Promise<Page<AuditEventResponse>> {
    return this.audit.list(query);
  }

  @Get('history')
  @ApiOperation({
    operationId: 'getUnitHistory',
    summary: 'Everything that happened to one unit of one host, newest first, across operations',
  })
  @ApiZodQuery(UnitHistoryQueryDto)
  @ApiZodResponse(200, 'A page of events', AuditEventPageDto)
  @ApiProblems(400, 401, 403)
  history(@Query() query: UnitHistoryQueryDto): Promise<Page<AuditEventResponse>> {
    return this.audit.list(query);
  }

  @Get('verify')
  @ApiOperation({ operationId: 'verifyAuditChain', summary: 'Recompute the hash chain and name the first broken link' })
  @ApiZodQuery(AuditVerifyQueryDto)
  @ApiZodResponse(200, 'The verification result (ok: false names the first broken event)', AuditVerificationDto)
  @ApiProblems(400, 401, 403)
  verify(@Query() query: AuditVerifyQueryDto): Promise<AuditVerification> {
    return this.audit.verify(query.fromSeq, query.toSeq);
  }

  @Get('export')
  @ApiOperation({ operationId: 'exportAuditEvents', summary: 'Stream every matching event as JSON lines or CSV' })
  @ApiZodQuery(AuditExportQueryDto)
  @ApiProduces('application/x-ndjson', 'text/csv')
  @ApiZodResponse(200, 'The events, streamed')
  @ApiProblems(400, 401, 403)
  async export(@Query() query: AuditExportQueryDto, @Res() response: Response): Promise<void> {
    const csv = query.format === 'csv';
    response.status(200).type(csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
    response.setHeader('Content-Disposition', `attachment; filename="drover-audit.${csv ? 'csv' : 'jsonl'}"`);
    if (await writeChunks(response, this.audit.export(query, query.format))) response.end();
  }
}
