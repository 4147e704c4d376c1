import type { PrismaService } from '../../src/infra/prisma/prisma.service';

/**
 * Discovered units as the discovery job will store them. Written straight to the database
 * because no API creates units: they only come from hosts.
 */
export async function insertUnits(
  prisma: PrismaService,
  hostName: string,
  units: { name: string; activeState?: string; subState?: string; mainPid?: number | null }[],
): Promise<void> {
  const host = await prisma.host.findUniqueOrThrow({ where: { name: hostName } });
  await prisma.unit.createMany({
    data: units.map((unit) => ({
      hostId: host.id,
      name: unit.name,
      description: `${unit.name} test unit`,
      loadState: 'loaded',
      activeState: unit.activeState ?? 'active',
      subState: unit.subState ?? 'running',
      unitFileState: 'enabled',
      mainPid: unit.mainPid ?? null,
    })),
  });
}
