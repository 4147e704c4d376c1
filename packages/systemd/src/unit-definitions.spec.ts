import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CommandResult } from './host';
import {
  acceptReportedDefinition,
  definitionFiles,
  definitionHash,
  definitionShowArgv,
  definitionText,
  hashFilesArgv,
  isSafeUnitFilePath,
  parseCatOutput,
  parseDefinitionShow,
  parseFileHashes,
  readDefinitionTexts,
  readUnitDefinitions,
  reportDefinitions,
} from './unit-definitions';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

// As systemd 252 prints `systemctl show -p Id,FragmentPath,... -- nginx.service nope.service systemd-journald.socket`.
const SHOWN = [
  'Type=forking',
  'Restart=no',
  'NRestarts=3',
  'Id=nginx.service',
  'FragmentPath=/lib/systemd/system/nginx.service',
  'DropInPaths=/etc/systemd/system/nginx.service.d/a.conf /run/systemd/system/nginx.service.d/b.conf',
  'NeedDaemonReload=yes',
  '',
  'Type=',
  'Restart=no',
  'NRestarts=0',
  'Id=nope.service',
  'FragmentPath=',
  'DropInPaths=',
  'NeedDaemonReload=no',
  '',
  'Id=systemd-journald.socket',
  'FragmentPath=/lib/systemd/system/systemd-journald.socket',
  'DropInPaths=',
  'NeedDaemonReload=no',
  '',
].join('\n');

const FILES: Record<string, string> = {
  '/lib/systemd/system/nginx.service': '[Service]\nType=forking\n',
  '/etc/systemd/system/nginx.service.d/a.conf': '[Service]\nRestart=always\n',
  '/run/systemd/system/nginx.service.d/b.conf': '[Service]\nLimitNOFILE=8192',
  '/lib/systemd/system/systemd-journald.socket': '[Socket]\n',
};

/** A host whose commands are answered from FILES (what the functions run is checked too). */
function fakeHost(files: Record<string, string>, ran: string[][] = []) {
  const answer = (argv: readonly string[]): CommandResult => {
    ran.push([...argv]);
    if (argv[0] === 'systemctl' && argv[1] === 'show') return { exitCode: 0, stdout: SHOWN, stderr: '' };
    if (argv[0] === 'systemctl' && argv[1] === 'cat') {
      const facts = parseDefinitionShow(SHOWN);
      const printed = argv.slice(4).map((unit) =>
        definitionFiles(facts.get(unit)!)
          .map((path) => `# ${path}\n${files[path] ?? ''}`)
          .join('\n'),
      );
      return { exitCode: 0, stdout: printed.join('\n'), stderr: '' };
    }
    const paths = argv.slice(2);
    if (argv[0] === 'sha256sum') {
      const readable = paths.filter((path) => path in files);
      return {
        exitCode: readable.length === paths.length ? 0 : 1,
        stdout: readable.map((path) => `${sha(files[path]!)}  ${path}\n`).join(''),
        stderr: '',
      };
    }
    throw new Error(`unexpected ${argv.join(' ')}`);
  };
  return (argv: readonly string[]) => Promise.resolve().then(() => answer(argv));
}

describe('unit definitions', () => {
  it('reads every block of systemctl show, services with Type/Restart/NRestarts, others without', () => {
    const facts = parseDefinitionShow(SHOWN);
    assert.deepEqual(facts.get('nginx.service'), {
      name: 'nginx.service',
      fragmentPath: '/lib/systemd/system/nginx.service',
      dropInPaths: ['/etc/systemd/system/nginx.service.d/a.conf', '/run/systemd/system/nginx.service.d/b.conf'],
      serviceType: 'forking',
      restart: 'no',
      nRestarts: 3,
      needDaemonReload: true,
    });
    assert.equal(facts.get('nope.service')?.fragmentPath, null);
    assert.deepEqual(facts.get('systemd-journald.socket')?.serviceType, null);
    assert.equal(facts.get('systemd-journald.socket')?.nRestarts, null);
  });

  it('refuses a block without an Id rather than guess whose it is', () => {
    assert.throws(() => parseDefinitionShow('Type=simple\nRestart=no\n'), /without Id=/);
  });

  it('builds argv from valid unit names and plain absolute paths only', () => {
    assert.deepEqual(definitionShowArgv(['a.service']).slice(-2), ['--', 'a.service']);
    assert.throws(() => definitionShowArgv(['a service']));
    assert.equal(isSafeUnitFilePath('/etc/systemd/system/getty@tty1.service.d/x.conf'), true);
    for (const bad of ['relative/x.service', '/etc/../shadow', '/a b/x', '/x;rm -rf', '/x\nyz', '/x$(id)']) {
      assert.equal(isSafeUnitFilePath(bad), false, bad);
      assert.throws(() => hashFilesArgv([bad]), /not a plain absolute path/);
    }
  });

  it('hashes a definition over its files in order; any change, a missing file or no file tells', () => {
    const facts = parseDefinitionShow(SHOWN).get('nginx.service')!;
    const hashes = new Map(Object.entries(FILES).map(([path, text]) => [path, sha(text)]));
    const hash = definitionHash(facts, hashes);
    assert.match(hash ?? '', /^[0-9a-f]{64}$/);
    const edited = new Map(hashes).set('/run/systemd/system/nginx.service.d/b.conf', sha('other'));
    assert.notEqual(definitionHash(facts, edited), hash);
    const reordered = { ...facts, dropInPaths: [...facts.dropInPaths].reverse() };
    assert.notEqual(definitionHash(reordered, hashes), hash);
    const missing = new Map(hashes);
    missing.delete('/etc/systemd/system/nginx.service.d/a.conf');
    assert.equal(definitionHash(facts, missing), null);
    assert.equal(definitionHash(parseDefinitionShow(SHOWN).get('nope.service')!, hashes), null);
  });

  it('reads sha256sum lines, skipping its error output', () => {
    const output = `${'a'.repeat(64)}  /lib/x.service\n${'b'.repeat(64)} */lib/y.service\n`;
    assert.deepEqual(
      [...parseFileHashes(output)],
      [
        ['/lib/x.service', 'a'.repeat(64)],
        ['/lib/y.service', 'b'.repeat(64)],
      ],
    );
  });

  it('writes the text as systemctl cat does, and only from contents that still match their hashes', () => {
    const facts = parseDefinitionShow(SHOWN).get('nginx.service')!;
    const hashes = new Map(Object.entries(FILES).map(([path, text]) => [path, sha(text)]));
    const contents = new Map(Object.entries(FILES));
    assert.equal(
      definitionText(facts, hashes, contents),
      '# /lib/systemd/system/nginx.service\n[Service]\nType=forking\n\n' +
        '# /etc/systemd/system/nginx.service.d/a.conf\n[Service]\nRestart=always\n\n' +
        '# /run/systemd/system/nginx.service.d/b.conf\n[Service]\nLimitNOFILE=8192',
    );
    contents.set('/lib/systemd/system/nginx.service', 'changed meanwhile');
    assert.equal(definitionText(facts, hashes, contents), null);
  });

  it('splits systemctl cat output by the expected headers, keeping only contents that match their hashes', () => {
    const facts = parseDefinitionShow(SHOWN);
    const nginx = { ...facts.get('nginx.service')!, definitionHash: 'n'.repeat(64) };
    const socket = { ...facts.get('systemd-journald.socket')!, definitionHash: 's'.repeat(64) };
    const hashes = new Map(Object.entries(FILES).map(([path, text]) => [path, sha(text)]));
    const printed = (nginxNote: string) =>
      `# /lib/systemd/system/nginx.service\n[Service]\nType=forking\n\n` +
      `# /etc/systemd/system/nginx.service.d/a.conf\n[Service]\nRestart=always\n\n` +
      `# /run/systemd/system/nginx.service.d/b.conf\n[Service]\nLimitNOFILE=8192${nginxNote}\n` +
      `# /lib/systemd/system/systemd-journald.socket\n[Socket]\n`;
    const texts = parseCatOutput(printed(''), [nginx, socket], hashes);
    assert.equal(texts.get('s'.repeat(64)), '# /lib/systemd/system/systemd-journald.socket\n[Socket]\n');
    assert.match(texts.get('n'.repeat(64)) ?? '', /LimitNOFILE=8192$/);
    // Something printed between two files (a note for a masked unit): the file before it no longer
    // matches its hash and is left out; the others are still read.
    const noted = parseCatOutput(printed('\n# Unit other.service is masked.'), [nginx, socket], hashes);
    assert.deepEqual([...noted.keys()], ['s'.repeat(64)]);
  });

  it('reads definitions in two commands, and texts once per definition and file', async () => {
    const ran: string[][] = [];
    const run = fakeHost(FILES, ran);
    const { definitions, fileHashes } = await readUnitDefinitions(run, [
      'nginx.service',
      'nope.service',
      'systemd-journald.socket',
    ]);
    assert.deepEqual(
      ran.map((argv) => argv[0]),
      ['systemctl', 'sha256sum'],
    );
    assert.equal(definitions.length, 3);
    assert.equal(definitions.find((unit) => unit.name === 'nope.service')?.definitionHash, null);
    ran.length = 0;
    const texts = await readDefinitionTexts(run, [...definitions, ...definitions], fileHashes);
    assert.equal(texts.size, 2);
    assert.deepEqual(ran, [['systemctl', 'cat', '--no-pager', '--', 'nginx.service', 'systemd-journald.socket']]);
    assert.match(texts.get(definitions[0]!.definitionHash!) ?? '', /^# \/lib\/systemd\/system\/nginx.service\n/);
  });

  it('gives no hash to a unit whose file vanished, and still hashes the others', async () => {
    const files = { ...FILES };
    delete files['/etc/systemd/system/nginx.service.d/a.conf'];
    const { definitions } = await readUnitDefinitions(fakeHost(files), ['nginx.service', 'systemd-journald.socket']);
    assert.equal(definitions.find((unit) => unit.name === 'nginx.service')?.definitionHash, null);
    assert.match(
      definitions.find((unit) => unit.name === 'systemd-journald.socket')?.definitionHash ?? '',
      /^[0-9a-f]{64}$/,
    );
  });

  it("accepts an agent's report: the hash computed from its file hashes, the text only when it matches them", async () => {
    const run = fakeHost(FILES);
    const { definitions, fileHashes } = await readUnitDefinitions(run, ['nginx.service']);
    const texts = await readDefinitionTexts(run, definitions, fileHashes);
    const [reported] = reportDefinitions(definitions, fileHashes, texts);
    const accepted = acceptReportedDefinition(reported!);
    assert.equal(accepted.definition.definitionHash, definitions[0]!.definitionHash);
    assert.equal(accepted.text, texts.get(definitions[0]!.definitionHash!));
    // A text that does not match the files it claims is not kept; the hash follows the files sent.
    const forged = acceptReportedDefinition({ ...reported!, text: reported!.text!.replace('forking', 'simple') });
    assert.equal(forged.text, null);
    const otherFiles = acceptReportedDefinition({
      ...reported!,
      fileHashes: reported!.fileHashes.map((file) => ({ ...file, sha256: sha('x') })),
    });
    assert.notEqual(otherFiles.definition.definitionHash, definitions[0]!.definitionHash);
    assert.equal(otherFiles.text, null);
  });
});
