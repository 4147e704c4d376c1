import { z } from 'zod';
import { MAX_DIAGNOSTICS_CHARS, unitActionOutcomeSchema, unitTaskSpecSchema } from './unit-action';
import { unitSnapshotSchema } from './unit-snapshot';

/**
 * The per-host agent's protocol: what an agent and the control plane say to each other over HTTP
 * (`/agent/v1/...`). The agent only ever calls out; every request after enrolment carries a
 * short-lived credential it obtained by signing a server challenge with its own Ed25519 key.
 */

/** This protocol's version; the server accepts agents up to AGENT_PROTOCOL_SUPPORTED_BEHIND older. */
export const AGENT_PROTOCOL_VERSION = 1;
export const AGENT_PROTOCOL_SUPPORTED_BEHIND = 2;
/** The header every agent request carries its protocol version in. */
export const AGENT_PROTOCOL_HEADER = 'drover-agent-protocol';
/** Agent credentials look like this (never valid as an API token, and the reverse). */
export const AGENT_CREDENTIAL_PREFIX = 'dra_';
/** Join tokens look like this. */
export const JOIN_TOKEN_PREFIX = 'drj_';

/** The text an agent signs to obtain a credential: bound to its id and the server's one-time challenge. */
export function sessionSigningText(agentId: string, challenge: string): string {
  return `drover-agent-session:v1:${agentId}:${challenge}`;
}

/** The text a new key signs when an agent rotates to it: proof it holds that key. */
export function keyRotationSigningText(agentId: string, publicKey: string): string {
  return `drover-agent-rotate-key:v1:${agentId}:${publicKey}`;
}

/** What an agent tells about its host with every heartbeat (and when it enrols). */
export const hostFactsSchema = z
  .strictObject({
    hostname: z.string().min(1).max(253),
    os: z.string().max(200).describe('PRETTY_NAME of /etc/os-release'),
    kernel: z.string().max(200),
    systemdVersion: z.string().max(100).nullable(),
    uptimeSeconds: z.number().min(0),
    agentVersion: z.string().max(50),
    protocolVersion: z.number().int().min(1),
    runsAsRoot: z.boolean(),
  })
  .describe('Facts an agent reports about its host');
export type HostFacts = z.output<typeof hostFactsSchema>;

export const enrollRequestSchema = z
  .strictObject({
    joinToken: z.string().min(1).max(200).describe('The one-time join token an operator created'),
    publicKey: z
      .string()
      .min(1)
      .max(200)
      .describe('The agent’s Ed25519 public key, SPKI DER in base64 (the private key never leaves the host)'),
    facts: hostFactsSchema,
  })
  .describe('An agent presents a join token once and registers its key');
export type EnrollRequest = z.output<typeof enrollRequestSchema>;

export const enrollResponseSchema = z.strictObject({
  agentId: z.uuid(),
  hostId: z.uuid(),
  hostName: z.string(),
  serverTime: z.string().describe('The server’s clock (ISO 8601), to measure skew against'),
});
export type EnrollResponse = z.output<typeof enrollResponseSchema>;

export const challengeRequestSchema = z.strictObject({ agentId: z.uuid() });
export const challengeResponseSchema = z.strictObject({
  challenge: z.string(),
  expiresInMs: z.number().int(),
  serverTime: z.string(),
});
export type ChallengeResponse = z.output<typeof challengeResponseSchema>;

export const sessionRequestSchema = z
  .strictObject({
    agentId: z.uuid(),
    challenge: z.string().min(1).max(200),
    signature: z
      .string()
      .min(1)
      .max(200)
      .describe('Ed25519 signature (base64) of sessionSigningText(agentId, challenge)'),
  })
  .describe('An agent proves it holds its key and receives a short-lived credential');
export const sessionResponseSchema = z.strictObject({
  credential: z.string(),
  ttlMs: z.number().int().describe('How long the credential is valid; agents refresh at half of it'),
  serverTime: z.string(),
});
export type SessionResponse = z.output<typeof sessionResponseSchema>;

export const rotateKeyRequestSchema = z
  .strictObject({
    publicKey: z.string().min(1).max(200).describe('The new Ed25519 public key, SPKI DER in base64'),
    proof: z
      .string()
      .min(1)
      .max(200)
      .describe('Signature (base64) by the NEW key of keyRotationSigningText(agentId, publicKey)'),
  })
  .describe('An agent replaces its key (asked with a credential its current key obtained)');

export const heartbeatRequestSchema = z.strictObject({ facts: hostFactsSchema });
export const heartbeatResponseSchema = z.strictObject({
  serverTime: z.string(),
  outdated: z.boolean().describe('The agent speaks an older protocol than the server; upgrade it'),
});

/** One task of an operation for the agent's host: the same spec the SSH worker carries out. */
export const taskCommandSchema = z.strictObject({
  kind: z.literal('task'),
  taskId: z.uuid(),
  attempt: z.number().int().min(1).describe('The attempt number: the fencing token of every later call'),
  spec: unitTaskSpecSchema,
  earlier: z
    .strictObject({
      before: unitSnapshotSchema.nullable(),
      clearedMsAgo: z.number().int().min(0).nullable(),
    })
    .describe('What an earlier attempt at this task left (its agent was lost mid-way)'),
  leaseMs: z.number().int().describe('Renew the claim well within this (the server renews it on each call)'),
});
export type TaskCommand = z.output<typeof taskCommandSchema>;

/** Something the server wants read on the host (a health gate): unit snapshots and catalogue probes. */
export const readItemSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('unit'), unit: z.string().min(1).max(256) }),
  z.strictObject({
    kind: z.literal('diagnostics'),
    unit: z.string().min(1).max(256),
    secondsAgo: z.number().min(0).max(86_400).describe('The journal from this long ago on'),
  }),
  z.strictObject({
    kind: z.literal('probe'),
    name: z.string().min(1).max(64),
    argv: z.array(z.string()).min(1).max(64),
    timeoutMs: z.number().int().min(1),
  }),
]);
export type ReadItem = z.output<typeof readItemSchema>;

export const readCommandSchema = z.strictObject({
  kind: z.literal('read'),
  requestId: z.string().min(1).max(100),
  items: z.array(readItemSchema).min(1).max(64),
  timeoutMs: z.number().int().min(1),
});
export type ReadCommand = z.output<typeof readCommandSchema>;

export const agentCommandSchema = z.discriminatedUnion('kind', [taskCommandSchema, readCommandSchema]);
export type AgentCommand = z.output<typeof agentCommandSchema>;

export const nextCommandResponseSchema = z.strictObject({
  command: agentCommandSchema.nullable().describe('null: nothing to do within the wait'),
  serverTime: z.string(),
});
export type NextCommandResponse = z.output<typeof nextCommandResponseSchema>;

export const clearRequestSchema = z.strictObject({
  before: unitSnapshotSchema.nullable().describe('The unit as read right before acting'),
});
export const waitingRequestSchema = z.strictObject({ reason: z.string().min(1).max(2000) });
export const stoppedResponseSchema = z.strictObject({ stopped: z.string().nullable() });
export const outputChunkSchema = z.strictObject({
  seq: z.number().int().min(0).describe('0, 1, 2, ... per attempt: a chunk sent twice is stored once'),
  text: z.string().max(16 * 1024),
});
export type OutputChunk = z.output<typeof outputChunkSchema>;
export const taskResultRequestSchema = z.strictObject({ outcome: unitActionOutcomeSchema });
export const taskResultResponseSchema = z.strictObject({
  recorded: z.boolean().describe('false: the task had ended or a newer attempt owns it (nothing was recorded)'),
});

export const readResultSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('unit'), unit: z.string(), snapshot: unitSnapshotSchema }),
  z.strictObject({
    kind: z.literal('diagnostics'),
    unit: z.string(),
    text: z.string().max(MAX_DIAGNOSTICS_CHARS),
    summary: z.string().max(300).nullable(),
  }),
  z.strictObject({
    kind: z.literal('probe'),
    name: z.string(),
    exitCode: z.number().int().nullable(),
    output: z.string().max(4096),
  }),
  z.strictObject({ kind: z.literal('error'), item: z.number().int().min(0), message: z.string().max(2000) }),
]);
export type ReadResult = z.output<typeof readResultSchema>;
export const readResultsRequestSchema = z.strictObject({ results: z.array(readResultSchema).max(64) });

/** A unit as a listing of the host shows it (`systemctl list-units` and `list-unit-files`). */
export const listedUnitSchema = z.strictObject({
  name: z.string().min(1).max(256),
  loadState: z.string().max(64),
  activeState: z.string().max(64),
  subState: z.string().max(64),
  description: z.string().max(2000).nullable(),
  unitFileState: z.string().max(64).nullable(),
});
export type ListedUnit = z.output<typeof listedUnitSchema>;

/** The most units one report carries (a host with more sends a full listing in one report anyway). */
export const MAX_REPORTED_UNITS = 50_000;

/**
 * What a unit is built from, as the agent read it (for drift). The server computes the definition
 * hash itself from the file hashes, and keeps `text` only if it matches them.
 */
export const reportedDefinitionSchema = z.strictObject({
  name: z.string().min(1).max(256),
  fragmentPath: z.string().max(4096).nullable(),
  dropInPaths: z.array(z.string().max(4096)).max(256),
  serviceType: z.string().max(64).nullable(),
  restart: z.string().max(64).nullable(),
  nRestarts: z.number().int().min(0).nullable(),
  needDaemonReload: z.boolean(),
  fileHashes: z
    .array(z.strictObject({ path: z.string().max(4096), sha256: z.string().regex(/^[0-9a-f]{64}$/) }))
    .max(257)
    .describe('SHA-256 of each file of the unit that could be read'),
  text: z
    .string()
    .max(1_048_576)
    .optional()
    .describe('The definition as `systemctl cat` prints it: sent once per definition the agent has not sent yet'),
});
export type ReportedDefinition = z.output<typeof reportedDefinitionSchema>;

export const unitsReportSchema = z
  .strictObject({
    full: z.boolean().describe('true: these are all the host’s units (any other stored unit is gone)'),
    units: z.array(listedUnitSchema).max(MAX_REPORTED_UNITS),
    removed: z.array(z.string().min(1).max(256)).max(MAX_REPORTED_UNITS).describe('Units that no longer exist'),
    definitions: z
      .array(reportedDefinitionSchema)
      .max(MAX_REPORTED_UNITS)
      .optional()
      .describe('What the listed units are built from (agents before drift support send none)'),
  })
  .describe('The host’s units as they changed (systemd told the agent over D-Bus), or all of them');
export type UnitsReport = z.output<typeof unitsReportSchema>;
