// The safety state on disk: one JSON file with a SHA-256 checksum over its content, replaced
// atomically (temp file, fsync, rename, fsync of the directory) before any signature that
// depends on it leaves the process. A missing file is reported as missing; a truncated,
// corrupt or tampered one is an error that names the file and the reason.
// With a token (custody pkcs11) the file also carries an HMAC made by a token-held key over its
// checksum and a record counter, and the token keeps the counter of the newest record: a file edited,
// or swapped for an older valid one (rollback), is refused at load (authenticatedStore).
// Must never reset, repair or overwrite a state file it could not read.

import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import type { SignerSafety } from './rules.ts';

/** A failure of the key's token itself (absent, its library failing, the PIN refused, a key gone): every code pkcs11.ts Token throws. */
export const isTokenError = (err: unknown): err is FedError => err instanceof FedError && err.code.startsWith('SIGNER_TOKEN_');

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
  /** custody pkcs11: the token key's label, this record's counter, HMAC-SHA-256 over both and sha256. */
  auth: z.strictObject({ key: z.string().min(1), counter: count, hmac: hex(32) }).optional(),
});

type StateAuth = NonNullable<z.infer<typeof envelopeSchema>['auth']>;

/**
 * A kept signature's base64, made once per signature: the state keeps up to five (~17 KB each,
 * RECENT_LIMIT) and is written before every signature leaves, so four of them were encoded again
 * each time. Signatures are never changed in place (rules.ts makes a new slot for each one).
 */
const base64Of = new WeakMap<Uint8Array, string>();
function signatureBase64(sig: Uint8Array): string {
  let text = base64Of.get(sig);
  if (text === undefined) {
    text = Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64');
    base64Of.set(sig, text);
  }
  return text;
}

function stateToJson(s: SignerSafety): unknown {
  return { ...s, recent: s.recent.map((r) => ({ ...r, signature: signatureBase64(r.signature) })) };
}

/**
 * The file's text: the state with a checksum over its canonical JSON (and, with a token, its HMAC).
 * The envelope is one field a line; the state is that canonical JSON itself, on one line — the
 * bytes the checksum covers, serialised once (they are ~115 KB with five signatures, and this runs
 * on every signature).
 */
export function encodeSafety(s: SignerSafety, auth?: (sha256: string) => StateAuth): string {
  const state = JSON.stringify(stateToJson(s));
  const sha256 = sha256Hex(state);
  const authLine = auth ? `,\n "auth": ${JSON.stringify(auth(sha256))}` : '';
  return `{\n "format": ${JSON.stringify(FORMAT)},\n "version": ${VERSION},\n "sha256": "${sha256}",\n "state": ${state}${authLine}\n}\n`;
}

function corrupt(file: string, why: string, cause?: unknown): FedError {
  return new FedError('SIGNER_STATE_CORRUPT',
    `safety state ${file} cannot be trusted: ${why}. The signer will not start and will not reset it; restore it from a backup or an export (import-state)`,
    { file, why }, cause === undefined ? undefined : { cause });
}

/** Parses and checks a state file's text; throws SIGNER_STATE_CORRUPT naming `file` and the reason. */
export function decodeSafety(text: string, file: string): SignerSafety {
  return decodeEnvelope(text, file).state;
}

function decodeEnvelope(text: string, file: string): { state: SignerSafety; sha256: string; auth: StateAuth | undefined } {
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
  return {
    state: { ...s, recent: s.recent.map((r) => ({ ...r, signature: new Uint8Array(Buffer.from(r.signature, 'base64')) })) },
    sha256: env.data.sha256,
    auth: env.data.auth,
  };
}

export interface SafetyStore {
  readonly file: string;
  /** The token key that authenticates the state (custody pkcs11), else undefined. */
  readonly authenticatedBy?: string;
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

/** What authenticatedStore needs from the token (custody.ts builds it over pkcs11.ts). */
export interface StateAuthority {
  /** The token key's label as recorded in the file, and a description for messages. */
  readonly key: string;
  readonly describe: string;
  /** HMAC-SHA-256 under the token's key; throws SIGNER_TOKEN_FAILED when the token does not answer. */
  mac(data: Uint8Array): Uint8Array;
  /** The newest record's counter as the token keeps it; undefined before the first. */
  readCounter(): bigint | undefined;
  /** Raises the token's counter to `value`. */
  writeCounter(value: bigint): void;
}

const macInput = (key: string, counter: number, sha256: string): Uint8Array =>
  Buffer.from(JSON.stringify([FORMAT, 'auth', 1, key, counter, sha256]));

function unavailable(authority: StateAuthority, what: string, written: boolean, cause: unknown): FedError {
  return new FedError('SIGNER_CUSTODY_UNAVAILABLE',
    `${what}: ${authority.describe} does not answer (${errorMessage(cause)}); the signer signs nothing until it does${written ? ' (the state file was written; only the token\'s counter lags one record)' : ' (nothing was written)'}`,
    { key: authority.key, written }, { cause });
}

/**
 * The safety state bound to a token. Each record carries a counter and an HMAC (token key) over
 * the counter and the state's checksum; the token keeps the newest counter. Save: MAC, then the
 * file (durable), then the token's counter — so a crash leaves the file one record ahead of the
 * token at most, which load accepts (and catches the token up). Load refuses a file without an
 * HMAC (SIGNER_STATE_UNAUTHENTICATED), one whose HMAC fails (SIGNER_STATE_TAMPERED: edited, or
 * another token's), one behind the token's counter (SIGNER_STATE_ROLLBACK: an older copy put back),
 * or more than one record ahead (SIGNER_STATE_COUNTER).
 */
export function authenticatedStore(file: string, authority: StateAuthority): SafetyStore {
  let counter: number | undefined;
  const refuse = (code: string, why: string) => new FedError(code,
    `safety state ${file}: ${why}. The signer refuses to sign until an operator resolves it (docs/signer.md, "Safety state bound to the token")`, { file, key: authority.key });
  return {
    file,
    authenticatedBy: authority.key,
    async load() {
      const text = await readIfExists(file);
      if (text === undefined) return undefined;
      const { state, sha256, auth } = decodeEnvelope(text, file);
      if (auth === undefined || auth.key !== authority.key) {
        throw refuse('SIGNER_STATE_UNAUTHENTICATED', auth === undefined
          ? `it carries no HMAC of ${authority.describe} (written by the file back-end, an import or by hand); if it is this key's newest state, bind it: signer bind-state`
          : `it is authenticated by token key "${auth.key}", not by ${authority.describe}`);
      }
      const mac = authority.mac(macInput(auth.key, auth.counter, sha256));
      const claimed = Buffer.from(auth.hmac, 'hex');
      if (claimed.length !== mac.length || !timingSafeEqual(claimed, mac)) {
        throw refuse('SIGNER_STATE_TAMPERED', `its HMAC does not verify under ${authority.describe}: the file was edited, or written under another token's key`);
      }
      const onToken = authority.readCounter();
      if (onToken === undefined) throw refuse('SIGNER_STATE_COUNTER', `${authority.describe} holds no state counter (deleted from the token?) while the file is record ${auth.counter}`);
      if (BigInt(auth.counter) < onToken) {
        throw refuse('SIGNER_STATE_ROLLBACK', `it is record ${auth.counter} but the token's counter is at ${onToken}: an older copy of this key's state was put back (rollback)`);
      }
      if (BigInt(auth.counter) > onToken + 1n) {
        throw refuse('SIGNER_STATE_COUNTER', `it is record ${auth.counter} but the token's counter is at ${onToken}: more than the one record a crash can leave`);
      }
      if (BigInt(auth.counter) === onToken + 1n) authority.writeCounter(BigInt(auth.counter));
      counter = auth.counter;
      return state;
    },
    async save(state) {
      let next: number;
      let text: string;
      try {
        counter ??= Number(authority.readCounter() ?? 0n);
        const n = counter + 1;
        text = encodeSafety(state, (sha256) => ({ key: authority.key, counter: n, hmac: Buffer.from(authority.mac(macInput(authority.key, n, sha256))).toString('hex') }));
        next = n;
      } catch (err) {
        if (err instanceof FedError && !isTokenError(err)) throw err;
        throw unavailable(authority, 'authenticating the safety state', false, err);
      }
      await writeFileAtomic(file, text, { mode: 0o600 });
      counter = next;
      try {
        authority.writeCounter(BigInt(next));
      } catch (err) {
        if (err instanceof FedError && !isTokenError(err)) throw err;
        throw unavailable(authority, 'raising the token\'s state counter', true, err);
      }
    },
  };
}
