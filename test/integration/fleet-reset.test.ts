import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { setFrozen, setPartitioned } from '../support/faults';
import { FleetInventory, readFleetInventory, sshExec } from '../support/fleet';
import { onHost } from '../support/rollouts';

const run = promisify(execFile);
const FLEET = path.resolve(__dirname, '../../../test/fleet/fleet.sh');

type FleetHost = FleetInventory['hosts'][number];

/** Unit state that a test can change and the image fixes, as one comparable text per host. */
const UNIT_STATE = [
  'systemctl is-enabled nginx.service drover-probe.service ssh.service',
  'systemctl is-active nginx.service drover-probe.service ssh.service',
  'systemctl show -p DropInPaths --value nginx.service drover-probe.service',
  'sha256sum /lib/systemd/system/drover-probe.service /usr/local/lib/drover-probe/drover-probe',
  'ls -A /etc/systemd/system /run/systemd/system /etc/sudoers.d /etc/init.d',
].join('; ');

/**
 * `fleet.sh reset`, which the runner (scripts/test.sh) runs before every integration file: whatever
 * a file left on the hosts, the next one starts from the image's units.
 */
describe('resetting the fleet between test files', () => {
  let hosts: FleetHost[];

  before(async () => {
    hosts = (await readFleetInventory()).hosts;
    assert.ok(hosts.length >= 4, 'the suite boots at least 4 hosts');
  });

  it('puts back unit files, drop-ins, masks and enablement, and leaves the standard units active', async () => {
    const [dirty, untouched] = [hosts[0]!, hosts[3]!];
    const image = await onHost(untouched, UNIT_STATE);
    await onHost(
      dirty,
      [
        'mkdir -p /etc/systemd/system/nginx.service.d /run/systemd/system/nginx.service.d',
        'printf "[Service]\\nEnvironment=LEFT_BY_A_TEST=1\\n" > /etc/systemd/system/nginx.service.d/left.conf',
        'printf "[Service]\\nExecStartPre=/bin/false\\n" > /run/systemd/system/nginx.service.d/broken.conf',
        "echo '# edited by a test' >> /lib/systemd/system/drover-probe.service",
        'echo "# replaced by a test" > /usr/local/lib/drover-probe/drover-probe',
        'systemctl disable --quiet nginx.service',
        'systemctl stop drover-probe.service',
        'systemctl mask --quiet drover-probe.service',
        'echo "drover ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/left-by-a-test',
        'printf "#!/bin/sh\\n" > /etc/init.d/left-by-a-test',
        'systemctl daemon-reload',
      ].join(' && '),
    );
    assert.notEqual(await onHost(dirty, UNIT_STATE), image, 'the host was changed');

    const { stdout } = await run('bash', [FLEET, 'reset']);
    assert.equal(await onHost(dirty, UNIT_STATE), image, 'the host has the units of the image again');
    for (const undone of [
      'removed /etc/systemd/system/nginx.service.d',
      'removed /etc/systemd/system/drover-probe.service',
      'restored /usr/lib/systemd/system/drover-probe.service',
      'restored /usr/local/lib/drover-probe/drover-probe',
      'restored /etc/systemd/system/multi-user.target.wants/nginx.service',
      'removed /etc/sudoers.d/left-by-a-test',
      'removed /etc/init.d/left-by-a-test',
      'removed /run/systemd/system/nginx.service.d',
      'restarted nginx.service',
      'restarted drover-probe.service',
    ]) {
      assert.ok(stdout.includes(`${dirty.name}: ${undone}`), `reset says "${undone}":\n${stdout}`);
    }
    assert.ok(!stdout.includes(`${untouched.name}:`), `nothing to do on ${untouched.name}:\n${stdout}`);
    // The environment of the running nginx is the image's: the restart dropped the test's variable.
    const pid = await onHost(dirty, 'systemctl show -p MainPID --value nginx.service');
    assert.doesNotMatch(await onHost(dirty, `tr '\\0' '\\n' < /proc/${pid}/environ`), /LEFT_BY_A_TEST/);

    const again = await run('bash', [FLEET, 'reset']);
    assert.match(again.stdout, /\(0 change\(s\)\)/, `a second reset finds nothing to undo:\n${again.stdout}`);
  });

  it('thaws a frozen host and reconnects a cut-off one that a test left so', async () => {
    const [frozen, cutOff] = [hosts[1]!, hosts[2]!];
    await setFrozen(frozen, true);
    await setPartitioned(cutOff, true);
    const unreachable = await Promise.allSettled(
      [frozen, cutOff].map((host) => sshExec({ ...host }, host.hostKeyFingerprint, 'true')),
    );
    assert.ok(
      unreachable.every((result) => result.status === 'rejected'),
      'neither host answers before the reset',
    );

    const { stdout } = await run('bash', [FLEET, 'reset']);
    assert.ok(stdout.includes(`${frozen.name}: thawed`), stdout);
    assert.ok(stdout.includes(`${cutOff.name}: reconnected`), stdout);
    for (const host of [frozen, cutOff]) {
      assert.equal(await onHost(host, 'systemctl is-system-running'), 'running', `${host.name} answers again`);
    }
  });
});
