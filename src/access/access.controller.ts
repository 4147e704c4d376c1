import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { auditActorOf } from '../audit/audit-actor';
import { Actor, RequestActor, RequireScope, UnboundedTokenOnly } from '../common/auth/auth.decorators';
import { ApiProblems, ApiZodBody, ApiZodResponse } from '../common/openapi/zod-openapi';
import { AccessService } from './access.service';
import { PolkitFile, PolkitFileDto, PolkitRequestDto } from './dto/polkit.dto';
import { SudoersFile, SudoersFileDto, SudoersRequestDto } from './dto/sudoers.dto';

@ApiTags('access')
@Controller('v1/access')
export class AccessController {
  constructor(private readonly access: AccessService) {}

  @Post('sudoers')
  @HttpCode(200)
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'generateSudoers',
    summary:
      'Generate a sudoers drop-in that lets a non-root SSH user run exactly the systemctl commands drover runs for some verbs and units',
  })
  @ApiZodBody(SudoersRequestDto)
  @ApiZodResponse(200, 'The file and where it goes; nothing is installed', SudoersFileDto)
  @ApiProblems(400, 401, 403, 422)
  sudoers(@Body() body: SudoersRequestDto, @Actor() actor: RequestActor): Promise<SudoersFile> {
    return this.access.sudoers(body, auditActorOf(actor));
  }

  @Post('polkit')
  @HttpCode(200)
  @RequireScope('admin')
  @UnboundedTokenOnly()
  @ApiOperation({
    operationId: 'generatePolkitRules',
    summary:
      "Generate a polkit rules file that lets the drover agent's unprivileged user run exactly some verbs on some units through systemd",
  })
  @ApiZodBody(PolkitRequestDto)
  @ApiZodResponse(200, 'The file and where it goes; nothing is installed', PolkitFileDto)
  @ApiProblems(400, 401, 403, 422)
  polkit(@Body() body: PolkitRequestDto, @Actor() actor: RequestActor): Promise<PolkitFile> {
    return this.access.polkit(body, auditActorOf(actor));
  }
}
