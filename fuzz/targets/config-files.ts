// Targets config-files and genesis-card: the YAML files a node reads — conf.yaml, peers.yaml and
// signer.yaml (libs/config parse.ts, signer.ts: an operator's, but peers.yaml is also written from
// what peers announced), and the member cards and genesis.yaml that come from other operators
// (libs/config/genesis.ts parseCardText, parseGenesisText). Refusal: FedError CONFIG_INVALID,
// GENESIS_TAMPERED or GENESIS_INVALID naming the file and field. Byte 0 picks the file kind.

import { isFedError } from '#libs/errors/index.ts';
import { parseCardText, parseConfText, parseGenesisText, parsePeersText, parseSignerConfText } from '#libs/config/index.ts';
import type { FuzzTarget } from '../engine.ts';
import { loadCorpus } from '../corpus.ts';
import { yamlInputs } from './yaml-values.ts';
import fc from 'fast-check';

const utf8 = new TextDecoder();

function kinded(parsers: readonly ((text: string) => unknown)[]) {
  return (input: Uint8Array): unknown => parsers[(input[0] ?? 0) % parsers.length]!(utf8.decode(input.subarray(1)));
}

/** Seeds are stored with their kind byte first; the YAML generator works on the text after it. */
function generateFor(target: string, kinds: number): fc.Arbitrary<Uint8Array> {
  const seeds = loadCorpus(target);
  const byKind = Array.from({ length: kinds }, (_, k) => seeds.filter((s) => s[0] === k).map((s) => s.subarray(1)));
  return fc.oneof(...byKind.map((s, k) => yamlInputs(s).map((b) => Uint8Array.from([k, ...b]))));
}

const configRefusal = (err: unknown) => isFedError(err, 'CONFIG_INVALID');
/**
 * CPU per KiB of YAML on top of the fixed bound. The parser is linear (a conf.yaml of 1,000 to
 * 16,000 unknown keys: 17–24 µs a key, warm) but slow while cold: a CI run (2026-12-01) refused a
 * 58,958-byte conf.yaml of 5,000 keys that took 484 ms of CPU twice against a bound of 388 (5 ms a
 * KiB); alone it took 470 and 417 ms in a fresh process, then 185–226. At 10 ms a KiB the bound for
 * it is 676 ms; a super-linear blowup at that size takes seconds.
 */
const YAML_MS_PER_KIB = 10;

export const configFiles: FuzzTarget = {
  name: 'config-files',
  describe: 'conf.yaml, peers.yaml and signer.yaml as their parsers read them (YAML, then the zod schemas and value parsers: durations, multiaddrs, keys, CIDRs)',
  sources: ['libs/config/parse.ts', 'libs/config/schema.ts', 'libs/config/signer.ts', 'libs/config/values.ts'],
  generate: generateFor('config-files', 3),
  run: (input) => { kinded([(t) => parseConfText(t), (t) => parsePeersText(t), (t) => parseSignerConfText(t)])(input); },
  msPerKiB: YAML_MS_PER_KIB,
  refusal: configRefusal,
};

export const genesisCard: FuzzTarget = {
  name: 'genesis-card',
  describe: 'member cards and genesis.yaml, which come from other operators: schema, digest, member order, duplicates, parameter sets',
  sources: ['libs/config/genesis.ts', 'libs/config/parse.ts', 'libs/config/schema.ts'],
  generate: generateFor('genesis-card', 2),
  run: (input) => { kinded([(t) => parseCardText(t, 'card.yaml'), (t) => parseGenesisText(t, 'genesis.yaml')])(input); },
  msPerKiB: YAML_MS_PER_KIB,
  refusal: (err) => configRefusal(err) || isFedError(err, 'GENESIS_TAMPERED') || isFedError(err, 'GENESIS_INVALID'),
};
