import { Injectable, Logger } from '@nestjs/common';
import { HostsRepository } from '../hosts/hosts.repository';
import { JobProducer } from '../infra/queue/job-producer';
import { SshError } from '../infra/ssh/ssh-errors';
import { ExecResult, SshExecutor } from '../infra/ssh/ssh-executor';
import {
  LIST_UNIT_FILES_ARGV,
  LIST_UNITS_ARGV,
  parseDiscovery,
  readDefinitionTexts,
  readUnitDefinitions,
  SYSTEMD_PROBE_ARGV,
  type UnitDefinition,
  unitsToListAgain,
} from '@drover/systemd';
import { UnitsRepository } from './units.repository';

/** Definitions whose text one discovery reads at most (one `cat` per file of each). */
const NEW_DEFINITIONS_PER_DISCOVERY = 100;

/**
 * Lists the units of a host (list-units --all plus list-unit-files) and stores them with what each
 * is built from (for drift): every unit, or after an action those that changed.
 */
@Injectable()
export class DiscoveryService {
  private readonly logger = new Logger(DiscoveryService.name);

  constructor(
    private readonly hosts: HostsRepository,
    private readonly units: UnitsRepository,
    private readonly ssh: SshExecutor,
    private readonly producer: JobProducer,
  ) {}

  /**
   * Returns how many units were stored, or null when the host cannot be asked (recorded, not
   * thrown). Lists the host again when another discovery was asked for while this one ran.
   */
  async discover(hostId: string): Promise<number | null> {
    const wakeSignal = this.producer.discoveryWakeSignal(hostId);
    await this.producer.takeWakeSignal(wakeSignal);
    let stored: number | null;
    do {
      const full = await this.producer.takeWakeSignal(this.producer.fullDiscoverySignal(hostId));
      stored = await this.discoverOnce(hostId, full);
    } while (await this.producer.takeWakeSignal(wakeSignal));
    return stored;
  }

  /**
   * Every unit (`full`), or the units whose state differs from the one stored (as a fresh
   * list-units tells) and those systemd let go of: the look after an action, which spares the
   * host's PID 1 a list-unit-files of everything. Falls back to every unit when too many differ.
   */
  private async discoverOnce(hostId: string, full: boolean): Promise<number | null> {
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
      const listUnits = await this.ssh.exec(target, LIST_UNITS_ARGV);
      if (listUnits.exitCode !== 0)
        throw new Error(`systemctl list-units failed on ${host.name}: ${listUnits.stderr.trim()}`);
      const changed = full
        ? null
        : unitsToListAgain(parseDiscovery(listUnits.stdout, ''), await this.units.listedStates(host.id));
      if (changed?.length === 0) {
        await this.hosts.recordContact(host.id, true);
        return 0;
      }
      // Any user may list unit files: named ones are listed as the login user, since a sudoers
      // drop-in of exact command lines cannot allow every set of names.
      const files = changed
        ? await this.ssh.exec(target, [...LIST_UNIT_FILES_ARGV, '--', ...changed], { asLoginUser: true })
        : await this.ssh.exec(target, LIST_UNIT_FILES_ARGV);
      // list-unit-files exits 1 when none of the names it was given has a unit file.
      if (files.exitCode !== 0 && (changed === null || files.exitCode !== 1)) {
        throw new Error(`systemctl list-unit-files failed on ${host.name}: ${files.stderr.trim()}`);
      }
      const listed = parseDiscovery(listUnits.stdout, files.exitCode === 0 ? files.stdout : '');
      const relisted = new Set(changed);
      const discovered = changed ? listed.filter((unit) => relisted.has(unit.name)) : listed;
      // Unit definitions are world-readable: read as the login user, so no sudoers rule is needed.
      const run = (argv: readonly string[]) => this.ssh.exec(target, argv, { asLoginUser: true });
      const { definitions, fileHashes } = await readUnitDefinitions(
        run,
        discovered.map((unit) => unit.name),
      );
      // Texts first: once a unit shows a definition hash, the drift diff can show its text.
      await this.storeNewDefinitionTexts(run, definitions, fileHashes);
      if (changed) {
        const present = new Set(discovered.map((unit) => unit.name));
        await this.units.applyChanges(
          host.id,
          discovered,
          changed.filter((name) => !present.has(name)),
        );
      } else {
        await this.units.replaceForHost(host.id, discovered);
      }
      await this.units.recordDefinitions(host.id, definitions);
      await this.hosts.recordContact(host.id, true);
      return discovered.length;
    } catch (error) {
      if (!(error instanceof SshError)) throw error;
      if (error.kind === 'unreachable' || error.kind === 'timed_out') await this.hosts.recordContact(host.id, false);
      this.logger.warn({ hostId, host: host.name, kind: error.kind }, `discovery failed: ${error.message}`);
      return null;
    }
  }

  /**
   * Reads and stores the text of definitions no host has shown before, so that drift can show
   * how two groups differ. Most hosts of a fleet share their definitions: after the first host,
   * this reads nothing. Bounded per discovery; what is left is read by the next one.
   */
  private async storeNewDefinitionTexts(
    run: (argv: readonly string[]) => Promise<ExecResult>,
    definitions: readonly UnitDefinition[],
    fileHashes: ReadonlyMap<string, string>,
  ): Promise<void> {
    const hashes = [...new Set(definitions.flatMap((unit) => unit.definitionHash ?? []))];
    const missing = new Set((await this.units.hashesWithoutText(hashes)).slice(0, NEW_DEFINITIONS_PER_DISCOVERY));
    if (missing.size === 0) return;
    const unread = definitions.filter((unit) => unit.definitionHash !== null && missing.has(unit.definitionHash));
    await this.units.storeDefinitionTexts(await readDefinitionTexts(run, unread, fileHashes));
  }

  /** Queues a discovery of every SSH host (the periodic sweep). */
  async sweep(): Promise<number> {
    const ids = await this.hosts.allIds();
    for (const id of ids) await this.producer.discoverHost(id);
    return ids.length;
  }
}
