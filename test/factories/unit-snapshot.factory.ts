import type { UnitSnapshot } from '@drover/protocol';

/** A unit as `systemctl show` describes it: nginx.service active and running, as MainPID 100. */
export function unitSnapshot(overrides: Partial<UnitSnapshot> = {}): UnitSnapshot {
  return {
    id: 'nginx.service',
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 100,
    nRestarts: 0,
    unitFileState: 'enabled',
    needDaemonReload: false,
    activeEnterTimestamp: null,
    activeEnterTimestampMonotonic: '0',
    invocationId: 'a',
    canReload: true,
    canStart: true,
    canStop: true,
    result: 'success',
    description: null,
    startLimitBurst: 5,
    startLimitIntervalUSec: '10000000',
    ...overrides,
  };
}
