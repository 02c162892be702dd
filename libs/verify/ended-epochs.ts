// What a follower keeps of the epochs it has walked: for each ended epoch, the height of its last
// block, that block's hash (the next epoch's root) and the change's transaction as the block
// carried it (with its approvals). Replayed from genesis with EpochHistory.apply, it gives every
// epoch's set again without fetching a proof (the approvals are checked again; the commit QCs were
// checked when the proofs were walked). The signer keeps its history this way (epochs.json) and a
// light client its trusted epochs (`btcfed verify --trusted-epochs`). One document format: a
// format name and version, a checksum over the rows, the rows, and fields the owner binds the
// file to (a light client: the chain and its genesis set). Pure: text in, text out.
// Must never return rows whose checksum does not match, nor accept a field it was not told of.

import { z } from 'zod';
import { sha256Hex, toHex } from '#libs/crypto/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { decodeReconfigTx, type EpochHistory } from '#libs/validators/index.ts';

export interface EndedEpoch {
  /** Height of the block that committed the change: the last block of its epoch. */
  height: number;
  /** That block's hash: the root of the next epoch. */
  root: Uint8Array;
  /** The change's transaction as the block carried it (encodeReconfigTx). */
  tx: Uint8Array;
}

const VERSION = 1;
const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 32 bytes of lower-case hex');
const rowSchema = z.strictObject({ height: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), root: hex32, tx: z.base64().min(1) });

/** The document: `format`, its version, the checksum, the `bound` fields (strings), one row per ended epoch. */
export function encodeEndedEpochs(format: string, ended: readonly EndedEpoch[], bound: Readonly<Record<string, string>> = {}): string {
  const rows = ended.map((e) => ({ height: e.height, root: toHex(e.root), tx: Buffer.from(e.tx).toString('base64') }));
  return `${JSON.stringify({ format, version: VERSION, ...bound, sha256: sha256Hex(JSON.stringify(rows)), ended: rows }, null, 1)}\n`;
}

export type DecodedEpochs = { ok: true; ended: EndedEpoch[]; bound: Record<string, string> } | { ok: false; why: string };

/** Parses and checks a document of `format` with exactly the `bound` field names; `why` names what failed. */
export function decodeEndedEpochs(text: string, format: string, bound: readonly string[] = []): DecodedEpochs {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, why: `not valid JSON, probably truncated (${errorMessage(err)})` };
  }
  const schema = z.strictObject({
    format: z.literal(format), version: z.literal(VERSION), sha256: hex32, ended: z.array(rowSchema),
    ...Object.fromEntries(bound.map((k) => [k, z.string()])),
  });
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return { ok: false, why: `field ${first?.path.join('.') || '(file)'}: ${first?.message}` };
  }
  const doc = parsed.data as { sha256: string; ended: Array<z.infer<typeof rowSchema>> } & Record<string, unknown>;
  if (sha256Hex(JSON.stringify(doc.ended)) !== doc.sha256) return { ok: false, why: 'checksum mismatch (the content was changed or damaged)' };
  return {
    ok: true,
    ended: doc.ended.map((e) => ({ height: e.height, root: Uint8Array.from(Buffer.from(e.root, 'hex')), tx: new Uint8Array(Buffer.from(e.tx, 'base64')) })),
    bound: Object.fromEntries(bound.map((k) => [k, doc[k] as string])),
  };
}

/**
 * Extends `history` with `ended` in order, each change checked again against the set it changed
 * (its approvals verified). Stops at the first that does not follow, saying which and why.
 */
export function replayEndedEpochs(history: EpochHistory, ended: readonly EndedEpoch[]): { ok: true } | { ok: false; why: string } {
  for (const [i, e] of ended.entries()) {
    try {
      const { change, approvals } = decodeReconfigTx(e.tx);
      history.apply({ change, approvals, height: e.height });
    } catch (err) {
      return { ok: false, why: `ended[${i}] (the end of epoch ${i}) does not follow from the epochs before it: ${errorMessage(err)}` };
    }
  }
  return { ok: true };
}
