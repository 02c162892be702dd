// Key custody on a real SoftHSM2 token, with the real signer CLI as a process: moving a file key
// into a token (import-key), a new key into a token (keygen --backend pkcs11), show-key,
// check-custody, and every start-up refusal — token absent, wrong PIN, a PIN file others can
// read, the key object missing, a sealed key corrupt, altered or sealed under another token's key,
// a safety state without HMAC, edited, or rolled back — plus bind-state as the operator's way out.
// Each world has its own token directory (SOFTHSM2_CONF set per spawn, never the system's).

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Phase } from '#libs/hotstuff/index.ts';
import { EXIT_DO_NOT_RESTART } from '#libs/service/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { openToken, stateCounterLabel, stateKeyLabel, type Pkcs11Custody } from '../services/signer/custody.ts';
import { loadSignerConf } from '../services/signer/open.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { makeSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../services/signer/softhsm-testkit.ts';
import { btcfedIn } from './support/cli.ts';
import { spawn } from 'node:child_process';
import { ROOT, startService } from './support/process.ts';
import { SIGNER_MAIN, expectStartRefused, signerCli, startSignerProcess } from './support/signer.ts';

const KEY_LABEL = 'm-seal';

interface TokenWorld { w: SignerWorld; hsm: SoftHsm; cli(args: string[]): ReturnType<typeof signerCli> }

/** A signer world whose signer.yaml says custody pkcs11 sealed on its own token "tok-a". */
async function tokenWorld(): Promise<TokenWorld> {
  const w = await makeSignerWorld();
  const hsm = await makeSoftHsm(path.join(w.dir, 'hsm'));
  hsm.addToken('tok-a');
  await hsm.writePin(path.join(w.dir, 'pin'));
  await w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
  return { w, hsm, cli: (args) => signerCli([...args, '--data-dir', w.dir], hsm.env) };
}

/** Starts `run` expecting a refusal, with the world's token. */
async function refusedWith(t: TokenWorld, code: string, message: RegExp, extra: string[] = []): Promise<void> {
  process.env.SOFTHSM2_CONF = t.hsm.confFile;
  const r = await expectStartRefused(t.w.dir, ['--insecure', ...extra]);
  // A refused PIN exits so that systemd does not start it again (and lock a hardware token's PIN).
  assert.equal(r.code, code === 'SIGNER_TOKEN_PIN' ? EXIT_DO_NOT_RESTART : 1, `exit status of ${code}`);
  assert.equal(r.fatal.code, code, JSON.stringify(r.fatal));
  assert.match(String(r.fatal.msg), message);
}

/** `run` with the world's token, not waiting for it to be ready (it may wait for its token). */
async function startWaiting(t: TokenWorld) {
  process.env.SOFTHSM2_CONF = t.hsm.confFile;
  return startService(SIGNER_MAIN, ['run', '--data-dir', t.w.dir, '--listen', '127.0.0.1:0', '--insecure', '--no-nats']);
}

async function startRun(t: TokenWorld, extra: string[] = []) {
  process.env.SOFTHSM2_CONF = t.hsm.confFile;
  return startSignerProcess(t.w.dir, ['--insecure', '--no-nats', ...extra]);
}

const prepare = (w: SignerWorld, view: number) => {
  const b = w.block(view, w.genesis);
  return { kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view, blockHash: b.hash, header: b.header, justify: w.gqc };
};
const client = (w: SignerWorld, port: number) => createRemoteSigner({ address: `127.0.0.1:${port}`, security: { mode: 'insecure' }, validatorCount: w.n, deadlineMs: 10_000 });

describe('import-key: an existing member\'s file key moved into the token', { timeout: 120_000 }, () => {
  let t: TokenWorld;
  before(async () => { t = await tokenWorld(); });
  after(() => t.w.cleanup());

  test('signs with the file key, import-key seals it, destroys the file, binds the state; the signer runs from the token', async () => {
    // The member as it is today: file custody, a state with a signature in it.
    const conf = path.join(t.w.dir, 'signer.yaml');
    const tokenConf = await fs.readFile(conf, 'utf8');
    await t.w.writeConf({});
    let p = await startRun(t, ['--init']);
    const s = client(t.w, p.port);
    await s.sign(prepare(t.w, 1));
    await s.close();
    assert.equal(await p.svc.stop(), 0);
    await fs.writeFile(conf, tokenConf);

    const pub = t.w.slh.publicKeyOf(t.w.keys[t.w.self]!.secretKey);
    const r = t.cli(['import-key']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /imported: [0-9a-f]{64} sealed in .*signer\.sealed; safety state bound to the token; key file .*signer\.key overwritten and deleted/);
    await assert.rejects(fs.access(path.join(t.w.dir, 'signer.key')), 'the key file is gone');
    const sealed = path.join(t.w.dir, 'signer.sealed');
    assert.equal((await fs.stat(sealed)).mode & 0o777, 0o600);
    const blob = await fs.readFile(sealed, 'utf8');
    assert.ok(!blob.includes(Buffer.from(t.w.keys[t.w.self]!.secretKey).toString('hex')) && !blob.includes(Buffer.from(t.w.keys[t.w.self]!.secretKey).toString('base64')), 'no clear secret in the blob');
    assert.equal(JSON.parse(blob).keyLabel, KEY_LABEL);

    const show = t.cli(['show-key']);
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`public_key ${Buffer.from(pub).toString('hex')}`));
    assert.match(show.stdout, /custody pkcs11 sealed: .*signer\.sealed under key "m-seal" of token "tok-a"/);

    const check = t.cli(['check-custody']);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /custody ok: pkcs11 sealed/);
    assert.match(check.stdout, /signing ok/);
    assert.match(check.stdout, /state ok: authenticated by the token.*1 signatures/);

    // Runs from the token: the old marks hold (view 1 is not signed twice), view 2 is.
    p = await startRun(t);
    assert.ok(p.svc.lines.some((l) => l.msg === 'key custody' && /pkcs11 sealed/.test(String(l.custody))));
    const s2 = client(t.w, p.port);
    await assert.rejects(s2.sign({ ...prepare(t.w, 1), blockHash: t.w.block(1, t.w.genesis, { salt: 9 }).hash, header: t.w.block(1, t.w.genesis, { salt: 9 }).header }), /one-per-slot|monotonic|SIGNER_REFUSED|refused/i);
    const sig = await s2.sign(prepare(t.w, 2));
    assert.equal(sig.signature.length, t.w.slh.signatureBytes);
    await s2.close();
    assert.equal(await p.svc.stop(), 0);

    const again = t.cli(['import-key']);
    assert.equal(again.status, 1, 'no key file any more: nothing to import');

    // btcfed config check reads the custody: the PIN and sealed files, not the key file that is gone.
    const { btcfed, ok } = btcfedIn(() => t.w.dir);
    assert.match(await ok(['config', 'check', 'signer.yaml']), /signer\.yaml of m\d/);
    await fs.chmod(path.join(t.w.dir, 'pin'), 0o644);
    const exposed = await btcfed(['config', 'check', 'signer.yaml']);
    assert.equal(exposed.code, 1);
    assert.match(exposed.stdout + exposed.stderr, /custody\.pin_file: .*pin/);
    await fs.chmod(path.join(t.w.dir, 'pin'), 0o600);
  });
});

describe('keygen --backend pkcs11', { timeout: 120_000 }, () => {
  test('seals a new key in the token, prints its public key, refuses a second one; --backend must match signer.yaml', async () => {
    const t = await tokenWorld();
    try {
      await fs.rm(path.join(t.w.dir, 'signer.key'));
      await t.w.writeConf({ validators: [], custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: 'fresh' } });
      const r = t.cli(['keygen', '--backend', 'pkcs11']);
      assert.equal(r.status, 0, r.stderr);
      const hex = r.stdout.trim();
      assert.match(hex, /^[0-9a-f]{64}$/);
      const sealed = path.join(t.w.dir, 'signer.sealed');
      assert.equal(JSON.parse(await fs.readFile(sealed, 'utf8')).publicKey, hex);
      assert.equal((await fs.stat(sealed)).mode & 0o777, 0o600);
      const show = t.cli(['show-key']);
      assert.match(show.stdout, new RegExp(`public_key ${hex}`));
      const check = t.cli(['check-custody']);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /state: none yet/);
      const twice = t.cli(['keygen', '--backend', 'pkcs11']);
      assert.equal(twice.status, 1);
      assert.match(twice.stderr, /SIGNER_KEY_EXISTS|already exists/);
      assert.equal(JSON.parse(await fs.readFile(sealed, 'utf8')).publicKey, hex, 'the first key is untouched');
      const wrong = t.cli(['keygen', '--backend', 'file']);
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /custody is backend pkcs11/);
    } finally {
      await t.w.cleanup();
    }
  });
});

describe('start-up refusals with a token', { timeout: 120_000 }, () => {
  let t: TokenWorld;
  const file = () => path.join(t.w.dir, 'signer.sealed');
  let good: string;
  before(async () => {
    t = await tokenWorld();
    assert.equal(t.cli(['import-key']).status, 0);
    const p = await startRun(t, ['--init']);
    assert.equal(await p.svc.stop(), 0);
    good = await fs.readFile(file(), 'utf8');
  });
  after(() => t.w.cleanup());
  afterEach(async () => {
    // Each refusal below changes one thing; put the working setup back whatever happened.
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
    await t.hsm.writePin(path.join(t.w.dir, 'pin'));
    await fs.writeFile(file(), good, { mode: 0o600 });
    await fs.chmod(file(), 0o600);
  });

  test('token absent (a label no token has, the token directory gone): the signer waits for it, saying why, and serves once it answers', async () => {
    const waiting = (svc: Awaited<ReturnType<typeof startWaiting>>, re: RegExp) =>
      svc.waitFor((l) => l.msg === 'the key\'s token does not answer: waiting for it' && l.code === 'SIGNER_TOKEN_ABSENT' && re.test(String(l.err)), 20_000);
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-b', pin_file: 'pin', key_label: KEY_LABEL } });
    let svc = await startWaiting(t);
    try {
      await waiting(svc, /no token labelled "tok-b" in PKCS#11 module .*libsofthsm2\.so \(tokens present: "tok-a"\)/);
    } finally {
      await svc.stop();
    }
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
    await t.hsm.pull();
    svc = await startWaiting(t);
    try {
      try {
        await waiting(svc, /libsofthsm2\.so does not initialise \(CKR_GENERAL_ERROR\): no token reachable/);
      } finally {
        await t.hsm.plugBack();
      }
      // Plugged back in: the next try opens it, and the signer serves (it did not exit meanwhile).
      await svc.waitFor((l) => l.msg === 'signer ready', 30_000);
    } finally {
      assert.equal(await svc.stop(), 0);
    }
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: '/nonexistent/libpkcs11.so', token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
    await refusedWith(t, 'SIGNER_TOKEN_MODULE', /module \/nonexistent\/libpkcs11\.so cannot be loaded/);
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
  });

  test('wrong PIN, and a PIN file others can read', async () => {
    const pin = path.join(t.w.dir, 'pin');
    await t.hsm.writePin(pin, '999999');
    await refusedWith(t, 'SIGNER_TOKEN_PIN', /token "tok-a" .* refused the PIN from .*pin \(CKR_PIN_INCORRECT\)/);
    await t.hsm.writePin(pin);
    await fs.chmod(pin, 0o644);
    await refusedWith(t, 'SIGNER_KEY_PERMISSIONS', /PIN file .*pin has mode 0644/);
    await fs.chmod(pin, 0o600);
  });

  test('a sealed key that is corrupt, altered, or others can read', async () => {
    await fs.writeFile(file(), good.slice(0, 100), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_SEALED_CORRUPT', /sealed key .*signer\.sealed: not JSON/);
    const blob = JSON.parse(good);
    const flip = (b64: string) => { const b = Buffer.from(b64, 'base64'); b[3]! ^= 1; return b.toString('base64'); };
    await fs.writeFile(file(), JSON.stringify({ ...blob, sealed: flip(blob.sealed) }), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_SEALED_DECRYPT', /signer\.sealed does not unseal under key "m-seal" of token "tok-a".*another token's key, or altered/);
    const otherPub = blob.publicKey.replace(/^./, (c: string) => (c === '0' ? '1' : '0'));
    await fs.writeFile(file(), JSON.stringify({ ...blob, publicKey: otherPub }), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_SEALED_DECRYPT', /does not unseal/);
    await fs.writeFile(file(), JSON.stringify({ ...blob, keyLabel: 'other' }), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_SEALED_MISMATCH', /sealed .* under key "other" of token "tok-a", but signer\.yaml says .*key_label "m-seal"/);
    await fs.writeFile(file(), good, { mode: 0o644 });
    await fs.chmod(file(), 0o644);
    await refusedWith(t, 'SIGNER_KEY_PERMISSIONS', /sealed key .*signer\.sealed has mode 0644/);
    await fs.writeFile(file(), good, { mode: 0o600 });
    await fs.chmod(file(), 0o600);
  });

  test('a blob sealed under another token\'s key (same labels, another token)', async () => {
    const other = await makeSoftHsm(path.join(t.w.dir, 'hsm-other'));
    other.addToken('tok-a');
    // The same ceremony on the other token makes its own "m-seal" key; then our blob is put beside it.
    const w2 = { ...t, hsm: other, cli: (args: string[]) => signerCli([...args, '--data-dir', t.w.dir], other.env) };
    await fs.rename(file(), `${file()}.ours`);
    await fs.rename(path.join(t.w.dir, 'safety-state.json'), path.join(t.w.dir, 'state.ours'));
    try {
      await t.w.writeConf({ validators: [], custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
      const made = w2.cli(['keygen']);
      assert.equal(made.status, 0, made.stderr);
      await fs.copyFile(`${file()}.ours`, file());
      await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
      await refusedWith(w2, 'SIGNER_SEALED_DECRYPT', /does not unseal under key "m-seal" of token "tok-a" \(serial [0-9a-f]+\).*sealed under another token's key/);
    } finally {
      await fs.rename(`${file()}.ours`, file());
      await fs.rename(path.join(t.w.dir, 'state.ours'), path.join(t.w.dir, 'safety-state.json'));
    }
  });

  test('the key object missing from the token', async () => {
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: 'gone' } });
    await refusedWith(t, 'SIGNER_TOKEN_KEY_MISSING', /token "tok-a" .* has no state HMAC key labelled "gone\/state"/);
    await t.w.writeConf({ custody: { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: KEY_LABEL } });
    // A working setup again: the refusals above left nothing behind.
    const p = await startRun(t);
    assert.equal(await p.svc.stop(), 0);
    // Then the objects themselves deleted from the token, one at a time (the last refusals of this
    // world: a non-extractable key cannot be put back). The state's counter first — the sealing key
    // still unseals, the state no longer proves it is the newest — then the sealing key itself,
    // with its HMAC key still there.
    process.env.SOFTHSM2_CONF = t.hsm.confFile;
    const c = (await loadSignerConf(t.w.dir)).custody as Pkcs11Custody;
    const token = await openToken(c, t.w.dir);
    try {
      token.destroy(stateCounterLabel(KEY_LABEL));
      await refusedWith(t, 'SIGNER_STATE_COUNTER', /token "tok-a" .* holds no state counter \(deleted from the token\?\) while the file is record \d+/);
      token.destroy(KEY_LABEL);
      assert.equal(token.hasSecretKey(stateKeyLabel(KEY_LABEL)), true, 'the HMAC key is still there');
      await refusedWith(t, 'SIGNER_TOKEN_KEY_MISSING', /token "tok-a" .* has no AES key labelled "m-seal" \(deleted, or another token\?\)/);
    } finally {
      token.close();
    }
  });
});

describe('the safety state bound to the token', { timeout: 120_000 }, () => {
  let t: TokenWorld;
  const stateFile = () => path.join(t.w.dir, 'safety-state.json');
  before(async () => {
    t = await tokenWorld();
    assert.equal(t.cli(['import-key']).status, 0);
  });
  after(() => t.w.cleanup());

  test('a rolled-back state (an older valid copy put back) is refused until the operator resolves it', async () => {
    let p = await startRun(t, ['--init']);
    let s = client(t.w, p.port);
    await s.sign(prepare(t.w, 1));
    const old = await fs.readFile(stateFile(), 'utf8');
    await s.sign(prepare(t.w, 2));
    await s.close();
    assert.equal(await p.svc.stop(), 0);
    const newest = await fs.readFile(stateFile(), 'utf8');
    assert.ok(JSON.parse(newest).auth.counter > JSON.parse(old).auth.counter);

    await fs.writeFile(stateFile(), old, { mode: 0o600 });
    await refusedWith(t, 'SIGNER_STATE_ROLLBACK', /safety-state\.json: it is record \d+ but the token's counter is at \d+: an older copy .* \(rollback\)/);
    assert.equal(await fs.readFile(stateFile(), 'utf8'), old, 'left untouched');
    const check = t.cli(['check-custody']);
    assert.equal(check.status, 1);
    assert.match(check.stderr, /SIGNER_STATE_ROLLBACK/);

    // Resolution: put the newest state back (an export, a backup); it starts.
    await fs.writeFile(stateFile(), newest, { mode: 0o600 });
    p = await startRun(t);
    s = client(t.w, p.port);
    await s.sign(prepare(t.w, 3));
    await s.close();
    assert.equal(await p.svc.stop(), 0);
  });

  test('an edited state (checksum recomputed) and a state without HMAC are refused; bind-state binds it', async () => {
    const text = await fs.readFile(stateFile(), 'utf8');
    const env = JSON.parse(text);
    env.state.lastVote.view = 1;
    const { sha256Hex } = await import('#libs/crypto/index.ts');
    env.sha256 = sha256Hex(JSON.stringify(env.state));
    await fs.writeFile(stateFile(), JSON.stringify(env), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_STATE_TAMPERED', /its HMAC does not verify under key "m-seal\/state" of token "tok-a"/);

    const { auth: _, ...plain } = JSON.parse(text);
    await fs.writeFile(stateFile(), JSON.stringify(plain), { mode: 0o600 });
    await refusedWith(t, 'SIGNER_STATE_UNAUTHENTICATED', /carries no HMAC .* bind-state/);
    const b = t.cli(['bind-state']);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stdout, /bound/);
    const p = await startRun(t);
    assert.equal(await p.svc.stop(), 0);
  });
});

describe('the token stops answering while the signer runs', { timeout: 120_000 }, () => {
  test('it refuses to sign (UNAVAILABLE, counted), keeps its state intact, and signs again once the token is back', async () => {
    const t = await tokenWorld();
    try {
      assert.equal(t.cli(['import-key']).status, 0);
      const p = await startRun(t, ['--init', '--metrics', '127.0.0.1:0']);
      const metricsPort = p.svc.lines.find((l) => l.msg === 'signer ready')!.metricsPort as number;
      const metric = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const m = new RegExp(`^btcfed_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
        return m ? Number(m[1]) : undefined;
      };
      const s = client(t.w, p.port);
      try {
        await s.sign(prepare(t.w, 1));
        assert.equal(await metric('signer_custody_failures_total'), 0);
        assert.equal(await metric('signer_custody_state'), 1);
        const stateFile = path.join(t.w.dir, 'safety-state.json');
        const before = await fs.readFile(stateFile, 'utf8');

        await t.hsm.pull();
        try {
          await assert.rejects(s.sign(prepare(t.w, 2)), (err: Error) => /UNAVAILABLE|no signature/.test(err.message) && /token/.test(err.message));
          await assert.rejects(s.sign(prepare(t.w, 2)), /token/);
          assert.equal(await metric('signer_custody_failures_total'), 2);
          assert.equal(await metric('signer_custody_state'), 0);
          assert.equal(await fs.readFile(stateFile, 'utf8'), before, 'the state on disk is the last authenticated record');
          assert.ok(p.svc.lines.some((l) => l.event === 'signer.custody_unavailable'));
        } finally {
          await t.hsm.plugBack();
        }
        const sig = await s.sign(prepare(t.w, 2));
        assert.equal(sig.signature.length, t.w.slh.signatureBytes);
        assert.equal(await metric('signer_custody_state'), 1);
        assert.ok(p.svc.lines.some((l) => l.event === 'signer.custody_recovered'));

        // A token that comes back refusing the PIN (another token under the same label, or its PIN
        // changed): the PIN is offered once, then never again until an operator restarts the signer —
        // a hardware token locks its PIN after a few wrong tries.
        await t.hsm.pull();
        const tokens = path.join(t.hsm.dir, 'tokens');
        await fs.mkdir(tokens, { mode: 0o700 });
        t.hsm.addToken('tok-a', '135791');
        try {
          await assert.rejects(s.sign(prepare(t.w, 3)), (err: Error) => /refused the PIN .*CKR_PIN_INCORRECT/.test(err.message) && !/not offered/.test(err.message));
          await assert.rejects(s.sign(prepare(t.w, 3)), /refused the PIN .*not offered to the token again/);
        } finally {
          await fs.rm(tokens, { recursive: true });
          await t.hsm.plugBack();
        }
        await assert.rejects(s.sign(prepare(t.w, 3)), /not offered to the token again/, 'the right token back: still refused until a restart');
        assert.equal(await metric('signer_custody_state'), 0);
      } finally {
        await s.close();
        assert.equal(await p.svc.stop(), 0);
      }
      // The records written around the outage load back through the token.
      const check = t.cli(['check-custody']);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /state ok: authenticated by the token.*2 signatures/);
    } finally {
      await t.w.cleanup();
    }
  });
});

describe('custody mode native (PKCS#11 3.2 CKM_SLH_DSA) on a token without it', { timeout: 120_000 }, () => {
  test('SoftHSM2 2.6.1 lists no SLH-DSA mechanism: keygen, check-custody and run refuse with SIGNER_CUSTODY_UNSUPPORTED', async () => {
    const t = await tokenWorld();
    try {
      await t.w.writeConf({ custody: { backend: 'pkcs11', mode: 'native', module: SOFTHSM_MODULE, token_label: 'tok-a', pin_file: 'pin', key_label: 'native' } });
      const unsupported = /SIGNER_CUSTODY_UNSUPPORTED|does not list CKM_SLH_DSA or CKM_SLH_DSA_KEY_PAIR_GEN \(PKCS#11 3\.2 SLH-DSA\)/;
      const k = t.cli(['keygen', '--backend', 'pkcs11']);
      assert.equal(k.status, 1);
      assert.match(k.stderr, unsupported);
      assert.match(k.stderr, /token "tok-a"/);
      const c = t.cli(['check-custody']);
      assert.equal(c.status, 1);
      assert.match(c.stderr, unsupported);
      await refusedWith(t, 'SIGNER_CUSTODY_UNSUPPORTED', /token "tok-a" .* does not list CKM_SLH_DSA .*use mode: sealed/);
      const i = t.cli(['import-key']);
      assert.equal(i.status, 1);
      assert.match(i.stderr, /native keeps keys generated inside the token only/);
      await fs.access(path.join(t.w.dir, 'signer.key')); // nothing was destroyed
    } finally {
      await t.w.cleanup();
    }
  });
});

describe('four signers on one token directory, each writing its token while the others start', { timeout: 120_000 }, () => {
  test('each finds and opens its own token, round after round', async () => {
    // As in the federation test (four signers sharing one SoftHSM2 directory): SoftHSM2 answered
    // C_GetTokenInfo with CKR_GENERAL_ERROR while another process rewrote its token, and a signer
    // failed to start (in a stress run here, 4 of 30 rounds of four such processes; 0 of 40 since).
    // The race is rare: this test did not go red in 4 runs with the retries removed; the unit
    // test services/signer/pkcs11.test.ts does.
    const w = await makeSignerWorld();
    try {
      const hsm = await makeSoftHsm(path.join(w.dir, 'hsm'));
      const pin = path.join(w.dir, 'pin');
      await hsm.writePin(pin);
      for (let i = 0; i < 4; i++) hsm.addToken(`tok-${i}`);
      const worker = (label: string) => `
        import { Token } from ${JSON.stringify(path.resolve(ROOT, 'services/signer/pkcs11.ts'))};
        let where = 'open';
        try {
          for (let round = 0; round < 3; round++) {
            where = 'open';
            const t = await Token.open({ module: ${JSON.stringify(SOFTHSM_MODULE)}, tokenLabel: '${label}', pinFile: ${JSON.stringify(pin)} });
            where = 'write';
            if (!t.hasSecretKey('mac')) t.generateHmacKey('mac');
            for (let i = 0; i < 20; i++) { t.hmac('mac', new Uint8Array(32)); t.writeCounter('c', BigInt(Date.now()) * 1000n + BigInt(round * 100 + i)); }
            t.close();
          }
          console.log('ok');
        } catch (err) { console.log('failed at ' + where + ': ' + err.message); process.exit(1); }`;
      const run = (i: number) => new Promise<string>((resolve) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', worker(`tok-${i}`)], { cwd: ROOT, env: { ...process.env, ...hsm.env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
        p.stderr.on('data', (c: Buffer) => { out += c.toString(); });
        p.on('exit', () => resolve(out.trim()));
      });
      // SoftHSM2 2.6.1 itself can abort on an assertion of its own (SlotManager::insertToken) when
      // it scans the directory while another process rewrites a token (seen once in CI): no code
      // of ours runs between, so nothing catches it; a supervised signer is started again. Such a
      // worker is started again once, and said; anything else fails the round.
      const softhsmAbort = /SlotManager|Assertion .* failed/;
      let aborts = 0;
      for (let round = 0; round < 4; round++) {
        const results = await Promise.all([0, 1, 2, 3].map(async (i) => {
          let out = await run(i);
          if (out !== 'ok' && softhsmAbort.test(out)) { aborts++; out = await run(i); }
          return `tok-${i}: ${out}`;
        }));
        assert.deepEqual(results, [0, 1, 2, 3].map((i) => `tok-${i}: ok`), `round ${round}`);
      }
      if (aborts > 0) console.log(`# SoftHSM2 aborted on its own assertion ${aborts} time(s) in 16 worker runs; each started again and succeeded`);
      assert.ok(aborts <= 2, `SoftHSM2 aborted ${aborts} times in 16 runs: more than its rare race explains`);
    } finally { await w.cleanup(); }
  });
});
