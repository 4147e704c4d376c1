import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { unifiedDiff } from './unified-diff';

const base = [
  '# /lib/systemd/system/web.service',
  '[Service]',
  'Type=simple',
  'ExecStart=/usr/bin/web',
  'Restart=no',
  '',
].join('\n');

describe('unifiedDiff', () => {
  it('shows the changed line with its context, headed by the short hashes', () => {
    const changed = base.replace('Restart=no', 'Restart=always');
    const text = unifiedDiff(base, changed, 'a'.repeat(64), 'b'.repeat(64));
    const lines = text.split('\n');
    assert.ok(lines.includes(`--- ${'a'.repeat(12)}`), text);
    assert.ok(lines.includes(`+++ ${'b'.repeat(12)}`), text);
    assert.ok(lines.includes('-Restart=no'), text);
    assert.ok(lines.includes('+Restart=always'), text);
    assert.ok(lines.includes(' ExecStart=/usr/bin/web'), text);
  });

  it('shows an added drop-in as added lines', () => {
    const withDropIn = `${base}\n# /etc/systemd/system/web.service.d/limits.conf\n[Service]\nLimitNOFILE=65536\n`;
    const text = unifiedDiff(base, withDropIn, 'a'.repeat(64), 'b'.repeat(64));
    assert.ok(text.includes('+# /etc/systemd/system/web.service.d/limits.conf'), text);
    assert.ok(text.includes('+LimitNOFILE=65536'), text);
    assert.ok(!text.includes('-Restart=no'), text);
  });

  it('has no hunk for equal texts', () => {
    assert.ok(!unifiedDiff(base, base, 'a'.repeat(64), 'b'.repeat(64)).includes('@@'));
  });
});
