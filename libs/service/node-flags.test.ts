import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NODE_FLAGS } from './node-flags.ts';

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
