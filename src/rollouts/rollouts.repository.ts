import { Injectable } from '@nestjs/common';
import { PrismaService } from '../infra/prisma/prisma.service';

export interface UnitState {
  hostId: string;
  name: string;
  activeState: string;
}

/** Which units to read: one by name, or every unit with a literal prefix and suffix (a glob's bounds). */
export type UnitFilter = { name: string } | { prefix: string; suffix: string };

@Injectable()
export class RolloutsRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** The last discovered state of the units a filter admits on the given hosts (reads only). */
  async unitStates(hostIds: readonly string[], filter: UnitFilter): Promise<UnitState[]> {
    return this.prisma.unit.findMany({
      where: {
        hostId: { in: [...hostIds] },
        name: 'prefix' in filter ? { startsWith: filter.prefix, endsWith: filter.suffix } : filter.name,
      },
      select: { hostId: true, name: true, activeState: true },
    });
  }
}
