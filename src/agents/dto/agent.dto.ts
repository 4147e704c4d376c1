import { z } from 'zod';
import {
  challengeRequestSchema,
  challengeResponseSchema,
  clearRequestSchema,
  enrollRequestSchema,
  enrollResponseSchema,
  heartbeatRequestSchema,
  heartbeatResponseSchema,
  hostFactsSchema,
  nextCommandResponseSchema,
  outputChunkSchema,
  readResultsRequestSchema,
  rotateKeyRequestSchema,
  unitsReportSchema,
  sessionRequestSchema,
  sessionResponseSchema,
  stoppedResponseSchema,
  taskResultRequestSchema,
  taskResultResponseSchema,
  waitingRequestSchema,
} from '@drover/protocol';
import { hostNameSchema } from '../../common/validation/names';
import { labelsSchema } from '../../hosts/dto/host.dto';
import { createZodDto } from '../../common/validation/zod-dto';

export class CreateJoinTokenDto extends createZodDto(
  z
    .strictObject({
      hostName: hostNameSchema
        .nullable()
        .optional()
        .describe('The host name the agent enrols as (needed to bind an existing host); default: its own hostname'),
      labels: labelsSchema.optional().describe('Labels the enrolled host gets (merged into an existing host’s)'),
      expiresInMinutes: z.number().int().min(1).max(10_080).optional().describe('Default 30'),
    })
    .describe('A one-time join token for one agent'),
) {}

const joinTokenFields = {
  id: z.uuid(),
  hostName: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  expiresAt: z.string(),
};

export class JoinTokenDto extends createZodDto(z.strictObject(joinTokenFields)) {}
export class CreatedJoinTokenDto extends createZodDto(
  z.strictObject({
    ...joinTokenFields,
    joinToken: z.string().describe('The secret (drj_...): shown in this response only; it enrols one agent once'),
  }),
) {}
export class JoinTokenListDto extends createZodDto(z.strictObject({ items: z.array(JoinTokenDto.schema) })) {}
export class JoinTokenParamsDto extends createZodDto(z.object({ id: z.uuid().describe('The join token id') })) {}

export const agentViewSchema = z.strictObject({
  id: z.uuid(),
  hostId: z.uuid(),
  hostName: z.string(),
  online: z.boolean().describe('Heard of within AGENT_OFFLINE_AFTER_MS'),
  lastSeenAt: z.string().nullable(),
  enrolledAt: z.string(),
  revokedAt: z.string().nullable(),
  protocolVersion: z.number().int(),
  outdated: z.boolean().describe('Speaks an older (still accepted) protocol: upgrade it'),
  facts: hostFactsSchema.nullable(),
});
export type AgentView = z.output<typeof agentViewSchema>;
export class AgentListDto extends createZodDto(z.strictObject({ items: z.array(agentViewSchema) })) {}
export class AgentParamsDto extends createZodDto(z.object({ id: z.uuid().describe('The agent id') })) {}

export class EnrollDto extends createZodDto(enrollRequestSchema) {}
export class EnrollResponseDto extends createZodDto(enrollResponseSchema) {}
export class ChallengeDto extends createZodDto(challengeRequestSchema) {}
export class ChallengeResponseDto extends createZodDto(challengeResponseSchema) {}
export class SessionDto extends createZodDto(sessionRequestSchema) {}
export class SessionResponseDto extends createZodDto(sessionResponseSchema) {}
export class RotateKeyDto extends createZodDto(rotateKeyRequestSchema) {}
export class UnitsReportDto extends createZodDto(unitsReportSchema) {}
export class HeartbeatDto extends createZodDto(heartbeatRequestSchema) {}
export class HeartbeatResponseDto extends createZodDto(heartbeatResponseSchema) {}
export class NextCommandQueryDto extends createZodDto(
  z.object({
    waitMs: z
      .string()
      .regex(/^\d{1,6}$/, { error: 'must be a whole number of milliseconds' })
      .transform(Number)
      .optional()
      .describe('How long to hold the request when there is nothing to do (capped by the server)'),
  }),
) {}
export class NextCommandResponseDto extends createZodDto(nextCommandResponseSchema) {}
export class AttemptParamsDto extends createZodDto(
  z.object({
    taskId: z.uuid(),
    attempt: z
      .string()
      .regex(/^[1-9]\d{0,8}$/, { error: 'must be a positive whole number' })
      .transform(Number)
      .describe('The attempt number the claim gave (the fencing token)'),
  }),
) {}
export class ClearDto extends createZodDto(clearRequestSchema) {}
export class WaitingDto extends createZodDto(waitingRequestSchema) {}
export class StoppedResponseDto extends createZodDto(stoppedResponseSchema) {}
export class OutputChunkDto extends createZodDto(outputChunkSchema) {}
export class TaskResultDto extends createZodDto(taskResultRequestSchema) {}
export class TaskResultResponseDto extends createZodDto(taskResultResponseSchema) {}
export class ReadParamsDto extends createZodDto(z.object({ requestId: z.string().min(1).max(100) })) {}
export class ReadResultsDto extends createZodDto(readResultsRequestSchema) {}
