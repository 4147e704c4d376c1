import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressProblem, webhookUrlProblem } from './webhook-target';

const STRICT = { allowLoopback: false, allowPrivateNetworks: false };
const DEFAULT = { allowLoopback: false, allowPrivateNetworks: true };
const TESTS = { allowLoopback: true, allowPrivateNetworks: true };

describe('addressProblem', () => {
  it('always refuses link-local, metadata, unspecified, multicast and broadcast addresses', () => {
    for (const address of [
      '169.254.169.254',
      '169.254.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '100.100.100.200',
      '192.0.0.192',
      '::',
      'fe80::1',
      'ff02::1',
      'fd00:ec2::254',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '64:ff9b::169.254.169.254',
      '64:ff9b::a9fe:a9fe',
      '::7f00:1',
      '::127.0.0.1',
    ]) {
      assert.match(addressProblem(address, TESTS) ?? '', /link-local|metadata|reserved/, address);
    }
  });

  it('refuses loopback unless allowed, in every spelling', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::7f00:1']) {
      assert.match(addressProblem(address, DEFAULT) ?? '', /loopback/, address);
      assert.equal(addressProblem(address, TESTS), null, address);
    }
  });

  it('refuses private networks only when they are switched off', () => {
    for (const address of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', 'fd12::1']) {
      assert.equal(addressProblem(address, DEFAULT), null, address);
      assert.match(addressProblem(address, STRICT) ?? '', /private/, address);
    }
  });

  it('allows public addresses', () => {
    for (const address of ['93.184.216.34', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
      assert.equal(addressProblem(address, STRICT), null, address);
    }
  });
});

describe('webhookUrlProblem', () => {
  it('accepts http and https URLs with names or public addresses', () => {
    for (const url of [
      'https://ci.example.com/hooks/drover',
      'http://chat.internal:8065/hooks/abc?x=1',
      'https://93.184.216.34/x',
      'https://[2606:4700::1111]/x',
    ]) {
      assert.equal(webhookUrlProblem(url, DEFAULT), null, url);
    }
  });

  it('refuses other schemes, credentials, fragments and text that is no URL', () => {
    assert.match(webhookUrlProblem('ftp://example.com/x', DEFAULT) ?? '', /http/);
    assert.match(webhookUrlProblem('file:///etc/passwd', DEFAULT) ?? '', /http/);
    assert.match(webhookUrlProblem('gopher://example.com', DEFAULT) ?? '', /http/);
    assert.match(webhookUrlProblem('https://user:pass@example.com/', DEFAULT) ?? '', /user name or password/);
    assert.match(webhookUrlProblem('https://example.com/#x', DEFAULT) ?? '', /fragment/);
    assert.match(webhookUrlProblem('example.com/hook', DEFAULT) ?? '', /absolute/);
  });

  it('refuses metadata and loopback hosts written as literals or loopback names', () => {
    assert.match(webhookUrlProblem('http://169.254.169.254/latest/meta-data/', TESTS) ?? '', /link-local/);
    assert.match(webhookUrlProblem('http://[fd00:ec2::254]/', TESTS) ?? '', /metadata/);
    assert.match(webhookUrlProblem('http://[::ffff:169.254.169.254]/', TESTS) ?? '', /link-local/);
    // WHATWG URL parsing normalises other spellings of an IPv4 address first.
    assert.match(webhookUrlProblem('http://2852039166/', TESTS) ?? '', /link-local/);
    assert.match(webhookUrlProblem('http://0xa9.0xfe.0xa9.0xfe/', TESTS) ?? '', /link-local/);
    assert.match(webhookUrlProblem('http://127.0.0.1:9000/', DEFAULT) ?? '', /loopback/);
    assert.match(webhookUrlProblem('http://localhost:9000/', DEFAULT) ?? '', /loopback/);
    assert.match(webhookUrlProblem('http://api.localhost./', DEFAULT) ?? '', /loopback/);
    assert.equal(webhookUrlProblem('http://127.0.0.1:9000/', TESTS), null);
  });
});
