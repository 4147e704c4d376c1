import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_DIAGNOSTICS_CHARS } from '@drover/protocol';
import { firstUsefulLine, journalSinceArgv, renderDiagnostics, statusArgv } from './diagnostics';

/** What `journalctl --output=short-iso -u nginx.service` printed on a fleet host with a broken config. */
const BROKEN_NGINX = [
  '2026-12-02T04:40:01+00:00 fleet-01 systemd[1]: Starting nginx.service - A high performance web server and a reverse proxy server...',
  '2026-12-02T04:40:01+00:00 fleet-01 nginx[812]: 2026/12/02 04:40:01 [emerg] 812#812: unknown directive "oops" in /etc/nginx/nginx.conf:1',
  '2026-12-02T04:40:01+00:00 fleet-01 nginx[812]: nginx: configuration file /etc/nginx/nginx.conf test failed',
  '2026-12-02T04:40:01+00:00 fleet-01 systemd[1]: nginx.service: Control process exited, code=exited, status=1/FAILURE',
  "2026-12-02T04:40:01+00:00 fleet-01 systemd[1]: nginx.service: Failed with result 'exit-code'.",
].join('\n');

describe('failure diagnostics', () => {
  it('reads the unit’s status and its journal since the action began, by the host’s clock or by seconds ago', () => {
    assert.deepEqual(statusArgv('nginx.service'), [
      'systemctl',
      'status',
      '--no-pager',
      '--full',
      '--lines=0',
      '--',
      'nginx.service',
    ]);
    assert.ok(
      journalSinceArgv('nginx.service', { hostClockUs: 1_764_650_401_999_999 }).includes('--since=@1764650401'),
    );
    assert.ok(journalSinceArgv('nginx.service', { secondsAgo: 3.2 }).includes('--since=-4s'));
    assert.ok(journalSinceArgv('nginx.service', { secondsAgo: 3.2 }).includes('--unit=nginx.service'));
    assert.throws(() => statusArgv('--global'), /unit/i);
  });

  it('sums a failure up in the unit’s own first line that sounds like trouble, not systemd’s bookkeeping', () => {
    assert.equal(
      firstUsefulLine(BROKEN_NGINX),
      '2026/12/02 04:40:01 [emerg] 812#812: unknown directive "oops" in /etc/nginx/nginx.conf:1',
    );
  });

  it('falls back to the unit’s first line, and to nothing when only systemd spoke', () => {
    const quiet = '2026-12-02T04:40:01+00:00 h app[9]: starting up\n2026-12-02T04:40:02+00:00 h app[9]: bye';
    assert.equal(firstUsefulLine(quiet), 'starting up');
    const systemdOnly = BROKEN_NGINX.split('\n')
      .filter((line) => line.includes('systemd[1]'))
      .join('\n');
    assert.equal(firstUsefulLine(systemdOnly), null);
    assert.equal(firstUsefulLine(''), null);
  });

  it('keeps the tail of diagnostics longer than their bound', () => {
    const text = renderDiagnostics('x'.repeat(MAX_DIAGNOSTICS_CHARS), 'the last line');
    assert.equal(text.length, MAX_DIAGNOSTICS_CHARS);
    assert.ok(text.startsWith('…'));
    assert.ok(text.endsWith('the last line'));
    assert.match(renderDiagnostics('', ''), /\(nothing\)[\s\S]*\(no lines\)/);
  });
});
