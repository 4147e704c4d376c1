import { z } from 'zod';
import { parseSelector, SelectorSyntaxError, UNIT_GLOB_MAX_LENGTH, unitGlobProblem } from '@drover/protocol';
import { pageQueryShape, pageSchema } from '../../common/pagination/cursor';
import { createZodDto } from '../../common/validation/zod-dto';
import { TokenScope } from '../token-scope';

export const tokenNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,100}$/, { error: 'must be 1-100 characters [A-Za-z0-9._-]' })
  .describe('Unique name of the token (who or what uses it)');

const scopeSchema = z
  .enum(TokenScope)
  .describe('read: GET requests; operate: act on units (includes read); admin: everything; audit: the audit trail');

const hostSelectorSchema = z
  .string()
  .max(4096)
  .superRefine((text, context) => {
    if (text.length > 4096) return; // already reported by max()
    try {
      parseSelector(text, 'hostSelector');
    } catch (error) {
      if (!(error instanceof SelectorSyntaxError)) throw error;
      context.addIssue({ code: 'custom', message: error.message });
    }
  })
  .describe('Label selector bounding the hosts the token may act on (null or "": every host)');

const unitGlobSchema = z
  .string()
  .max(UNIT_GLOB_MAX_LENGTH)
  .superRefine((glob, context) => {
    if (glob.length > UNIT_GLOB_MAX_LENGTH) return; // already reported by max()
    const problem = unitGlobProblem(glob);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  })
  .describe(
    `Glob over unit names bounding the units the token may act on, e.g. \`nginx*.service\` or \`app-[0-9].service\` ` +
      `(* any run, ? one character, [...] one of a set; at most ${UNIT_GLOB_MAX_LENGTH} characters). ` +
      'A bounded token may not run unit-less verbs such as daemon-reload. Null: every unit',
  );

export class CreateTokenDto extends createZodDto(
  z
    .strictObject({
      name: tokenNameSchema,
      scopes: z
        .array(scopeSchema)
        .min(1)
        .max(4)
        // A repeated scope grants nothing more; storing it twice would only confuse readers.
        .transform((scopes) => [...new Set(scopes)]),
      hostSelector: hostSelectorSchema.nullable().optional(),
      unitGlob: unitGlobSchema.nullable().optional(),
      expiresInDays: z.number().int().min(1).max(3650).optional().describe('The token expires this many days from now'),
      expiresAt: z.iso
        .datetime({ offset: true })
        .optional()
        .describe('The token expires at this time (in the future); give this or expiresInDays, or neither'),
    })
    .superRefine((body, context) => {
      if (body.expiresAt === undefined) return;
      if (body.expiresInDays !== undefined) {
        context.addIssue({ code: 'custom', path: ['expiresAt'], message: 'give expiresAt or expiresInDays, not both' });
      } else if (Date.parse(body.expiresAt) <= Date.now()) {
        context.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be in the future' });
      }
    })
    .describe('A new API token; without expiresInDays or expiresAt it never expires'),
) {}

export class TokenParamsDto extends createZodDto(z.object({ id: z.uuid().describe('The token id') })) {}

export class ListTokensQueryDto extends createZodDto(z.object({ ...pageQueryShape })) {}

const tokenFields = {
  id: z.uuid(),
  name: z.string(),
  scopes: z.array(scopeSchema),
  hostSelector: z.string().nullable().describe('Hosts the token may act on (null: every host)'),
  unitGlob: z.string().nullable().describe('Units the token may act on (null: every unit)'),
  expiresAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
};

export const tokenResponseSchema = z
  .object({
    ...tokenFields,
    revokedAt: z.iso.datetime().nullable(),
    lastUsedAt: z.iso.datetime().nullable().describe('Last authenticated request (recorded at most once a minute)'),
  })
  .describe('An API token; its secret is never shown again after creation');

export const createdTokenSchema = z
  .object({
    ...tokenFields,
    secret: z
      .string()
      .describe('The bearer secret (drv_...): shown in this response only, drover keeps just its SHA-256'),
  })
  .describe('The created token with its secret');

export const whoAmISchema = z
  .object({
    id: tokenFields.id,
    name: tokenFields.name,
    scopes: tokenFields.scopes,
    hostSelector: tokenFields.hostSelector,
    unitGlob: tokenFields.unitGlob,
  })
  .describe('The calling token (never its secret)');

export class TokenDto extends createZodDto(tokenResponseSchema) {}

export class WhoAmIDto extends createZodDto(whoAmISchema) {}

export class CreatedTokenDto extends createZodDto(createdTokenSchema) {}

export class TokenPageDto extends createZodDto(pageSchema(tokenResponseSchema)) {}

export type CreateTokenRequest = z.output<typeof CreateTokenDto.schema>;
export type TokenResponse = z.output<typeof tokenResponseSchema>;
export type WhoAmIResponse = z.output<typeof whoAmISchema>;
export type CreatedTokenResponse = z.output<typeof createdTokenSchema>;
export type ListTokensQuery = z.output<typeof ListTokensQueryDto.schema>;
