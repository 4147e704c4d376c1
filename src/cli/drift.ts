import type { Schemas } from '../client';
import { renderTable } from './table';

type Drift = Schemas['UnitDrift'];

function hostList(sample: { hosts: number; hostNames: string[] }): string {
  const more = sample.hosts - sample.hostNames.length;
  return `${sample.hostNames.join(', ')}${more > 0 ? `, … ${more} more` : ''}`;
}

/** `drover units drift`: the groups as a table, then what else differs, then the diff. */
export function renderDrift(drift: Drift): string {
  const scope = drift.selector === '' ? 'host(s)' : `host(s) matching ${drift.selector}`;
  const out: string[] = [];
  const definitions = drift.groups.filter((group) => group.definitionHash !== null).length;
  out.push(
    `${drift.unit} on ${drift.hosts} ${scope}: ${definitions} definition(s)` +
      (drift.absent.hosts > 0 ? `; absent on ${drift.absent.hosts}` : '') +
      '\n\n',
  );
  if (drift.groups.length > 0) {
    out.push(
      renderTable(
        ['DEFINITION', 'HOSTS', 'TYPE', 'RESTART', 'FILES', 'E.G.'],
        drift.groups.map((group) => [
          group.definitionHash === null ? '(unknown)' : group.definitionHash.slice(0, 12),
          String(group.hosts),
          group.serviceType ?? '-',
          group.restart ?? '-',
          [group.fragmentPath ?? '-', ...group.dropInPaths].join(' + '),
          hostList(group),
        ]),
      ),
    );
  }
  if (drift.absent.hosts > 0) out.push(`\nabsent on: ${hostList(drift.absent)}\n`);
  if (drift.needDaemonReload.hosts > 0) {
    out.push(
      `\nneeds daemon-reload (files changed on disk; a restart would run the old definition): ${hostList(drift.needDaemonReload)}\n`,
    );
  }
  if (drift.flapping.length > 0) {
    out.push('\nflapping (restarted on its own between the last two discoveries):\n');
    out.push(
      renderTable(
        ['HOST', 'RESTARTS', 'GREW BY', 'SEEN'],
        drift.flapping.map((row) => [
          row.hostName,
          row.nRestarts === null ? '-' : String(row.nRestarts),
          `+${row.restartsGrewBy}`,
          row.refreshedAt,
        ]),
      ),
    );
  }
  out.push(
    drift.diff === null ? `\nno diff: ${drift.diffUnavailable ?? 'nothing to compare'}\n` : `\n${drift.diff.text}`,
  );
  return out.join('');
}
