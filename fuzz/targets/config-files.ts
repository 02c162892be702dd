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

export const configFiles: FuzzTarget = {
  name: 'config-files',
  describe: 'conf.yaml, peers.yaml and signer.yaml as their parsers read them (YAML, then the zod schemas and value parsers: durations, multiaddrs, keys, CIDRs)',
  sources: ['libs/config/parse.ts', 'libs/config/schema.ts', 'libs/config/signer.ts', 'libs/config/values.ts'],
  generate: generateFor('config-files', 3),
  run: (input) => { kinded([(t) => parseConfText(t), (t) => parsePeersText(t), (t) => parseSignerConfText(t)])(input); },
  msPerKiB: 5,
  refusal: configRefusal,
};

export const genesisCard: FuzzTarget = {
  name: 'genesis-card',
  describe: 'member cards and genesis.yaml, which come from other operators: schema, digest, member order, duplicates, parameter sets',
  sources: ['libs/config/genesis.ts', 'libs/config/parse.ts', 'libs/config/schema.ts'],
  generate: generateFor('genesis-card', 2),
  run: (input) => { kinded([(t) => parseCardText(t, 'card.yaml'), (t) => parseGenesisText(t, 'genesis.yaml')])(input); },
  msPerKiB: 5,
  refusal: (err) => configRefusal(err) || isFedError(err, 'GENESIS_TAMPERED') || isFedError(err, 'GENESIS_INVALID'),
};
