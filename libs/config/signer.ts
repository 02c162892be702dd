// The schema of signer.yaml, the signer's OWN config file: it lives in the signer's data dir,
// possibly on another (hardened) host, and holds the validator set the signer checks QCs
// against — never one it is sent. Errors name file, field and reason like conf.yaml's do.
// Pieces shared with conf.yaml (validator entries, crypto, logging, nats, tls, chain id) are
// taken from confSchema itself so the two files cannot drift apart.
// Must never hold a passphrase or key material: only where to find them.

import path from 'node:path';
import { z } from 'zod';
import { fromZod, parseYaml } from './parse.ts';
import { MEMBER_NAME, checkValidators, confSchema, endpoint, fingerprint, metricsEndpoint, natsSection } from './schema.ts';

const shared = confSchema.shape;

/** A plain file name inside the data dir, or an absolute path. */
const fileName = z.string().min(1).refine((v) => !v.includes('\0'), 'must be a file path');

/** A PKCS#11 object or token label: at most 32 bytes of printable text (CKA_LABEL, CK_TOKEN_INFO.label). */
const p11Label = z.string().min(1).max(32).regex(/^[\x20-\x7e]+$/, 'must be 1–32 printable ASCII characters');

/**
 * Where the SLH-DSA secret key is kept (docs/signer.md, "Key custody"). `file`: key_file, sealed
 * with a passphrase (scrypt). `pkcs11`: a token's non-extractable AES-256 key seals it (`sealed`,
 * the blob in sealed_file beside the signer), or the token holds and uses the key itself (`native`,
 * PKCS#11 3.2 CKM_SLH_DSA). The PIN is read from pin_file (mode 0600), never argv or environment.
 */
const custodySchema = z.discriminatedUnion('backend', [
  z.strictObject({ backend: z.literal('file') }),
  z.strictObject({
    backend: z.literal('pkcs11'),
    mode: z.enum(['sealed', 'native']).default('sealed'),
    /** The PKCS#11 module (shared library). */
    module: z.string().min(1).refine((v) => v.startsWith('/'), 'must be an absolute path').default('/usr/lib/softhsm/libsofthsm2.so'),
    /** The token by its label, or by slot id (exactly one). */
    token_label: p11Label.optional(),
    slot: z.number().int().min(0).optional(),
    /** The user PIN, one line, mode 0600; relative to the data dir. */
    pin_file: fileName,
    /** sealed: the AES key's label; native: the SLH-DSA key pair's label. The state's HMAC key is `<key_label>/state`. */
    key_label: p11Label.refine((v) => v.length <= 26, 'must be at most 26 characters (the state key adds "/state")'),
    /** sealed: the sealed secret key, relative to the data dir. */
    sealed_file: fileName.default('signer.sealed'),
  }).refine((c) => (c.token_label === undefined) !== (c.slot === undefined), { message: 'exactly one of token_label and slot is required', path: ['token_label'] }),
]);

export const signerConfSchema = z.strictObject({
  member: z.string().regex(MEMBER_NAME, 'must be 1–32 characters of a-z, 0-9 and "-", starting with a letter or digit'),
  chain_id: shared.consensus.unwrap().shape.chain_id,
  listen: endpoint('127.0.0.1:7400'),
  /** Required unless the signer runs with --insecure on loopback. */
  tls: shared.tls,
  /**
   * The SHA-256 fingerprints of the only client certificates that may call (the member's own
   * consensus service). Under TLS the signer refuses to start with none, unless allow_any_client.
   */
  allowed_clients: z.array(fingerprint).default([]),
  /** Explicit opt-out of the allow list: any certificate the CA signed may call (logged at every start). */
  allow_any_client: z.boolean().default(false),
  /**
   * The SHA-256 fingerprints of the operators' client certificates: the only callers that may ask
   * for a reconfiguration approval (ApproveReconfiguration). Never the consensus service's: a
   * compromised consensus host must not be able to approve a change of the validator set.
   */
  operator_clients: z.array(fingerprint).default([]),
  crypto: shared.crypto,
  /** The encrypted SLH-DSA key, relative to the data dir. */
  key_file: fileName.default('signer.key'),
  /** The key's custody; absent: `file` (key_file and a passphrase). */
  custody: custodySchema.default({ backend: 'file' }),
  passphrase_file: fileName.optional(),
  passphrase_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
  /** Absent: refusals are logged and journaled but not published. */
  nats: natsSection.optional(),
  metrics: metricsEndpoint,
  logging: shared.logging,
  /**
   * How far beyond the view of the QC a request carries the signer may sign (docs/signer.md):
   * a request at view v needs a QC at view ≥ v − max_view_jump. A liveness guard, not a safety rule.
   */
  max_view_jump: z.number().int().min(1).max(2 ** 40).default(100_000),
  /**
   * The audit journal's rotation: a new file once the current one passes rotate_mib, and the
   * keep_files newest old files kept (the rest deleted; each new file carries the hash chain on).
   */
  journal: z.strictObject({
    rotate_mib: z.number().int().min(1).max(4096).default(64),
    keep_files: z.number().int().min(1).max(10_000).default(16),
  }).default({ rotate_mib: 64, keep_files: 16 }),
  /**
   * The genesis validator set in index order (same shape as conf.yaml's); empty only before keygen.
   * Later epochs' sets come from the epoch-change proofs the signer is shown (epochs.json).
   */
  validators: shared.validators,
  /**
   * Start even though this key is not in the newest validator set the signer knows: a member
   * joining, or a member's new key after a rotation. It signs nothing until it is shown the
   * epoch-change proof of the change that adds its key. Off: such a key is refused at start.
   */
  standby: z.boolean().default(false),
}).superRefine((whole, ctx) => {
  // Runs even when some fields failed (every problem at once); each check skips what did not parse.
  const conf = whole as Partial<typeof whole>;
  const sources = (conf.passphrase_file ? 1 : 0) + (conf.passphrase_env ? 1 : 0);
  // A token-held key needs no passphrase (one may stay configured to import the old key file).
  const fileCustody = conf.custody === undefined || conf.custody.backend === 'file';
  if (fileCustody ? sources !== 1 : sources > 1) {
    ctx.addIssue({ code: 'custom', path: ['passphrase_file'], message: fileCustody ? 'exactly one of passphrase_file and passphrase_env is required' : 'at most one of passphrase_file and passphrase_env' });
  }
  checkValidators(conf.validators, conf.crypto?.param_set, ctx);
  if (Array.isArray(conf.operator_clients) && Array.isArray(conf.allowed_clients)) {
    // Fingerprints are normalised by the schema; one that failed it is not a string here.
    const consensus = new Set(conf.allowed_clients.filter((f) => typeof f === 'string'));
    conf.operator_clients.forEach((f, i) => {
      if (typeof f === 'string' && consensus.has(f)) {
        ctx.addIssue({ code: 'custom', path: ['operator_clients', i], message: 'is also in allowed_clients: an operator certificate must not be the consensus service\'s' });
      }
    });
  }
  if (conf.allow_any_client === true && Array.isArray(conf.allowed_clients) && conf.allowed_clients.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['allow_any_client'], message: 'contradicts allowed_clients: set one or the other' });
  }
}, { when: (payload) => typeof payload.value === 'object' && payload.value !== null });

export type SignerConfInput = z.input<typeof signerConfSchema>;
export type SignerConf = z.output<typeof signerConfSchema>;

export function parseSignerConfObject(data: unknown, file = 'signer.yaml'): SignerConf {
  const r = signerConfSchema.safeParse(data);
  if (!r.success) throw fromZod(file, r.error);
  return r.data;
}

export function parseSignerConfText(text: string, file = 'signer.yaml'): SignerConf {
  return parseSignerConfObject(parseYaml(text, file), file);
}

/**
 * Why a passphrase file sits where it must not — in the directory of the sealed key it opens, so
 * whoever copies that directory can open the key — or null. Paths resolve against the signer's dir.
 * `btcfed config check` refuses it (SIGNER_PASSPHRASE_BESIDE_KEY); the signer warns at start.
 */
export function passphraseBesideKey(dataDir: string, keyFile: string, passphraseFile: string): string | null {
  const key = path.resolve(dataDir, keyFile);
  const pass = path.resolve(dataDir, passphraseFile);
  if (path.dirname(key) !== path.dirname(pass)) return null;
  return `SIGNER_PASSPHRASE_BESIDE_KEY: ${pass} is in the directory of the sealed key ${key}: whoever copies that dir can open the key. `
    + 'Move it out (e.g. a systemd credential: passphrase_file: /run/credentials/btcfed-signer@<member>.service/passphrase) or use passphrase_env';
}
