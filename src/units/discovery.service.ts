import { Injectable, Logger } from '@nestjs/common';
import { HostsRepository } from '../hosts/hosts.repository';
import { JobProducer } from '../infra/queue/job-producer';
import { SshError } from '../infra/ssh/ssh-errors';
import { SshExecutor } from '../infra/ssh/ssh-executor';
import { LIST_UNIT_FILES_ARGV, LIST_UNITS_ARGV, parseDiscovery, SYSTEMD_PROBE_ARGV } from '@drover/systemd';
import { UnitsRepository } from './units.repository';

/** Lists every unit of a host (list-units --all plus list-unit-files) and stores exactly those. */
@Injectable()
export class DiscoveryService {
  private readonly logger = new Logger(DiscoveryService.name);

  constructor(
    private readonly hosts: HostsRepository,
    private readonly units: UnitsRepository,
    private readonly ssh: SshExecutor,
    private readonly producer: JobProducer,
  ) {}

  /** Returns how many units were stored, or null when the host cannot be asked (recorded, not thrown). */
  async discover(hostId: string): Promise<number | null> {
    const host = await this.hosts.findById(hostId);
    if (!host || host.transport !== 'ssh') return null;
    const target = { hostId: host.id, ...host };
    try {
      const probe = await this.ssh.exec(target, SYSTEMD_PROBE_ARGV);
      if (probe.exitCode !== 0 && probe.exitCode !== 1) {
        throw new Error(
          `could not tell whether ${host.name} runs systemd (probe exit ${probe.exitCode ?? probe.signal})`,
        );
      }
      if (probe.exitCode === 1) {
        await this.hosts.recordContact(host.id, true);
        this.logger.log({ hostId, host: host.name }, 'host has no systemd: nothing to discover');
        return 0;
      }
      const [units, files] = await Promise.all([
        this.ssh.exec(target, LIST_UNITS_ARGV),
        this.ssh.exec(target, LIST_UNIT_FILES_ARGV),
      ]);
      for (const listing of [units, files]) {
        if (listing.exitCode !== 0)
          throw new Error(`systemctl listing failed on ${host.name}: ${listing.stderr.trim()}`);
      }
      const discovered = parseDiscovery(units.stdout, files.stdout);
      await this.units.replaceForHost(host.id, discovered);
      await this.hosts.recordContact(host.id, true);
      return discovered.length;
    } catch (error) {
      if (!(error instanceof SshError)) throw error;
      if (error.kind === 'unreachable' || error.kind === 'timed_out') await this.hosts.recordContact(host.id, false);
      this.logger.warn({ hostId, host: host.name, kind: error.kind }, `discovery failed: ${error.message}`);
      return null;
    }
  }

  /** Queues a discovery of every SSH host (the periodic sweep). */
  async sweep(): Promise<number> {
    const ids = await this.hosts.allIds();
    for (const id of ids) await this.producer.discoverHost(id);
    return ids.length;
  }
}
