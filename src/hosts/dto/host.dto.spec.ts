import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FieldError } from '../../common/errors/domain-errors';
import { issuesToFieldErrors } from '../../common/validation/zod-validation.pipe';
import { BulkUpsertHostsDto, CreateHostDto, hostInputSchema, UpdateHostDto } from './host.dto';

const FINGERPRINT = `SHA256:${'Ab0+/'.repeat(8)}xyz`;

/** The field errors the API would answer with for `body`, or [] when it is accepted. */
function bulkErrors(body: unknown): FieldError[] {
  const result = BulkUpsertHostsDto.schema.safeParse(body);
  return result.success ? [] : issuesToFieldErrors(result.error.issues);
}

function fields(errors: FieldError[]): string[] {
  return errors.map((error) => error.field);
}

describe('BulkUpsertHostsDto.schema', () => {
  it('applies the defaults to every host', () => {
    const result = BulkUpsertHostsDto.schema.parse({
      hosts: [
        { name: 'web-01', address: '10.0.0.1' },
        { name: 'web-02', address: 'web-02.example.com', port: 2222 },
      ],
    });
    assert.deepEqual(result, {
      hosts: [
        {
          name: 'web-01',
          address: '10.0.0.1',
          port: 22,
          transport: 'ssh',
          sshUser: 'root',
          hostKeyFingerprint: null,
          labels: {},
        },
        {
          name: 'web-02',
          address: 'web-02.example.com',
          port: 2222,
          transport: 'ssh',
          sshUser: 'root',
          hostKeyFingerprint: null,
          labels: {},
        },
      ],
    });
  });

  it('keeps every field that is given', () => {
    const host = {
      name: 'db.internal',
      address: '2001:db8::1',
      port: 65535,
      transport: 'agent' as const,
      sshUser: 'deploy_bot',
      hostKeyFingerprint: FINGERPRINT,
      labels: { role: 'db', 'example.com/tier': '', env: 'prod' },
    };
    assert.deepEqual(BulkUpsertHostsDto.schema.parse({ hosts: [host] }), { hosts: [host] });
  });

  it('rejects a duplicate name at the later host, pointing at the first', () => {
    assert.deepEqual(
      bulkErrors({
        hosts: [
          { name: 'a', address: '10.0.0.1' },
          { name: 'b', address: '10.0.0.2' },
          { name: 'a', address: '10.0.0.3' },
          { name: 'b', address: '10.0.0.4' },
          { name: 'a', address: '10.0.0.5' },
        ],
      }),
      [
        { field: 'hosts[2].name', message: 'duplicates hosts[0].name' },
        { field: 'hosts[3].name', message: 'duplicates hosts[1].name' },
        { field: 'hosts[4].name', message: 'duplicates hosts[0].name' },
      ],
    );
  });

  it('reports duplicates alongside other errors in the same request', () => {
    const errors = bulkErrors({
      hosts: [
        { name: 'a', address: '10.0.0.1' },
        { name: 'a', address: '10.0.0.2', port: 0 },
      ],
    });
    assert.deepEqual(fields(errors).sort(), ['hosts[1].name', 'hosts[1].port']);
  });

  it('names a bad label key or value by host index and label key', () => {
    const errors = bulkErrors({
      hosts: [
        { name: 'a', address: '10.0.0.1', labels: { role: 'web' } },
        { name: 'b', address: '10.0.0.2', labels: { 'bad key': 'x', env: '-prod', 'Example.com/role': 'web' } },
      ],
    });
    assert.deepEqual(fields(errors), [
      'hosts[1].labels.bad key',
      'hosts[1].labels.env',
      'hosts[1].labels.Example.com/role',
    ]);
    assert.match(errors[0]?.message ?? '', /label key 'bad key'/);
    assert.match(errors[1]?.message ?? '', /label value '-prod'/);
    assert.match(errors[2]?.message ?? '', /prefix 'Example.com'/);
  });

  it('rejects label keys and values longer than 63 characters', () => {
    assert.deepEqual(fields(bulkErrors({ hosts: [{ name: 'a', address: 'h', labels: { ['k'.repeat(64)]: 'v' } }] })), [
      `hosts[0].labels.${'k'.repeat(64)}`,
    ]);
    assert.deepEqual(fields(bulkErrors({ hosts: [{ name: 'a', address: 'h', labels: { k: 'v'.repeat(64) } }] })), [
      'hosts[0].labels.k',
    ]);
  });

  it('rejects more than 64 labels on a host', () => {
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    const errors = bulkErrors({ hosts: [{ name: 'a', address: 'h', labels }] });
    assert.deepEqual(errors, [{ field: 'hosts[0].labels', message: 'at most 64 labels per host' }]);
    const sixtyFour = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v']));
    assert.deepEqual(bulkErrors({ hosts: [{ name: 'a', address: 'h', labels: sixtyFour }] }), []);
  });

  it('rejects fingerprints that are not OpenSSH SHA256 fingerprints', () => {
    for (const fingerprint of [
      'SHA256:abc',
      `SHA256:${'A'.repeat(42)}`,
      `SHA256:${'A'.repeat(44)}`,
      `SHA256:${'A'.repeat(42)}=`,
      `SHA256:${'A'.repeat(42)}-`,
      `sha256:${'A'.repeat(43)}`,
      `MD5:${'A'.repeat(43)}`,
      'aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99',
      '',
    ]) {
      assert.deepEqual(
        fields(bulkErrors({ hosts: [{ name: 'a', address: 'h', hostKeyFingerprint: fingerprint }] })),
        ['hosts[0].hostKeyFingerprint'],
        fingerprint,
      );
    }
  });

  it('accepts a null fingerprint', () => {
    assert.deepEqual(bulkErrors({ hosts: [{ name: 'a', address: 'h', hostKeyFingerprint: null }] }), []);
  });

  it('rejects ports out of range or not integers', () => {
    for (const port of [0, -1, 65536, 22.5, '22', Number.NaN]) {
      assert.deepEqual(
        fields(bulkErrors({ hosts: [{ name: 'a', address: 'h', port }] })),
        ['hosts[0].port'],
        String(port),
      );
    }
    for (const port of [1, 22, 65535]) {
      assert.deepEqual(bulkErrors({ hosts: [{ name: 'a', address: 'h', port }] }), [], String(port));
    }
  });

  it('names unknown fields by their full path', () => {
    assert.deepEqual(
      bulkErrors({
        hosts: [
          { name: 'a', address: 'h' },
          { name: 'b', address: 'h', extra: 1 },
        ],
        dryRun: true,
      }),
      [
        { field: 'hosts[1].extra', message: 'is not a known field' },
        { field: 'dryRun', message: 'is not a known field' },
      ],
    );
  });

  it('rejects bad names, addresses, transports and SSH users at their host', () => {
    const bad = [
      { host: { name: '-a', address: 'h' }, field: 'hosts[0].name' },
      { host: { name: 'a b', address: 'h' }, field: 'hosts[0].name' },
      { host: { name: 'a'.repeat(254), address: 'h' }, field: 'hosts[0].name' },
      { host: { name: 'a', address: 'not an address' }, field: 'hosts[0].address' },
      { host: { name: 'a', address: '-h.example' }, field: 'hosts[0].address' },
      { host: { name: 'a', address: 'h', transport: 'telnet' }, field: 'hosts[0].transport' },
      { host: { name: 'a', address: 'h', sshUser: 'Root' }, field: 'hosts[0].sshUser' },
      { host: { name: 'a', address: 'h', sshUser: 'root; reboot' }, field: 'hosts[0].sshUser' },
      { host: { address: 'h' }, field: 'hosts[0].name' },
      { host: { name: 'a' }, field: 'hosts[0].address' },
    ];
    for (const { host, field } of bad) {
      assert.deepEqual(fields(bulkErrors({ hosts: [host] })), [field], JSON.stringify(host));
    }
  });

  it('rejects an empty host list and a missing one', () => {
    assert.deepEqual(fields(bulkErrors({ hosts: [] })), ['hosts']);
    assert.deepEqual(fields(bulkErrors({})), ['hosts']);
  });

  it('reports a duplicate for every repeated name and for none of the distinct ones', () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 12 }), (names) => {
        const errors = bulkErrors({ hosts: names.map((n) => ({ name: n, address: '10.0.0.1' })) });
        const expected = names.flatMap((n, i) => {
          const first = names.indexOf(n);
          return first === i ? [] : [{ field: `hosts[${i}].name`, message: `duplicates hosts[${first}].name` }];
        });
        assert.deepEqual(errors, expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe('CreateHostDto and UpdateHostDto', () => {
  it('creates with the same schema and defaults as one bulk host', () => {
    assert.equal(CreateHostDto.schema, hostInputSchema);
    assert.deepEqual(CreateHostDto.schema.parse({ name: 'a', address: 'h' }), {
      name: 'a',
      address: 'h',
      port: 22,
      transport: 'ssh',
      sshUser: 'root',
      hostKeyFingerprint: null,
      labels: {},
    });
  });

  it('updates only the fields given, without defaults, and never the name', () => {
    assert.deepEqual(UpdateHostDto.schema.parse({}), {});
    assert.deepEqual(UpdateHostDto.schema.parse({ port: 2222 }), { port: 2222 });
    assert.deepEqual(UpdateHostDto.schema.parse({ hostKeyFingerprint: null }), { hostKeyFingerprint: null });
    const result = UpdateHostDto.schema.safeParse({ name: 'renamed' });
    assert.equal(result.success, false);
    assert.deepEqual(fields(issuesToFieldErrors(result.error?.issues ?? [])), ['name']);
  });
});
