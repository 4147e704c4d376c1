import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from './config';

describe('parseConfig', () => {
  it('fills in the defaults', () => {
    assert.deepEqual(parseConfig('{"server": "https://drover.example.com/"}', 'config.json'), {
      server: 'https://drover.example.com',
      stateDir: '/var/lib/drover-agent',
      pollWaitMs: 25_000,
      heartbeatMs: 15_000,
      logLevel: 'info',
    });
  });

  it('names the file and the field that is wrong', () => {
    assert.throws(
      () => parseConfig('{"server": "https://d.example", "pollWaitMs": "fast"}', '/etc/x.json'),
      (error: unknown) =>
        error instanceof ConfigError && /\/etc\/x\.json/.test(error.message) && /pollWaitMs/.test(error.message),
    );
  });

  it('refuses a server that is not an http(s) URL', () => {
    assert.throws(() => parseConfig('{"server": "ftp://d.example"}', 'c'), /server: must be the http\(s\) URL/);
    assert.throws(() => parseConfig('{}', 'c'), /server/);
  });

  it('refuses unknown fields, relative paths and a join token of another kind', () => {
    assert.throws(() => parseConfig('{"server": "https://d.example", "sever": 1}', 'c'), /sever/);
    assert.throws(() => parseConfig('{"server": "https://d.example", "caFile": "ca.pem"}', 'c'), /caFile/);
    assert.throws(() => parseConfig('{"server": "https://d.example", "joinToken": "dra_x"}', 'c'), /joinToken/);
  });

  it('says when the file is not JSON', () => {
    assert.throws(() => parseConfig('server = x', 'c.json'), /c\.json is not valid JSON/);
  });
});
