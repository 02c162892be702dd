// The btcfed CLI as an operator types it (the real binary, real files): per-command help that
// never starts anything, exit codes, the inspection commands on a real member dir, `config check`
// on broken files, and `status` and `submit` against a member that is not running.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { dumpText } from '../cli/client.ts';

const root = path.resolve(import.meta.dirname, '..');
const btcfed = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, 'cli/main.ts'), ...args], { cwd, encoding: 'utf8', timeout: 60_000 });

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-cli-'));
  const made = btcfed(dir, 'init', '--out', 'fed', '--members', '4', '--base-port', '27300');
  assert.equal(made.status, 0, made.stderr);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('every command has its own help on stdout, exit 0, and starts nothing', () => {
  for (const cmd of [['devnet'], ['init'], ['member', 'init'], ['member', 'join'], ['member', 'rotate'], ['genesis'], ['status'], ['submit'], ['watch'], ['evidence'], ['verify'],
    ['admin'], ['reconfigure', 'propose'], ['reconfigure', 'approve'], ['reconfigure', 'assemble'], ['reconfigure', 'inspect'], ['cert', 'issue'], ['cert', 'check'], ['cert', 'renew'], ['keygen'], ['show-node-id'], ['show-validator'], ['config', 'check'], ['firewall']]) {
    const h = btcfed(dir, ...cmd, '--help');
    assert.equal(h.status, 0, `${cmd.join(' ')} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`^Usage: btcfed ${cmd.join(' ')} `), cmd.join(' '));
    assert.equal(h.stderr, '');
  }
  assert.equal(btcfed(dir, 'help', 'submit').status, 0);
  assert.equal(btcfed(dir, '-h').status, 0);
  assert.equal(fs.existsSync(path.join(dir, '.devnet')), false, 'devnet --help made nothing');
  const bare = btcfed(dir);
  assert.equal(bare.status, 2, 'btcfed alone is usage');
  assert.match(bare.stderr, /^Usage: btcfed/);
});

test('help, --version and a usage error load none of the modules commands run (gRPC, libp2p, LMDB, the config schema)', () => {
  // Every module the CLI resolves, recorded by a resolve hook loaded before it.
  const hook = `import { registerHooks } from 'node:module'; import { writeFileSync } from 'node:fs';
    const seen = []; registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r; } });
    process.on('exit', () => writeFileSync(process.env.BTCFED_TEST_LOADED, seen.join('\\n')));`;
  const loaded = (...args: string[]): string[] => {
    const out = path.join(dir, 'loaded.txt');
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, path.join(root, 'cli/main.ts'), ...args],
      { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, BTCFED_TEST_LOADED: out } });
    assert.notEqual(r.status, null, r.stderr);
    return fs.readFileSync(out, 'utf8').split('\n');
  };
  const heavy = /@grpc\/grpc-js|@libp2p|lmdb|\/zod\/|libs\/config\/index\.ts|cli\/client\.ts|cli\/member\.ts/;
  for (const args of [['--version'], ['--help'], ['status', '--help'], ['submit', '--count', 'x']]) {
    const got = loaded(...args);
    assert.ok(got.some((u) => u.endsWith('cli/main.ts')), `the hook saw the CLI load (${args.join(' ')})`);
    assert.deepEqual(got.filter((u) => heavy.test(u)), [], `btcfed ${args.join(' ')} loaded no command's modules`);
  }
  // And a command that runs does load what it needs.
  assert.ok(loaded('status', '--member', path.join(dir, 'nowhere')).some((u) => u.includes('@grpc/grpc-js')), 'status loaded gRPC');
});

test('a federation btcfed makes has idle views (a 10 s heartbeat) unless told --idle-heartbeat 0', () => {
  const heartbeat = (member: string) => String(parse(fs.readFileSync(path.join(member, 'conf.yaml'), 'utf8')).consensus?.idle_heartbeat ?? 0);
  assert.equal(heartbeat(path.join(dir, 'fed', 'm0')), '10s', 'init without the flag');
  assert.match(fs.readFileSync(path.join(dir, 'fed', 'genesis.yaml'), 'utf8'), /idle_heartbeat: 10s/, 'in the genesis every member takes it from');
  const every = btcfed(dir, 'init', '--out', 'every-view', '--members', '1', '--base-port', '27400', '--idle-heartbeat', '0');
  assert.equal(every.status, 0, every.stderr);
  assert.match(heartbeat(path.join(dir, 'every-view', 'm0')), /^0s?$/, '--idle-heartbeat 0: a block every view');
});

test('bad option values are usage errors that name the option', () => {
  const cases: Array<[string[], RegExp]> = [
    [['submit', '--count', 'x'], /option '--count <n>' argument 'x' is invalid. must be a non-negative integer/],
    [['submit', '--timeout', 'soon'], /--timeout <duration>' argument 'soon' is invalid/],
    [['init', '--out', 'x', '--param-set', 'rsa'], /unknown parameter set "rsa"/],
    [['verify', '--height', '1', '--tx', 'zz'], /64 hex digits/],
    [['admin', 'reboot'], /Allowed choices are pause, resume, force-view-change, unmute, dump/],
    [['submit', '--member', 'fed/m0'], /nothing to submit/],
  ];
  for (const [args, why] of cases) {
    const r = btcfed(dir, ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^btcfed: /);
    assert.match(r.stderr, why);
  }
});

test('show-node-id and show-validator print what conf.yaml and the card say', () => {
  const conf = parse(fs.readFileSync(path.join(dir, 'fed/m2/conf.yaml'), 'utf8')) as { validators: { name: string; peer_id: string; public_key: string }[] };
  const id = btcfed(dir, 'show-node-id', '--member', 'fed/m2');
  assert.equal(id.status, 0, id.stderr);
  assert.equal(id.stdout.trim(), conf.validators[2]!.peer_id);
  const v = btcfed(dir, 'show-validator', '--member', 'fed/m2');
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^# validator 2 of 4 on chain btcfed-devnet/);
  const entry = (parse(v.stdout) as typeof conf.validators)[0]!;
  assert.deepEqual(entry, conf.validators[2]);
});

test('config check: ok files pass; every problem of a broken file is listed with its field; exit 1', () => {
  const ok = btcfed(dir, 'config', 'check', 'fed/m0/conf.yaml', 'fed/m0/peers.yaml', 'fed/m0/signer/signer.yaml');
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /ok +fed\/m0\/conf.yaml: conf.yaml of m0, validator 0 of 4/);
  assert.match(ok.stdout, /ok +fed\/m0\/peers.yaml: peers.yaml, 3 peer\(s\)/);

  const conf = parse(fs.readFileSync(path.join(dir, 'fed/m0/conf.yaml'), 'utf8')) as Record<string, any>;
  const broken = structuredClone(conf);
  broken.consensus.base_timeout = '0s';
  broken.logging = { ...broken.logging, level: 'verbose' };
  broken.validators[1].peer_id = 'garbage';
  fs.writeFileSync(path.join(dir, 'broken.yaml'), JSON.stringify(broken));
  const notSelf = structuredClone(conf);
  notSelf.node.name = 'm9';
  fs.writeFileSync(path.join(dir, 'not-self-conf.yaml'), JSON.stringify(notSelf));
  const peers = parse(fs.readFileSync(path.join(dir, 'fed/m0/peers.yaml'), 'utf8')) as { peers: { public_key: string; addresses: string[] }[] };
  peers.peers[0]!.addresses = [`/ip4/10.0.0.1/tcp/1/p2p/${conf.validators[0].peer_id}`]; // m0 itself: never an entry of its own peers.yaml
  fs.writeFileSync(path.join(dir, 'wrong-peers.yaml'), JSON.stringify(peers));
  fs.writeFileSync(path.join(dir, 'peers.yaml'), 'peers: [unclosed');

  const r = btcfed(dir, 'config', 'check', 'broken.yaml', 'not-self-conf.yaml', 'wrong-peers.yaml', 'peers.yaml', 'missing.yaml');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^btcfed: 5 of 5 file\(s\) have problems/);
  const out = r.stdout;
  assert.match(out, /logging.level: /);
  assert.match(out, /consensus.base_timeout: must be more than 0/);
  assert.match(out, /validators.1.peer_id: "garbage" is not a libp2p peer id/);
  assert.match(out, /validators: m9 \(node.name\) is not among them/);
  assert.match(out, /peers.0.addresses.0: \/p2p\/\S+ is not this entry's peer/);
  assert.match(out, /error peers.yaml:\n  \(file\): /, 'a YAML syntax error');
  assert.match(out, /error missing.yaml:\n  cannot read: ENOENT/);

  // The files a config names must be there (resolved as the services resolve them), and a file
  // that is not YAML says so whatever it is called.
  fs.mkdirSync(path.join(dir, 'moved'), { recursive: true });
  fs.copyFileSync(path.join(dir, 'fed/m0/conf.yaml'), path.join(dir, 'moved/conf.yaml'));
  fs.copyFileSync(path.join(dir, 'fed/m0/signer/signer.yaml'), path.join(dir, 'moved/signer.yaml'));
  fs.copyFileSync(path.join(dir, 'fed/m0/signer/signer.key'), path.join(dir, 'moved/signer.key'));
  fs.chmodSync(path.join(dir, 'moved/signer.key'), 0o644);
  fs.writeFileSync(path.join(dir, 'member-a.yaml'), 'node: {name: [unclosed');
  const files = btcfed(dir, 'config', 'check', 'moved/conf.yaml', 'moved/signer.yaml', 'member-a.yaml');
  assert.equal(files.status, 1);
  assert.match(files.stdout, /error moved\/conf.yaml:\n(  .*\n)*  tls.ca_file: \S+moved\/\S+ does not exist/);
  assert.match(files.stdout, /  tls.cert_file: no file for any service \(\S+\{service\}\S*, \{service\} one of store, gateway, consensus/);
  assert.match(files.stdout, /error moved\/signer.yaml:\n(  .*\n)*  key_file: \S+moved\/signer.key is a secret with mode 0644: others may read it/);
  assert.match(files.stdout, /  passphrase_file: \S+ does not exist/);
  assert.match(files.stdout, /error member-a.yaml:\n  \(file\): /, 'a YAML error whatever the file is called');
});

test('member rotate --libp2p: a new card and key beside the running ones; config check takes the new key once the card beside conf.yaml names it', () => {
  fs.cpSync(path.join(dir, 'fed/m1'), path.join(dir, 'rot/m1'), { recursive: true });
  const made = btcfed(dir, 'member', 'rotate', '--dir', 'rot/m1', '--libp2p');
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /prepared a rotation of m1\n  card +rot\/m1\/member-card.next.yaml .*--rotate m1=rot\/m1\/member-card.next.yaml/);
  assert.match(btcfed(dir, 'member', 'rotate', '--dir', 'rot/m1', '--libp2p').stderr, /a rotation is already prepared/);
  assert.equal(btcfed(dir, 'config', 'check', 'rot/m1/conf.yaml').status, 0, 'prepared, not applied: conf.yaml unchanged');
  // The key swapped in by hand while the card beside conf.yaml still names the old peer: a problem.
  const confFile = path.join(dir, 'rot/m1/conf.yaml');
  const text = fs.readFileSync(confFile, 'utf8');
  const oldKey = (parse(text) as { node: { private_key: string } }).node.private_key;
  fs.writeFileSync(confFile, text.replace(oldKey, fs.readFileSync(path.join(dir, 'rot/m1/secrets/next-libp2p-key'), 'utf8').trim()));
  const mismatch = btcfed(dir, 'config', 'check', 'rot/m1/conf.yaml');
  assert.equal(mismatch.status, 1);
  assert.match(mismatch.stdout, /validators.1.peer_id: \S+, but node.private_key is peer \S+, and no member-card.yaml beside it names that peer/);
  // As after --apply: the new card is the member's.
  fs.renameSync(path.join(dir, 'rot/m1/member-card.next.yaml'), path.join(dir, 'rot/m1/member-card.yaml'));
  const moved = btcfed(dir, 'config', 'check', 'rot/m1/conf.yaml');
  assert.equal(moved.status, 0, moved.stdout);
  // --apply asks the member's consensus, which is not running here: it says so and changes nothing.
  const apply = btcfed(dir, 'member', 'rotate', '--dir', 'fed/m2', '--apply');
  assert.equal(apply.status, 1);
  assert.match(apply.stderr, /no rotation prepared in \S+fed\/m2/);
});

test('the signer\'s passphrase never lands beside its sealed key; config check refuses one that does (SIGNER_PASSPHRASE_BESIDE_KEY)', () => {
  const inSigner = (d: string) => fs.readdirSync(path.join(dir, d, 'signer'), { recursive: true }).map(String).filter((f) => /passphrase/.test(f));
  // A devnet's explicit local layout: the member's secrets/ dir, named relative to the signer dir.
  const devnet = parse(fs.readFileSync(path.join(dir, 'fed/m0/signer/signer.yaml'), 'utf8')) as { passphrase_file: string };
  assert.equal(devnet.passphrase_file, '../secrets/signer-passphrase');
  assert.deepEqual(inSigner('fed/m0'), []);
  assert.equal(fs.statSync(path.join(dir, 'fed/m0/secrets/signer-passphrase')).mode & 0o777, 0o600);

  // member init: written to DIR/secrets, read on the signer host from its systemd credential.
  const made = btcfed(dir, 'member', 'init', '--name', 'p0', '--out', 'p0', '--host', '127.0.0.1', '--base-port', '27900');
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /passphrase \S+\/p0\/secrets\/signer-passphrase .* at \/run\/credentials\/btcfed-signer@p0\.service\/passphrase\)/);
  const conf = parse(fs.readFileSync(path.join(dir, 'p0/signer/signer.yaml'), 'utf8')) as { passphrase_file: string };
  assert.equal(conf.passphrase_file, '/run/credentials/btcfed-signer@p0.service/passphrase');
  assert.deepEqual(inSigner('p0'), []);
  assert.match(fs.readFileSync(path.join(dir, 'p0/secrets/signer-passphrase'), 'utf8'), /^[\w-]{32}\n$/);
  const named = btcfed(dir, 'member', 'init', '--name', 'p1', '--out', 'p1', '--host', '127.0.0.1', '--passphrase-out', 'p1-pass', '--passphrase-file', '/etc/p1.pass');
  assert.equal(named.status, 0, named.stderr);
  assert.ok(fs.existsSync(path.join(dir, 'p1-pass')));
  assert.equal((parse(fs.readFileSync(path.join(dir, 'p1/signer/signer.yaml'), 'utf8')) as { passphrase_file: string }).passphrase_file, '/etc/p1.pass');

  // Asked to put it beside the key: refused, nothing made.
  const out = btcfed(dir, 'member', 'init', '--name', 'p2', '--out', 'p2', '--host', '127.0.0.1', '--passphrase-out', 'p2/signer/pass');
  assert.equal(out.status, 1);
  assert.match(out.stderr, /--passphrase-out \S+p2\/signer\/pass: not in the signer dir .*\(CLI_INVALID\)/);
  const read = btcfed(dir, 'member', 'init', '--name', 'p2', '--out', 'p2', '--host', '127.0.0.1', '--passphrase-file', 'passphrase');
  assert.equal(read.status, 1);
  assert.match(read.stderr, /--passphrase-file passphrase: SIGNER_PASSPHRASE_BESIDE_KEY: /);
  assert.ok(!fs.existsSync(path.join(dir, 'p2')));

  // A signer dir laid out the old way (passphrase beside signer.key): config check names it.
  fs.cpSync(path.join(dir, 'fed/m1/signer'), path.join(dir, 'old-layout'), { recursive: true });
  fs.copyFileSync(path.join(dir, 'fed/m1/secrets/signer-passphrase'), path.join(dir, 'old-layout/passphrase'));
  const old = fs.readFileSync(path.join(dir, 'old-layout/signer.yaml'), 'utf8');
  fs.writeFileSync(path.join(dir, 'old-layout/signer.yaml'), old.replace('passphrase_file: ../secrets/signer-passphrase', 'passphrase_file: passphrase'));
  const check = btcfed(dir, 'config', 'check', 'old-layout/signer.yaml', 'fed/m1/signer/signer.yaml');
  assert.equal(check.status, 1);
  assert.match(check.stdout, /error old-layout\/signer.yaml:\n  passphrase_file: SIGNER_PASSPHRASE_BESIDE_KEY: \S+old-layout\/passphrase is in the directory of the sealed key \S+old-layout\/signer.key/);
  assert.match(check.stdout, /ok +fed\/m1\/signer\/signer.yaml/);
});

test('status against a member that is not running names the address it tried and what to check (exit 1)', () => {
  const r = btcfed(dir, 'status', '--member', 'fed/m1', '--timeout', '1s');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^btcfed: no answer from the consensus service at 127\.0\.0\.1:27312 within 1000 ms: is it running .* \(CONSENSUS_UNREACHABLE\)\n$/);
});

test('submit to a member that is not running says so in seconds, not after the submit call\'s 30 s deadline (exit 1)', () => {
  const t0 = Date.now();
  const r = btcfed(dir, 'submit', 'hello', '--member', 'fed/m1');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^btcfed: no answer from the consensus service at 127\.0\.0\.1:27312 within 5000 ms: is it running .* \(CONSENSUS_UNREACHABLE\)\n$/);
  assert.ok(Date.now() - t0 < 20_000, `answered in ${Date.now() - t0} ms`);
});

test('keygen makes a sealed key in a signer dir and prints its public key; a second keygen refuses to replace it', () => {
  const signerDir = path.join(dir, 'kg');
  fs.cpSync(path.join(dir, 'fed/m0/signer'), signerDir, { recursive: true });
  fs.rmSync(path.join(signerDir, 'signer.key'));
  // Its passphrase where signer.yaml says (../secrets/signer-passphrase), apart from the dir.
  fs.cpSync(path.join(dir, 'fed/m0/secrets'), path.join(dir, 'secrets'), { recursive: true });
  const made = btcfed(dir, 'keygen', '--data-dir', 'kg');
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /^[0-9a-f]{64}\n$/, 'the public key (128f: 32 bytes)');
  assert.ok(fs.statSync(path.join(signerDir, 'signer.key')).size > 0);
  const before = fs.readFileSync(path.join(signerDir, 'signer.key'));
  const again = btcfed(dir, 'keygen', '--data-dir', 'kg');
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists; refusing to overwrite a validator key/);
  assert.deepEqual(fs.readFileSync(path.join(signerDir, 'signer.key')), before, 'the key is untouched');
});

test('admin dump: a summary by default (long hex shortened to its start and size), every byte with --full', () => {
  const sig = 'ab'.repeat(17_088);
  const state = JSON.stringify({ view: 7, committed: { height: 3, hash: 'cd'.repeat(32) }, safety: { lockedQC: { signatures: [sig] } } });
  const summary = dumpText(state);
  assert.match(summary, /"hash": "c{1}d(cd){31}"/, 'a 32-byte hash stays whole');
  assert.match(summary, /"abababababababab… \(17088 bytes\)"/);
  assert.ok(summary.length < 400, `${summary.length} characters`);
  assert.equal(dumpText(state, true), state);
});
