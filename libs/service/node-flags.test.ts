import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { COMPILE_CACHE_DIR, NODE_FLAGS, serviceEnv } from './node-flags.ts';

const UNITS = path.resolve(import.meta.dirname, '../../deploy/systemd');

test('every systemd unit starts its service with the same Node flags as the devnet and the test bed', () => {
  const units = fs.readdirSync(UNITS).filter((f) => /^btcfed-(store|signer|gateway|consensus)@\.service$/.test(f));
  assert.equal(units.length, 4, `the four service units: ${units.join(', ')}`);
  for (const u of units) {
    const service = /^btcfed-(\w+)@/.exec(u)![1]!;
    const exec = /^ExecStart=(.*)$/m.exec(fs.readFileSync(path.join(UNITS, u), 'utf8'))?.[1]?.split(/\s+/);
    assert.ok(exec, `${u} has an ExecStart line`);
    assert.match(exec[0]!, /\/node$/, `${u} runs node`);
    assert.deepEqual(exec.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS], `${u}: ${exec.join(' ')}`);
    assert.equal(exec[1 + NODE_FLAGS.length], `services/${service}/main.ts`, `${u} runs its own service`);
  }
});

test('every systemd unit keeps its compile cache in a CacheDirectory systemd makes writable for it', () => {
  for (const service of ['store', 'signer', 'gateway', 'consensus']) {
    const unit = fs.readFileSync(path.join(UNITS, `btcfed-${service}@.service`), 'utf8');
    const dir = /^CacheDirectory=(\S+)$/m.exec(unit)?.[1];
    assert.ok(dir, `btcfed-${service}@.service has a CacheDirectory (ProtectSystem=strict leaves nothing else writable)`);
    assert.match(unit, new RegExp(`^Environment=NODE_COMPILE_CACHE=/var/cache/${dir}$`, 'm'), `btcfed-${service}@.service points the compile cache at it`);
  }
});

test('services start with the compile cache unless the operator set or disabled one', () => {
  assert.equal(serviceEnv({ PATH: '/bin' }).NODE_COMPILE_CACHE, COMPILE_CACHE_DIR);
  assert.equal(serviceEnv({ PATH: '/bin' }).PATH, '/bin', 'the rest of the environment is passed on');
  assert.equal(serviceEnv({ NODE_COMPILE_CACHE: '/srv/cache' }).NODE_COMPILE_CACHE, '/srv/cache');
  assert.equal(serviceEnv({ NODE_DISABLE_COMPILE_CACHE: '1' }).NODE_COMPILE_CACHE, undefined);
});
