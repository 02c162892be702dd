// The safety state on disk: one JSON file with a SHA-256 checksum over its content, replaced
// atomically (temp file, fsync, rename, fsync of the directory) before any signature that
// depends on it leaves the process. A missing file is reported as missing; a truncated,
// corrupt or tampered one is an error that names the file and the reason.
// Must never reset, repair or overwrite a state file it could not read.

import { z } from 'zod';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import type { SignerSafety } from './rules.ts';

export const STATE_FILE = 'safety-state.json';
const FORMAT = 'btcfed-signer-state';
/** Version 1 is version 2 without `epoch`: a state written before epochs existed is epoch 0's. */
const VERSION = 2;

const hex = (bytes?: number) => z.string().regex(bytes ? new RegExp(`^[0-9a-f]{${bytes * 2}}$`) : /^([0-9a-f]{2})+$/, 'must be lower-case hex');
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const phase = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]);

const slotSchema = z.strictObject({
  kind: z.enum(['proposal', 'vote', 'new-view']),
  view: count,
  phase,
  digest: hex(32),
  blockHash: hex(32),
  qcView: count.optional(),
  signature: z.base64().min(1),
});

const stateSchema = z.strictObject({
  chainId: z.string().min(1),
  publicKey: hex(),
  epoch: count,
  lastVote: z.strictObject({ view: count, phase }),
  lastProposalView: count,
  lastNewView: count,
  locked: z.strictObject({ view: count, blockHash: hex(32) }),
  recent: z.array(slotSchema),
  signed: count,
});

const envelopeSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.union([z.literal(1), z.literal(VERSION)]),
  sha256: hex(32),
  state: z.unknown(),
});

function stateToJson(s: SignerSafety): unknown {
  return { ...s, recent: s.recent.map((r) => ({ ...r, signature: Buffer.from(r.signature).toString('base64') })) };
}

/** The file's text: the state with a checksum over its canonical JSON. */
export function encodeSafety(s: SignerSafety): string {
  const state = stateToJson(s);
  const body = JSON.stringify(state);
  return `${JSON.stringify({ format: FORMAT, version: VERSION, sha256: sha256Hex(body), state }, null, 1)}\n`;
}

function corrupt(file: string, why: string, cause?: unknown): FedError {
  return new FedError('SIGNER_STATE_CORRUPT',
    `safety state ${file} cannot be trusted: ${why}. The signer will not start and will not reset it; restore it from a backup or an export (import-state)`,
    { file, why }, cause === undefined ? undefined : { cause });
}

/** Parses and checks a state file's text; throws SIGNER_STATE_CORRUPT naming `file` and the reason. */
export function decodeSafety(text: string, file: string): SignerSafety {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `not valid JSON, probably truncated (${errorMessage(err)})`, err);
  }
  const env = envelopeSchema.safeParse(raw);
  if (!env.success) {
    const first = env.error.issues[0];
    throw corrupt(file, `not a signer state file (${first?.path.join('.') || '(file)'}: ${first?.message})`);
  }
  if (sha256Hex(JSON.stringify(env.data.state)) !== env.data.sha256) throw corrupt(file, 'checksum mismatch (the content was changed or damaged)');
  const raw1 = env.data.state;
  const state = env.data.version === 1 && raw1 !== null && typeof raw1 === 'object' ? { epoch: 0, ...(raw1 as object) } : raw1;
  const parsed = stateSchema.safeParse(state);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw corrupt(file, `field state.${first?.path.join('.')}: ${first?.message}`);
  }
  const s = parsed.data;
  return { ...s, recent: s.recent.map((r) => ({ ...r, signature: new Uint8Array(Buffer.from(r.signature, 'base64')) })) };
}

export interface SafetyStore {
  readonly file: string;
  /** undefined when there is no state file at all. */
  load(): Promise<SignerSafety | undefined>;
  /** Durable when it resolves. */
  save(state: SignerSafety): Promise<void>;
}

export function safetyStore(file: string): SafetyStore {
  return {
    file,
    async load() {
      const text = await readIfExists(file);
      if (text === undefined) return undefined;
      return decodeSafety(text, file);
    },
    async save(state) {
      await writeFileAtomic(file, encodeSafety(state), { mode: 0o600 });
    },
  };
}
