// conf.yaml's nats section against a real nats-server that requires a user and password: the
// right password file connects; a wrong one never does; a missing secret file or a bad section
// is refused naming the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { isFedError } from '#libs/errors/index.ts';
import { parseNatsObject } from '#libs/config/index.ts';
import { connectEvents, natsConnectOptions } from './index.ts';

const log = pino({ level: 'silent' });

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

test('user and password_file: the right password connects, a wrong one never does', { timeout: 60_000 }, async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-nats-auth-'));
  const port = await freePort();
  const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '--user', 'm0-consensus', '--pass', 's3cret-pass'], { stdio: 'ignore' });
  try {
    await fs.writeFile(path.join(dir, 'nats-password'), 's3cret-pass\n', { mode: 0o600 });
    await fs.writeFile(path.join(dir, 'wrong-password'), 'guess\n', { mode: 0o600 });
    const url = `nats://127.0.0.1:${port}`;
    const nats = (password_file: string) => parseNatsObject({ url, user: 'm0-consensus', password_file });
    const resolve = (p: string) => path.resolve(dir, p);
    for (let t = 0; t < 50; t++) { // the server takes a moment to listen
      if (await new Promise<boolean>((r) => { const c = net.connect(port, '127.0.0.1', () => { c.end(); r(true); }).on('error', () => r(false)); })) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ok = await connectEvents({ url, name: 'auth-test', log, auth: natsConnectOptions(nats('nats-password'), resolve) });
    assert.ok(!ok.nc.isClosed());
    await ok.drain();
    const wrong = connectEvents({ url, name: 'auth-test', log, auth: natsConnectOptions(nats('wrong-password'), resolve), reconnectWaitMs: 200 });
    const outcome = await Promise.race([wrong.then((c) => { void c.drain(); return 'connected'; }, () => 'refused'), new Promise((r) => setTimeout(() => r('still trying'), 3000))]);
    assert.notEqual(outcome, 'connected', 'a wrong password must not connect');
    void wrong.then((c) => c.drain(), () => undefined);
    assert.throws(() => natsConnectOptions(nats('no-such-file'), resolve), (e) => isFedError(e, 'NATS_CONFIG_INVALID') && /nats\.password_file: cannot read/.test(e.message));
  } finally {
    server.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('the nats section refuses two ways to authenticate, a user without a password file, half a client certificate', () => {
  const bad = (nats: Record<string, unknown>, field: RegExp) => assert.throws(() => parseNatsObject(nats),
    (e) => isFedError(e, 'CONFIG_INVALID') && field.test(e.message), JSON.stringify(nats));
  bad({ user: 'u', password_file: 'p', token_file: 't' }, /only one way to authenticate/);
  bad({ user: 'u' }, /password_file/);
  bad({ password_file: 'p' }, /needs user/);
  bad({ tls: { cert_file: 'c.pem' } }, /cert_file and key_file go together/);
  bad({ servers: [] }, /servers/);
  const good = parseNatsObject({ servers: ['nats://10.0.9.1:4222', 'tls://10.0.9.2:4222'], creds_file: 'm0.creds' });
  assert.deepEqual(good.servers, ['nats://10.0.9.1:4222', 'tls://10.0.9.2:4222']);
  // A missing secret file is named by its field and path when the service connects.
  for (const [field, nats] of [['creds_file', { creds_file: 'm0.creds' }], ['nkey_seed_file', { nkey_seed_file: 'm0.nk' }],
    ['token_file', { token_file: 'tok' }], ['tls.ca_file', { tls: { ca_file: 'nats-ca.pem' } }]] as const) {
    assert.throws(() => natsConnectOptions(parseNatsObject(nats), (p) => path.join('/nonexistent-dir', p)),
      (e) => isFedError(e, 'NATS_CONFIG_INVALID') && e.message.startsWith(`nats.${field}: cannot read /nonexistent-dir/`), field);
  }
});
