import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  HOST_STATUSES,
  HOST_TRANSPORTS,
  OPERATION_STATUSES,
  ROLLOUT_HOST_STATES,
  ROLLOUT_STATUSES,
  TASK_STATES,
} from '@drover/protocol';
import { $Enums } from '../../generated/prisma/client';

/** The protocol's state lists and the database's enums describe the same rows: they must agree. */
describe('state lists', () => {
  const pairs: [string, readonly string[], Record<string, string>][] = [
    ['HostTransport', HOST_TRANSPORTS, $Enums.HostTransport],
    ['HostStatus', HOST_STATUSES, $Enums.HostStatus],
    ['OperationStatus', OPERATION_STATUSES, $Enums.OperationStatus],
    ['TaskState', TASK_STATES, $Enums.TaskState],
    ['RolloutStatus', ROLLOUT_STATUSES, $Enums.RolloutStatus],
    ['RolloutHostState', ROLLOUT_HOST_STATES, $Enums.RolloutHostState],
  ];
  for (const [name, protocol, database] of pairs) {
    it(`${name} has the same values in the protocol and the database`, () => {
      assert.deepEqual([...protocol].sort(), Object.values(database).sort());
    });
  }
});
