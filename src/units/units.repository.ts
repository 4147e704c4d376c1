import { Injectable } from '@nestjs/common';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import { type Selector } from '@drover/protocol';
import type { ListedState, UnitDefinition } from '@drover/systemd';
import { Prisma, Unit } from '../generated/prisma/client';
import { PrismaService } from '../infra/prisma/prisma.service';
import { selectorSql } from '../infra/prisma/selector-sql';

export interface DiscoveredUnitRow {
  name: string;
  description: string | null;
  loadState: string;
  activeState: string;
  subState: string;
  unitFileState: string | null;
}

export interface HostSample {
  hosts: number;
  hostNames: string[];
}

export interface DefinitionGroupRow extends HostSample {
  definitionHash: string | null;
  fragmentPath: string | null;
  dropInPaths: string[];
  serviceType: string | null;
  restart: string | null;
}

export interface FlappingRow {
  hostName: string;
  nRestarts: number | null;
  restartsGrewBy: number;
  refreshedAt: Date;
}

export type UnitWithHost = Unit & { host: { name: string } };

const withHostName = { host: { select: { name: true } } } as const;

@Injectable()
export class UnitsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Makes the stored units of a host exactly the discovered ones in one statement: inserts or
   * updates each, deletes the units the host no longer has. One statement, not one per unit: a host
   * has hundreds of units, and every action is followed by a discovery.
   */
  async replaceForHost(hostId: string, units: DiscoveredUnitRow[]): Promise<void> {
    const names = units.map((unit) => unit.name);
    await this.upsertAndDelete(hostId, units, Prisma.sql`name <> ALL(${names}::text[])`);
  }

  /**
   * Stores these units of a host as they are now and forgets `removed`; other units stay as they
   * were. One statement, as replaceForHost: an agent's watch reports bursts of changes from many
   * hosts at once.
   */
  async applyChanges(hostId: string, units: DiscoveredUnitRow[], removed: string[]): Promise<void> {
    // One statement must not both update and delete a row: a unit reported changed stays.
    const changed = new Set(units.map((unit) => unit.name));
    const gone = removed.filter((name) => !changed.has(name));
    await this.upsertAndDelete(hostId, units, Prisma.sql`name = ANY(${gone}::text[])`);
  }

  /**
   * Inserts or updates `units` of the host and deletes its units matching `deleted` (which must
   * not match any of `units`), in one statement. Keeps the last known MainPID of units a task has
   * looked at.
   */
  private async upsertAndDelete(hostId: string, units: DiscoveredUnitRow[], deleted: Prisma.Sql): Promise<void> {
    const column = <Key extends keyof DiscoveredUnitRow>(key: Key) => units.map((unit) => unit[key]);
    await this.prisma.$executeRaw`
      WITH reported AS (
        SELECT * FROM unnest(
          ${column('name')}::text[], ${column('description')}::text[], ${column('loadState')}::text[],
          ${column('activeState')}::text[], ${column('subState')}::text[], ${column('unitFileState')}::text[]
        ) AS unit(name, description, load_state, active_state, sub_state, unit_file_state)
      ), gone AS (
        DELETE FROM units WHERE host_id = ${hostId}::uuid AND ${deleted}
      )
      INSERT INTO units (id, host_id, name, description, load_state, active_state, sub_state, unit_file_state, refreshed_at)
      SELECT gen_random_uuid(), ${hostId}::uuid, name, description, load_state, active_state, sub_state, unit_file_state, now()
      FROM reported
      ON CONFLICT (host_id, name) DO UPDATE SET
        description = EXCLUDED.description,
        load_state = EXCLUDED.load_state,
        active_state = EXCLUDED.active_state,
        sub_state = EXCLUDED.sub_state,
        unit_file_state = EXCLUDED.unit_file_state,
        refreshed_at = EXCLUDED.refreshed_at`;
  }

  /** How each unit of the host was last listed: its load, active and sub state. */
  async listedStates(hostId: string): Promise<Map<string, ListedState>> {
    const units = await this.prisma.unit.findMany({
      where: { hostId },
      select: { name: true, loadState: true, activeState: true, subState: true },
    });
    return new Map(units.map(({ name, ...state }) => [name, state]));
  }

  /**
   * Records what each unit of a host is built from, as one discovery read it (units stored by
   * replaceForHost just before), and how much its NRestarts grew since the previous discovery:
   * above 0 it restarted on its own meanwhile (flapping). A lower count means it was started
   * anew (systemd counts from there): no growth.
   */
  async recordDefinitions(hostId: string, definitions: readonly UnitDefinition[]): Promise<void> {
    const column = <Value>(pick: (unit: UnitDefinition) => Value) => definitions.map(pick);
    await this.prisma.$executeRaw`
      UPDATE units u SET
        fragment_path = d.fragment_path,
        drop_in_paths = string_to_array(d.drop_in_paths, ' '),
        service_type = d.service_type,
        restart = d.restart,
        definition_hash = d.definition_hash,
        need_daemon_reload = d.need_daemon_reload,
        restarts_grew_by = CASE
          WHEN u.n_restarts IS NOT NULL AND d.n_restarts > u.n_restarts THEN d.n_restarts - u.n_restarts
          ELSE 0 END,
        n_restarts = d.n_restarts
      FROM unnest(
        ${column((unit) => unit.name)}::text[], ${column((unit) => unit.fragmentPath)}::text[],
        ${column((unit) => unit.dropInPaths.join(' '))}::text[], ${column((unit) => unit.serviceType)}::text[],
        ${column((unit) => unit.restart)}::text[], ${column((unit) => unit.definitionHash)}::text[],
        ${column((unit) => unit.needDaemonReload)}::boolean[], ${column((unit) => unit.nRestarts)}::int[]
      ) AS d(name, fragment_path, drop_in_paths, service_type, restart, definition_hash, need_daemon_reload, n_restarts)
      WHERE u.host_id = ${hostId}::uuid AND u.name = d.name`;
  }

  /** Of these definition hashes, those whose text is not stored yet. */
  async hashesWithoutText(hashes: readonly string[]): Promise<string[]> {
    if (hashes.length === 0) return [];
    const known = await this.prisma.unitDefinition.findMany({
      where: { hash: { in: [...hashes] } },
      select: { hash: true },
    });
    const stored = new Set(known.map((definition) => definition.hash));
    return hashes.filter((hash) => !stored.has(hash));
  }

  /** Stores definition texts by hash; a text already stored stays (equal hash, equal text). */
  async storeDefinitionTexts(texts: ReadonlyMap<string, string>): Promise<void> {
    if (texts.size === 0) return;
    await this.prisma.unitDefinition.createMany({
      data: [...texts].map(([hash, text]) => ({ hash, text })),
      skipDuplicates: true,
    });
  }

  /** Units of one host ordered by unit name, strictly after `afterUnit`. */
  async listForHost(hostName: string, afterUnit: string | undefined, take: number): Promise<UnitWithHost[]> {
    const host = await this.prisma.host.findUnique({ where: { name: hostName }, select: { id: true } });
    if (!host) throw new ResourceNotFoundError('host', hostName);
    return this.prisma.unit.findMany({
      where: { hostId: host.id, ...(afterUnit === undefined ? {} : { name: { gt: afterUnit } }) },
      orderBy: { name: 'asc' },
      take,
      include: withHostName,
    });
  }

  /** One unit across the hosts a selector matches, ordered by host name, after `afterHost`. */
  async listByName(
    unitName: string,
    selector: Selector,
    afterHost: string | undefined,
    take: number,
  ): Promise<UnitWithHost[]> {
    const after = afterHost === undefined ? Prisma.sql`TRUE` : Prisma.sql`h.name > ${afterHost}`;
    const rows = await this.prisma.$queryRaw<{ id: string }[]>`
      SELECT u.id FROM units u JOIN hosts h ON h.id = u.host_id
      WHERE u.name = ${unitName} AND ${selectorSql(selector, Prisma.sql`h.labels`)} AND ${after}
      ORDER BY h.name
      LIMIT ${take}`;
    const units = await this.prisma.unit.findMany({
      where: { id: { in: rows.map((row) => row.id) } },
      include: withHostName,
    });
    return units.sort((a, b) => (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0));
  }

  /**
   * One unit across the hosts a selector matches, for drift: hosts grouped by definition hash
   * (largest group first), hosts without the unit, hosts needing daemon-reload and flapping ones.
   * Counted in the database; only `sample` names per list leave it.
   */
  async driftOf(
    unitName: string,
    selector: Selector,
    sample: number,
  ): Promise<{
    groups: DefinitionGroupRow[];
    absent: HostSample;
    needDaemonReload: HostSample;
    flapping: FlappingRow[];
  }> {
    const matched = selectorSql(selector, Prisma.sql`h.labels`);
    const [groups, absent, needDaemonReload, flapping] = await Promise.all([
      this.prisma.$queryRaw<DefinitionGroupRow[]>`
        SELECT u.definition_hash AS "definitionHash", count(*)::int AS hosts,
          (array_agg(h.name ORDER BY h.name))[1:${sample}] AS "hostNames",
          (array_agg(u.fragment_path ORDER BY h.name))[1] AS "fragmentPath",
          (array_agg(array_to_string(u.drop_in_paths, ' ') ORDER BY h.name))[1] AS "dropInPaths",
          (array_agg(u.service_type ORDER BY h.name))[1] AS "serviceType",
          (array_agg(u.restart ORDER BY h.name))[1] AS "restart"
        FROM units u JOIN hosts h ON h.id = u.host_id
        WHERE u.name = ${unitName} AND ${matched}
        GROUP BY u.definition_hash
        ORDER BY count(*) DESC, u.definition_hash NULLS LAST`,
      this.prisma.$queryRaw<HostSample[]>`
        SELECT count(*)::int AS hosts, coalesce((array_agg(h.name ORDER BY h.name))[1:${sample}], '{}') AS "hostNames"
        FROM hosts h
        WHERE ${matched} AND NOT EXISTS (SELECT 1 FROM units u WHERE u.host_id = h.id AND u.name = ${unitName})`,
      this.prisma.$queryRaw<HostSample[]>`
        SELECT count(*)::int AS hosts, coalesce((array_agg(h.name ORDER BY h.name))[1:${sample}], '{}') AS "hostNames"
        FROM units u JOIN hosts h ON h.id = u.host_id
        WHERE u.name = ${unitName} AND ${matched} AND u.need_daemon_reload`,
      this.prisma.$queryRaw<FlappingRow[]>`
        SELECT h.name AS "hostName", u.n_restarts AS "nRestarts", u.restarts_grew_by AS "restartsGrewBy",
          u.refreshed_at AS "refreshedAt"
        FROM units u JOIN hosts h ON h.id = u.host_id
        WHERE u.name = ${unitName} AND ${matched} AND u.restarts_grew_by > 0
        ORDER BY u.restarts_grew_by DESC, h.name
        LIMIT ${sample * 5}`,
    ]);
    return {
      // Drop-in paths contain no spaces (systemd lists them space-separated).
      groups: groups.map((group) => ({
        ...group,
        dropInPaths: String(group.dropInPaths ?? '')
          .split(' ')
          .filter((path) => path !== ''),
      })),
      absent: absent[0] ?? { hosts: 0, hostNames: [] },
      needDaemonReload: needDaemonReload[0] ?? { hosts: 0, hostNames: [] },
      flapping,
    };
  }

  /** The `systemctl cat` text of a definition, when some discovery stored it. */
  async definitionText(hash: string): Promise<string | null> {
    const definition = await this.prisma.unitDefinition.findUnique({ where: { hash }, select: { text: true } });
    return definition?.text ?? null;
  }
}
