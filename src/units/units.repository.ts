import { Injectable } from '@nestjs/common';
import { ResourceNotFoundError } from '../common/errors/domain-errors';
import type { Selector } from '../common/selector/selector';
import { Prisma, Unit } from '../generated/prisma/client';
import { PrismaService } from '../infra/prisma/prisma.service';
import { selectorSql } from '../infra/prisma/selector-sql';

export type UnitWithHost = Unit & { host: { name: string } };

const withHostName = { host: { select: { name: true } } } as const;

@Injectable()
export class UnitsRepository {
  constructor(private readonly prisma: PrismaService) {}

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
