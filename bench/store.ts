// Store reload latency: from the trigger (SIGHUP sent, or the file saved) to `config.reloaded`
// seen by a NATS subscriber, against a real store process. The requirement is under 2 s.
// The baseline in the same run: one atomic write (temp, fsync, rename, fsync dir) on this disk,
// the floor under every reload that writes a file.
// Run: node_modules/.bin/node bench/store.ts [--quick]

import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigReloaded } from '#libs/gen/btcfed/v1/events.pb.ts';
import { writeFileAtomic } from '#libs/files/index.ts';
import { makeMember } from '../test/support/member.ts';
import { recordEvents, startStore } from '../test/support/store.ts';
import { ms, printMachine, stats, table } from './support.ts';

const quick = process.argv.includes('--quick');
const rounds = quick ? 5 : 50;

async function fsyncBaseline(dir: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await writeFileAtomic(path.join(dir, 'baseline.yaml'), `x: ${i}\n`);
    samples.push(performance.now() - t0);
  }
  return samples;
}

async function main(): Promise<void> {
  const m = await makeMember();
  printMachine('store reload benchmark' + (quick ? ' (--quick)' : ''), [`data dir   ${m.dir}`]);
  const events = await recordEvents(`btcfed.${m.name}.store.config.reloaded`, (b) => ConfigReloaded.decode(b));
  const store = await startStore(m);
  try {
    const original = await fs.readFile(m.confPath, 'utf8');
    const edit = (i: number) => original.replace(/exchange_interval: .*/, `exchange_interval: ${10 + (i % 50)}s`);
    const measure = async (how: 'signal' | 'file'): Promise<{ seen: number[]; inside: number[] }> => {
      const seen: number[] = [];
      const inside: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const from = events.seen.length;
        let t0: number;
        if (how === 'signal') {
          // Save, then signal at once: the signal's reload wins the race with the watch's debounce.
          await fs.writeFile(m.confPath, edit(i));
          t0 = performance.now();
          store.svc.proc.kill('SIGHUP');
        } else {
          t0 = performance.now();
          await fs.writeFile(m.confPath, edit(i + 7));
        }
        const ev = await events.next(() => true, 5000, from);
        seen.push(performance.now() - t0);
        inside.push(ev.data.durationSeconds * 1000);
        await new Promise((r) => setTimeout(r, 120)); // let the watch settle so rounds do not merge
      }
      return { seen, inside };
    };
    const signal = await measure('signal');
    const file = await measure('file');
    const base = await fsyncBaseline(m.dir);
    const row = (name: string, xs: number[]) => { const s = stats(xs); return [name, String(s.n), ms(s.p50), ms(s.p95), ms(s.max)]; };
    console.log(table(['what', '', 'p50 ms', 'p95 ms', 'max ms'], [
      row('SIGHUP → config.reloaded seen on NATS', signal.seen),
      row('  of which inside the store (trigger → in force)', signal.inside),
      row('file saved → config.reloaded seen (watch + 50 ms debounce)', file.seen),
      row('  of which inside the store', file.inside),
      row('baseline: one atomic write + fsyncs', base),
    ]));
    console.log('\nrequirement: reload under 2 s');
  } finally {
    await store.close();
    await events.close();
    await m.cleanup();
  }
}

await main();
