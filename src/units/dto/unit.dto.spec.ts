import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SudoersRequestDto } from '../../access/dto/sudoers.dto';
import { AuditQueryDto } from '../../audit/dto/audit.dto';
import { CreateOperationDto, HostActionDto, ListOperationsQueryDto } from '../../operations/dto/operation.dto';
import { ListRolloutsQueryDto, RolloutStrategyDto } from '../../rollouts/dto/rollout.dto';
import { ListUnitsQueryDto } from './unit.dto';

describe('unitNameSchema', () => {
  it('is applied by every request schema that takes a unit name, so all of them record nginx.service', () => {
    const parsed = {
      operation: CreateOperationDto.schema.parse({ verb: 'restart', unit: 'nginx', selector: '' }).unit,
      hostAction: HostActionDto.schema.parse({ verb: 'restart', unit: 'nginx' }).unit,
      rollout: RolloutStrategyDto.schema.parse({ unit: 'nginx', selector: '' }).unit,
      unitsQuery: ListUnitsQueryDto.schema.parse({ name: 'nginx' }).name,
      operationsQuery: ListOperationsQueryDto.schema.parse({ unit: 'nginx' }).unit,
      rolloutsQuery: ListRolloutsQueryDto.schema.parse({ unit: 'nginx' }).unit,
      auditQuery: AuditQueryDto.schema.parse({ unit: 'nginx' }).unit,
      sudoers: SudoersRequestDto.schema.parse({ user: 'deploy', verbs: ['restart'], units: ['nginx'] }).units[0],
    };
    for (const [where, unit] of Object.entries(parsed)) assert.equal(unit, 'nginx.service', where);
    assert.equal(RolloutStrategyDto.schema.parse({ unit: 'api-*.service', selector: '' }).unit, 'api-*.service');
    assert.equal(HostActionDto.schema.parse({ verb: 'restart', unit: 'a.b' }).unit, 'a.b.service');
  });

  it('still rejects what systemctl would have to escape, and a leading "-"', () => {
    for (const unit of ['nginx; reboot', '$(id)', '-H', '--now', 'a/b', 'ngïnx', '@x']) {
      assert.equal(HostActionDto.schema.safeParse({ verb: 'restart', unit }).success, false, unit);
    }
  });
});
