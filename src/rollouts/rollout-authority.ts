import type { BoundedAction, BoundsTarget } from '../tokens/token-bounds';
import { boundsProblem } from '../tokens/token-bounds';
import { scopesAllow, TokenScope } from '../tokens/token-scope';
import { lostStanding } from '../tokens/token-standing';
import { compileUnitGlob, matchesUnitGlob } from '@drover/protocol';
import type { Probe } from './dto/rollout.dto';

/** The token a rollout acts under, as stored now. */
export interface ActingToken {
  name: string;
  scopes: TokenScope[];
  hostSelector: string | null;
  unitGlob: string | null;
  revokedAt: Date | null;
  expiresAt: Date | null;
}

/** What the catalogue says of a probe that decides whether a rollout may use it. */
export interface CatalogueEntry {
  argv: string[];
  timeoutMs: number;
  unitGlob: string | null;
}

/**
 * Why the token a rollout was started with may no longer do what the rollout does next, or null
 * when it still may: the same rules as a new request by that token (known, unrevoked, unexpired,
 * `operate` scope, bounds covering these hosts as labelled now and these units).
 */
export function actingTokenProblem(
  token: ActingToken | null,
  now: Date,
  targets: readonly BoundsTarget[],
  action: BoundedAction,
): string | null {
  if (token === null) return 'the token that started it no longer exists';
  const which = `its token '${token.name}'`;
  const lost = lostStanding(token, now);
  if (lost === 'revoked') return `${which} was revoked at ${token.revokedAt!.toISOString()}`;
  if (lost === 'expired') return `${which} expired at ${token.expiresAt!.toISOString()}`;
  if (!scopesAllow(token.scopes, 'operate')) return `${which} no longer has the 'operate' scope`;
  const outside = boundsProblem(token, targets, action);
  return outside === null ? null : `${which} no longer covers what comes next: ${outside}`;
}

/** The catalogue names a strategy's health gate runs. */
export function commandProbeNames(probes: readonly Probe[]): string[] {
  return [...new Set(probes.flatMap((probe) => (probe.type === 'command' ? [probe.name] : [])))];
}

/**
 * Why the catalogue probes of a health gate cannot gate these units, one problem per probe: a
 * name no longer (or never) in the catalogue, or a probe limited to units that do not match.
 */
export function probeProblems(
  probes: readonly Probe[],
  catalogue: ReadonlyMap<string, CatalogueEntry>,
  units: readonly string[],
): string[] {
  return probes.flatMap((probe, index) => {
    if (probe.type !== 'command') return [];
    const where = `healthGate.probes[${index}]`;
    const entry = catalogue.get(probe.name);
    if (!entry) return [`${where}: no probe '${probe.name}' in the catalogue (GET /v1/probes)`];
    if (entry.unitGlob === null) return [];
    const glob = compileUnitGlob(entry.unitGlob);
    const other = units.find((unit) => !matchesUnitGlob(glob, unit));
    return other === undefined
      ? []
      : [`${where}: probe '${probe.name}' may gate only units matching '${entry.unitGlob}', not '${other}'`];
  });
}
