// Runs scenarios against one shared federation: start it, stop m3's consensus and put the
// Byzantine member in its place, then for each scenario: a health check, the attack, and the
// scenario's own checks. Every process started here is stopped at the end (and on a signal);
// the temporary directory is removed unless KEEP_BYZ=1 (or a scenario failed and KEEP_BYZ is set).

import { Federation, BYZANTINE } from './federation.ts';
import { ByzantineMember } from './member.ts';
import { healthy, SCENARIOS, type Scenario } from './scenarios.ts';

export interface Outcome { name: string; defeated: boolean; ms: number; notes: string[]; error?: string }

export async function runScenarios(pick: (s: Scenario) => boolean, say: (s: string) => void = console.log): Promise<Outcome[]> {
  const chosen = SCENARIOS.filter(pick);
  const out: Outcome[] = [];
  const fed = await Federation.start();
  let byz: ByzantineMember | undefined;
  const onSignal = () => { byz?.close(); void fed.stop().then(() => fed.remove(Boolean(process.env.KEEP_BYZ))).finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`# byzantine: federation of 4 up in ${fed.dir} (chain ${fed.chainId}, ports ${fed.basePort}+)`);
    say(`# byzantine: warm-up: ${await healthy(fed, 3, 90_000)}`);
    // m3's consensus process goes; the Byzantine member takes its key, its LMDB and its gateway.
    await fed.stopService(BYZANTINE, 'consensus');
    byz = await ByzantineMember.start({ memberDir: fed.memberDir(BYZANTINE), gatewayAddress: `127.0.0.1:${fed.ports(BYZANTINE).gateway}`, storeAddress: `127.0.0.1:${fed.ports(BYZANTINE).store}` });
    await byz.ready();
    say(`# byzantine: m3 is Byzantine (attached to its gateway, frame limit ${byz.maxFrameBytes} bytes); ${await healthy(fed, 3, 90_000)}`);
    let previous = 'the start';
    for (const s of chosen) {
      const t0 = Date.now();
      const notes: string[] = [];
      const note = (x: string) => { notes.push(x); say(`#   ${s.name}: ${x}`); };
      try {
        byz.play({});
        // A barrier: the federation has recovered from the previous scenario (or this one fails, saying so).
        try {
          note(`before: ${await healthy(fed, 2, 120_000)}`);
        } catch (err) {
          throw new Error(`the federation did not recover from ${previous}: ${err instanceof Error ? err.message : String(err)}`);
        }
        await s.run({ fed, byz, note });
        out.push({ name: s.name, defeated: true, ms: Date.now() - t0, notes });
        say(`ok ${s.name} defeated (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        out.push({ name: s.name, defeated: false, ms: Date.now() - t0, notes, error });
        say(`FAIL ${s.name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${error}`);
        for (const w of (await fed.warnings()).slice(-12)) say(`#     ${w}`);
      } finally {
        byz.play({});
        previous = s.name;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    byz?.close();
    await fed.stop();
    await fed.remove(Boolean(process.env.KEEP_BYZ));
  }
  return out;
}

export function summary(outcomes: readonly Outcome[]): string {
  const defeated = outcomes.filter((o) => o.defeated).length;
  return `byzantine: scenarios=${outcomes.length} defeated=${defeated} failed=${outcomes.length - defeated}`;
}
