import { Injectable } from '@nestjs/common';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import { type Selector, type UnitSnapshot } from '@drover/protocol';
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

export type UnitWithHost = Unit & { host: { name: string } };

const withHostName = { host: { select: { name: true } } } as const;

@Injectable()
export class UnitsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /**
   * Makes the stored units of a host exactly the discovered ones in one statement: inserts or
   * updates each, deletes the units the host no longer has. Keeps the last known MainPID of units
   * a task has looked at. One statement, not one per unit: a host has hundreds of units, and every
   * action is followed by a discovery.
   */
  async replaceForHost(hostId: string, units: DiscoveredUnitRow[]): Promise<void> {
    const column = <Key extends keyof DiscoveredUnitRow>(key: Key) => units.map((unit) => unit[key]);
    await this.prisma.$executeRaw`
      WITH discovered AS (
        SELECT * FROM unnest(
          ${column('name')}::text[], ${column('description')}::text[], ${column('loadState')}::text[],
          ${column('activeState')}::text[], ${column('subState')}::text[], ${column('unitFileState')}::text[]
        ) AS unit(name, description, load_state, active_state, sub_state, unit_file_state)
      ), gone AS (
        DELETE FROM units WHERE host_id = ${hostId}::uuid AND name <> ALL(${column('name')}::text[])
      )
      INSERT INTO units (id, host_id, name, description, load_state, active_state, sub_state, unit_file_state, refreshed_at)
      SELECT gen_random_uuid(), ${hostId}::uuid, name, description, load_state, active_state, sub_state, unit_file_state, now()
      FROM discovered
      ON CONFLICT (host_id, name) DO UPDATE SET
        description = EXCLUDED.description,
        load_state = EXCLUDED.load_state,
        active_state = EXCLUDED.active_state,
        sub_state = EXCLUDED.sub_state,
        unit_file_state = EXCLUDED.unit_file_state,
        refreshed_at = EXCLUDED.refreshed_at`;
  }

  /** Records one unit's state as a task just read it. */
  /** Stores these units of a host as they are now and forgets `removed`; other units stay as they were. */
  async applyChanges(hostId: string, units: DiscoveredUnitRow[], removed: string[]): Promise<void> {
    const refreshedAt = new Date();
    await this.prisma.$transaction([
      this.prisma.unit.deleteMany({ where: { hostId, name: { in: removed } } }),
      ...units.map((unit) =>
        this.prisma.unit.upsert({
          where: { hostId_name: { hostId, name: unit.name } },
          create: { hostId, ...unit, refreshedAt },
          update: { ...unit, refreshedAt },
        }),
      ),
    ]);
  }

  /** The unit as a task left it (its state read after acting), whoever carried the task out. */
  recordAfterTask(hostId: string, name: string, after: UnitSnapshot): Promise<void> {
    return this.upsertOne(hostId, {
      name,
      description: after.description,
      loadState: after.loadState,
      activeState: after.activeState,
      subState: after.subState,
      unitFileState: after.unitFileState,
      mainPid: after.mainPid,
    });
  }

  async upsertOne(hostId: string, unit: DiscoveredUnitRow & { mainPid: number | null }): Promise<void> {
    const refreshedAt = new Date();
    await this.prisma.unit.upsert({
      where: { hostId_name: { hostId, name: unit.name } },
      create: { hostId, ...unit, refreshedAt },
      update: { ...unit, refreshedAt },
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
}
