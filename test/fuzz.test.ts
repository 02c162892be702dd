// The fuzz campaign's CI budget (fuzz/, docs/fuzzing.md): every target for a few seconds in its
// own process, as `npm run fuzz` runs it, with no failure; a short network campaign against a real
// federation; proof that the engine can fail (a
// decoder that trusts a length field is caught, its careful twin is not); and the inputs the
// campaign found, each kept as a regression test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { parseCardText, parseConfText, parsePeersText } from '#libs/config/index.ts';
import { runTarget, WALL_FACTOR, type FuzzTarget } from '../fuzz/engine.ts';
import { loadCorpus } from '../fuzz/corpus.ts';
import { TARGETS } from '../fuzz/targets/index.ts';
import { peekFrame } from '#libs/wire/index.ts';

const ROOT = new URL('..', import.meta.url).pathname;

function fuzzCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['fuzz/run.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('every target, 4 s each in its own process, two at a time: no failure, coverage reported in target order, one summary line', { timeout: 120_000 }, async () => {
  const { code, out } = await fuzzCli(['--seconds', '4', '--seed', '20261125', '--jobs', '2']);
  const lines = out.trim().split('\n');
  assert.equal(code, 0, out);
  assert.match(lines.at(-1)!, new RegExp(`^fuzz: targets=${TARGETS.length} execs=\\d+ failures=0$`), out);
  for (const t of TARGETS) {
    const line = lines.find((l) => l.startsWith(`fuzz: target=${t.name} `));
    assert.ok(line, `no line for ${t.name}:\n${out}`);
    const m = /execs=(\d+) .* branches=(\d+)\/(\d+)/.exec(line)!;
    assert.ok(Number(m[1]) > 50, `${t.name} ran ${m[1]} inputs`);
    assert.ok(Number(m[2]) > 0 && Number(m[3]) >= Number(m[2]), `${t.name} coverage ${m[2]}/${m[3]}`);
  }
  const order = lines.filter((l) => l.startsWith('fuzz: target=')).map((l) => /target=(\S+)/.exec(l)![1]);
  assert.deepEqual(order, TARGETS.map((t) => t.name), 'targets not reported in their order');
});

test('network campaign, 15 s: mutated frames from a keyless stranger and from m3\'s key, mutated public API requests; the federation keeps committing and no service exits', { timeout: 240_000 }, async () => {
  const { code, out } = await fuzzCli(['--network', '--seconds', '15', '--seed', '20261125']);
  assert.equal(code, 0, out);
  const line = out.split('\n').find((l) => l.startsWith('fuzz: network '));
  assert.ok(line, out);
  const sent = (k: string) => Number(new RegExp(`${k}=(\\d+)`).exec(line)?.[1] ?? 0);
  for (const k of ['consensus_frames', 'raw_streams', 'exchange', 'grpc']) assert.ok(sent(k) > 0, `nothing sent as ${k}: ${line}`);
  const [from, to] = /heights=(\d+)->(\d+)/.exec(line)!.slice(1).map(Number) as [number, number];
  assert.ok(to >= from + 3, `heights ${from}->${to}`);
  assert.match(out.trim().split('\n').at(-1)!, /^fuzz: targets=1 execs=\d+ failures=0$/);
});

test('the runner refuses an unknown target (exit 2)', async () => {
  const { code, out } = await fuzzCli(['--target', 'no-such-target', '--seconds', '1']);
  assert.equal(code, 2);
  assert.match(out, /no target no-such-target/);
});

test('the runner refuses a --jobs that is not a whole number ≥ 1 (exit 2)', async () => {
  for (const jobs of ['0', '1.5', 'two']) {
    const { code, out } = await fuzzCli(['--jobs', jobs, '--seconds', '1']);
    assert.equal(code, 2, `--jobs ${jobs}: ${out}`);
    assert.match(out, /--jobs must be a whole number/);
  }
});

test('every target has a seed corpus captured from the project\'s encoders', () => {
  for (const t of TARGETS) assert.ok(loadCorpus(t.name).length >= 3, `fuzz/corpus/${t.name}/ holds ${loadCorpus(t.name).length} seeds`);
});

// ------------------------------------------------------------------ a fuzzer that can fail

/** A record: a one-byte length, then that many bytes, then a one-byte checksum of them. */
function decoder(trustLength: boolean) {
  return (b: Uint8Array): number[] => {
    const len = b[0];
    if (len === undefined) throw new FedError('RECORD_INVALID', 'empty');
    if (!trustLength && b.length < 2 + len) throw new FedError('RECORD_INVALID', `length ${len} but ${b.length - 1} bytes follow`);
    const body = b.subarray(1, 1 + len);
    const out: number[] = [];
    for (let i = 0; i < len; i++) out.push(body[i]!.valueOf()); // trusting the length: reads past the end
    const sum = out.reduce((a, x) => (a + x) & 0xff, 0);
    if (b[1 + len]!.valueOf() !== sum) throw new FedError('RECORD_INVALID', 'bad checksum');
    return out;
  };
}

function recordTarget(trustLength: boolean): FuzzTarget<number[]> {
  const decode = decoder(trustLength);
  const encode = (xs: number[]) => Uint8Array.from([xs.length, ...xs, xs.reduce((a, x) => (a + x) & 0xff, 0)]);
  return {
    name: trustLength ? 'trusting-record' : 'careful-record', describe: 'a test decoder', sources: [],
    generate: fc.uint8Array({ maxLength: 40 }),
    run: (b) => { decode(b); },
    refusal: (err) => isFedError(err, 'RECORD_INVALID'),
    roundTrip: { values: fc.array(fc.nat({ max: 255 }), { maxLength: 30 }), encode, decode },
  };
}

test('a decoder that trusts its length field is caught, with the input and the seed; its careful twin passes', async () => {
  const corpus = [Uint8Array.from([3, 1, 2, 3, 6])];
  const broken = await runTarget(recordTarget(true) as FuzzTarget, { ms: 3000, seed: 7, corpus });
  assert.ok(broken.failure, 'the trusting decoder was not caught');
  assert.match(broken.failure.error, /TypeError/);
  assert.equal(broken.failure.seed, 7);
  const input = Buffer.from(broken.failure.inputHex, 'hex');
  assert.ok(input.length < 2 + input[0]!, `the failing input ${broken.failure.inputHex} announces more than it holds`);
  const careful = await runTarget(recordTarget(false) as FuzzTarget, { ms: 1500, seed: 7, corpus });
  assert.equal(careful.failure, undefined, careful.failure?.error);
  assert.ok(careful.execs > 100 && careful.refused > 0 && careful.roundTrips > 0);
});

test('an input that hangs past the time bound is a failure', async () => {
  const slow: FuzzTarget = {
    name: 'slow', describe: 'a test decoder', sources: [], generate: fc.uint8Array({ maxLength: 4 }), refusal: () => false,
    // Spins until it has spent 150 ms of CPU (wall time would depend on the machine's load).
    run: (b) => { if (b.length === 3) { const c0 = process.cpuUsage(); for (;;) { const c = process.cpuUsage(c0); if (c.user + c.system >= 150_000) break; } } },
  };
  const r = await runTarget(slow, { ms: 2000, seed: 1, timeBoundMs: 100 });
  assert.match(r.failure?.error ?? '', /took .* ms of CPU \(bound 100 ms\) twice/);
});

test('time off the CPU (a busy machine) is not a hang within the wall bound; an input that waits past it is', async () => {
  const blocked = new Int32Array(new SharedArrayBuffer(4));
  const waits = (ms: number): FuzzTarget => ({
    name: 'waits', describe: 'a test decoder', sources: [], generate: fc.uint8Array({ maxLength: 4 }), refusal: () => false,
    // Atomics.wait blocks the thread without spending CPU, as being descheduled does.
    run: (b) => { if (b.length === 3) Atomics.wait(blocked, 0, 0, ms); },
  });
  const descheduled = await runTarget(waits(150), { ms: 1500, seed: 1, timeBoundMs: 100 });
  assert.equal(descheduled.failure, undefined, descheduled.failure?.error);
  assert.ok(descheduled.execs > 10);
  const stuck = await runTarget(waits(WALL_FACTOR * 100 + 100), { ms: 1500, seed: 1, timeBoundMs: 100 });
  assert.match(stuck.failure?.error ?? '', /took .* ms of wall time \(bound 1000 ms\) twice/);
});

// ------------------------------------------------------------------ what the campaign found

test('found by config-files: a YAML alias bomb is CONFIG_INVALID, not a ReferenceError out of the parser', () => {
  const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  for (const parse of [(t: string) => parseConfText(t), (t: string) => parsePeersText(t), (t: string) => parseCardText(t, 'card.yaml')]) {
    assert.throws(() => parse(bomb), (err) => isFedError(err, 'CONFIG_INVALID') && /alias/i.test(err.message));
  }
});

test('found by genesis-card: YAML keys are checked for duplicates in linear time (a 40,000-key card)', () => {
  const card = `slh_dsa:\n${Array.from({ length: 40_000 }, (_, i) => `  k${i}: ${i}`).join('\n')}\n`;
  const start = performance.now();
  assert.throws(() => parseCardText(card, 'card.yaml'), (err) => isFedError(err, 'CONFIG_INVALID'));
  const ms = performance.now() - start;
  // The yaml library's own check compared every key with every earlier one: ~20 s here; one pass: ~2 s.
  assert.ok(ms < 8000, `a ${card.length}-byte card took ${ms.toFixed(0)} ms`);
  assert.throws(() => parseConfText('node: {name: a}\nnode: {name: b}\n'), (err) => isFedError(err, 'CONFIG_INVALID') && /node: Map keys must be unique/.test(err.message));
  assert.throws(() => parseConfText('x:\n  y: 1\n  y: 2\n'), (err) => isFedError(err, 'CONFIG_INVALID') && /y: Map keys must be unique/.test(err.message));
});

test('found by genesis-card: flow collections nested 2,000 deep are refused before the YAML parser reads them; 64 deep, and brackets in quotes or comments, are not', () => {
  // The input the campaign kept (seed 20261125): a byte, 2,000 [ then 2,000 ]: 129 ms in the parser.
  const deep = `\u0001${'['.repeat(2_000)}${']'.repeat(2_000)}`;
  for (const parse of [(t: string) => parseConfText(t), (t: string) => parsePeersText(t), (t: string) => parseCardText(t, 'card.yaml')]) {
    const start = performance.now();
    assert.throws(() => parse(deep), (err) => isFedError(err, 'CONFIG_INVALID') && /line 1: flow collections \(\[ and \{\) nested deeper than 64/.test(err.message));
    assert.ok(performance.now() - start < 20, 'refused in one pass');
  }
  assert.throws(() => parseConfText(`node:\n  name: a\nx: ${'{a: '.repeat(65)}1${'}'.repeat(65)}\n`), (err) => isFedError(err, 'CONFIG_INVALID') && /line 3: .*nested deeper/.test(err.message));
  // At the bound the parser reads it (and the schema has its say); quoted and commented brackets are text.
  const atBound = `x: ${'['.repeat(64)}1${']'.repeat(64)}\n`;
  assert.throws(() => parseConfText(atBound), (err) => isFedError(err, 'CONFIG_INVALID') && !/nested deeper/.test(err.message));
  const quoted = `x: "${'['.repeat(100)}"\ny: '${'{'.repeat(100)}'\n# ${'['.repeat(100)}\n`;
  assert.throws(() => parseConfText(quoted), (err) => isFedError(err, 'CONFIG_INVALID') && !/nested deeper/.test(err.message));
});

test('found by wire-frame: a frame with two bodies, the first cut by a field numbered 0, is not glanced at (peek and decoder read different request ids)', () => {
  // block_response twice: the first holds a field 0, where the generated decoder stops that message
  // and reads on from inside it, swallowing the second (request 10, oldest height 421) as unknown fields.
  const input = Buffer.from('0a0a66757a7a2d636861696e3205006861696e3205080a20a503', 'hex');
  const wire = TARGETS.find((t) => t.name === 'wire-frame')!;
  assert.doesNotThrow(() => { try { wire.run(input); } catch (err) { if (!wire.refusal(err)) throw err; } });
  assert.equal(peekFrame(input), undefined, 'left to the decoder');
  const one = Buffer.from('0a0a66757a7a2d636861696e3205080a20a503', 'hex');
  assert.deepEqual(peekFrame(one), { kind: 'block-response', requestId: 10 }, 'the same frame with one body is read');
  assert.equal(peekFrame(Buffer.from('0a0a66757a7a2d636861696e320300080a', 'hex')), undefined, 'a field 0 in the body: left to the decoder');
});
