import { readFile } from 'node:fs/promises';
import { JOIN_TOKEN_PREFIX } from '@drover/protocol';
import { z } from 'zod';
import { LOG_LEVELS } from './log';

export const DEFAULT_CONFIG_FILE = '/etc/drover-agent/config.json';

const absolutePath = z.string().regex(/^\//, 'must be an absolute path');

export const agentConfigSchema = z.strictObject({
  server: z
    .url({ protocol: /^https?$/, error: 'must be the http(s) URL of the drover API, e.g. https://drover.example.com' })
    .transform((url) => url.replace(/\/+$/, '')),
  stateDir: absolutePath.default('/var/lib/drover-agent'),
  caFile: absolutePath.optional().describe('PEM file of the only CA trusted for the server (default: the system CAs)'),
  pollWaitMs: z.number().int().min(1_000).max(60_000).default(25_000),
  heartbeatMs: z.number().int().min(1_000).max(600_000).default(15_000),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  joinToken: z
    .string()
    .startsWith(JOIN_TOKEN_PREFIX, `must start with ${JOIN_TOKEN_PREFIX}`)
    .optional()
    .describe('Used once, when the agent has not enrolled yet'),
});
export type AgentConfig = z.output<typeof agentConfigSchema>;

/** A config file the agent cannot use; the message names the file and the field. */
export class ConfigError extends Error {}

/** The config in `text` (from `source`, named in errors), validated. */
export function parseConfig(text: string, source: string): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = agentConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : '(the whole file)';
    return `${field}: ${issue.message}`;
  });
  throw new ConfigError(`${source} is not a valid drover-agent config: ${problems.join('; ')}`);
}

export async function loadConfig(file: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${file}: ${(error as Error).message}`);
  }
  return parseConfig(text, file);
}
