// Building a LocalSigner from a data dir, refusing to start on anything it cannot trust:
// signer.yaml invalid, a key file others can read or that does not decrypt (or, with a token, a
// token absent, a wrong PIN, a key missing, a sealed key that does not unseal, a state whose HMAC
// or counter fails: custody.ts, state-file.ts), a key that is not
// in the newest validator set it knows (unless signer.yaml standby), no safety state without an
// explicit --init (and never an --init for a key the journal shows has signed before), a corrupt
// state or epoch history, a state of an epoch the history does not reach, a state or journal that
// belongs to another key or chain, a missing or torn journal.
// Must never create, reset or repair a safety state except on an explicit, first-time --init.

import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { FedError } from '#libs/errors/index.ts';
import { parseSignerConfText, passphraseBesideKey, type SignerConf } from '#libs/config/index.ts';
import { blockHash, createSlhDsa, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { genesisBlock } from '#libs/hotstuff/index.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import { readIfExists } from '#libs/files/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { EPOCHS_FILE, SignerEpochs } from './epochs.ts';
import { JOURNAL_FILE, openJournal, readJournal } from './journal.ts';
import { openCustodyKey, passphraseSource, type OpenedKey } from './custody.ts';
import { createQcChecker } from './qc-check.ts';
import { epochSafety, initialSafety, type SignerSafety } from './rules.ts';
import { LocalSigner, type Refusal } from './signer.ts';
import { STATE_FILE, type SafetyStore } from './state-file.ts';

export const CONF_FILE = 'signer.yaml';

export async function loadSignerConf(dataDir: string): Promise<SignerConf> {
  const file = path.join(dataDir, CONF_FILE);
  const text = await readIfExists(file);
  if (text === undefined) throw new FedError('SIGNER_CONF_MISSING', `${file} does not exist`, { file });
  return parseSignerConfText(text, file);
}

export { passphraseSource };

export function genesisHashOf(chainId: string): Uint8Array {
  return genesisBlock(chainId, blockHash).hash;
}

export interface OpenSignerOptions {
  dataDir: string;
  conf: SignerConf;
  /** Create the safety state if there is none (first start of a brand-new key only). */
  init: boolean;
  log: Logger;
  metrics?: Metrics;
  onRefusal?: (r: Refusal) => void;
  env?: NodeJS.ProcessEnv;
}

/** True when the journal records a signature handed out (or replayed) by this key. */
async function journalHasSigned(file: string): Promise<boolean> {
  try {
    for await (const { entry } of readJournal(file)) {
      // A rotated journal: what this key did is in older files (journal.ts); taken as having signed.
      if (entry.type === 'rotated') return true;
      if (entry.type === 'request' && (entry.decision === 'signed' || entry.decision === 'replayed')) return true;
    }
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function loadOrInitState(opts: OpenSignerOptions, publicKey: string, store: SafetyStore, journalFile: string): Promise<SignerSafety> {
  const stateFile = store.file;
  const existing = await store.load();
  const chainId = opts.conf.chain_id;
  if (existing) {
    if (opts.init) opts.log.warn({ file: stateFile }, '--init ignored: a safety state exists and is never reset');
    if (existing.publicKey !== publicKey || existing.chainId !== chainId) {
      throw new FedError('SIGNER_STATE_MISMATCH',
        `safety state ${stateFile} belongs to key ${existing.publicKey.slice(0, 16)}… on chain ${existing.chainId}, not to key ${publicKey.slice(0, 16)}… on ${chainId}`,
        { file: stateFile });
    }
    return existing;
  }
  if (!opts.init) {
    throw new FedError('SIGNER_STATE_MISSING',
      `no safety state at ${stateFile}: a key without a state file is refused. For a brand-new key start once with --init; when moving hosts, use import-state`,
      { file: stateFile });
  }
  if (await journalHasSigned(journalFile)) {
    throw new FedError('SIGNER_INIT_REFUSED',
      `--init refused: the journal ${journalFile} shows this key has signed before, so its safety state was lost; restore it (import-state) instead of starting over`,
      { file: stateFile });
  }
  // Journal first: a crash between the two leaves an init-only journal, which --init accepts again.
  const journal = await openJournal(journalFile, { create: true });
  await journal.append({ type: 'init', publicKey, chainId });
  await journal.close();
  const fresh = initialSafety(chainId, publicKey, genesisHashOf(chainId));
  await store.save(fresh);
  opts.log.info({ file: stateFile }, 'safety state initialised');
  return fresh;
}

/**
 * signer.yaml's validator set with this signer's seat: the validator its key is, which must also be
 * the one its member name is (one resolver, libs/validators). SIGNER_NOT_A_VALIDATOR otherwise.
 */
export function ownSeat(conf: Pick<SignerConf, 'validators' | 'member'>, publicKey: Uint8Array): ValidatorSet {
  const hint = 'signer.yaml\'s validators must list this key (the output of keygen) under this member\'s name before it runs';
  try {
    return ValidatorSet.fromConfig(conf.validators).withSelf({ name: conf.member, publicKey });
  } catch (err) {
    if (!(err instanceof FedError)) throw err;
    throw new FedError('SIGNER_NOT_A_VALIDATOR', `this signer (member ${conf.member}, public key ${toHex(publicKey)}): ${err.message}; ${hint}`,
      { publicKey: toHex(publicKey), member: conf.member, cause: err.code });
  }
}

/**
 * The newest known epoch's set with this signer's seat. In genesis's set the seat must be the one
 * both its key and its member name are (ownSeat), unless standing by; otherwise its key says (a
 * change may seat a key under any name, and a rotated-in key stands by under a name genesis seats
 * with another key). Not in the set: refused, unless signer.yaml standby.
 */
function seatIn(conf: SignerConf, epochs: SignerEpochs, publicKey: Uint8Array, log: Logger): ValidatorSet {
  const current = epochs.current;
  if (current.epoch === 0 && !conf.standby) return ownSeat(conf, publicKey);
  const set = current.withSelf({ publicKey }, { optional: true });
  if (set.self === undefined) {
    if (current.epoch > 0 && !conf.standby) {
      throw new FedError('SIGNER_NOT_A_VALIDATOR', `this signer (member ${conf.member}, public key ${toHex(publicKey)}) is not in the validator set of epoch ${current.epoch}, the newest in ${epochs.file}: it was removed or its key rotated out, so it signs nothing more; set standby: true in signer.yaml to run it anyway (it refuses every request)`,
        { publicKey: toHex(publicKey), member: conf.member, epoch: current.epoch });
    }
    log.warn({ epoch: current.epoch, validators: current.members.map((v) => v.name) }, 'standby: this key is not in the newest validator set this signer knows; it signs nothing until shown the epoch-change proof that adds it (AdvanceEpoch)');
  } else if (set.self.name !== conf.member) {
    log.warn({ epoch: current.epoch, seat: set.self.name, member: conf.member }, 'this key is seated under another name than signer.yaml member');
  }
  return set;
}

/**
 * The state for the newest known epoch: a state of an earlier epoch is a crash between saving a
 * proof and the next epoch's marks (or a restored backup), moved on to the newest epoch; a state of
 * an epoch the history does not reach means the history file is missing or old.
 */
async function stateForEpoch(state: SignerSafety, epochs: SignerEpochs, store: SafetyStore, log: Logger): Promise<SignerSafety> {
  const stateFile = store.file;
  const epoch = epochs.current.epoch;
  if (state.epoch > epoch) {
    throw new FedError('SIGNER_STATE_MISMATCH',
      `safety state ${stateFile} is of epoch ${state.epoch}, but the epoch history ${epochs.file} reaches epoch ${epoch} only: restore the history file with the state (they move together), or show the signer the proofs before starting`,
      { file: stateFile, epoch: state.epoch, historyEpoch: epoch });
  }
  if (state.epoch === epoch) return state;
  const next = epochSafety(state, epoch, epochs.root);
  await store.save(next);
  log.warn({ from: state.epoch, epoch }, 'safety state moved on to the newest epoch the history holds (nothing of the earlier epoch is signed again)');
  return next;
}

export async function openLocalSigner(opts: OpenSignerOptions): Promise<LocalSigner> {
  const key = await openCustodyKey(opts.conf, opts.dataDir, opts.env);
  try {
    return await openWithKey(opts, key);
  } catch (err) {
    key.secretKey.fill(0);
    key.close();
    throw err;
  }
}

/**
 * The double-sign guard's files and their directory must be the signer's alone: a state or journal
 * others can read tells them every mark, and a directory others can write lets them swap the state
 * for an older one. Refused with the chmod that fixes it.
 */
async function refuseExposed(dataDir: string): Promise<void> {
  const dir = await fs.stat(dataDir);
  if ((dir.mode & 0o022) !== 0) {
    throw new FedError('SIGNER_DIR_PERMISSIONS', `signer data dir ${dataDir} has mode ${(dir.mode & 0o777).toString(8).padStart(4, '0')}: others can replace its files (the safety state); run chmod 700 ${dataDir}`,
      { dir: dataDir, mode: dir.mode & 0o777 });
  }
  for (const [name, what] of [[STATE_FILE, 'safety state'], [JOURNAL_FILE, 'journal'], [EPOCHS_FILE, 'epoch history']] as const) {
    const file = path.join(dataDir, name);
    const st = await fs.stat(file).catch(() => undefined);
    if (st && (st.mode & 0o077) !== 0) {
      throw new FedError('SIGNER_STATE_PERMISSIONS', `${what} ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: others can read or change it; run chmod 600 ${file}`,
        { file, mode: st.mode & 0o777 });
    }
  }
}

/**
 * openLocalSigner's second half: the signer over a key its custody has opened. Exported for the
 * test of native custody's failure handling, whose token (a PKCS#11 3.2 one that signs SLH-DSA)
 * no token here can stand in for.
 */
export async function openWithKey(opts: OpenSignerOptions, key: OpenedKey): Promise<LocalSigner> {
  const { conf, dataDir } = opts;
  await refuseExposed(dataDir);
  if (conf.passphrase_file !== undefined && conf.custody.backend === 'file') {
    const beside = passphraseBesideKey(dataDir, conf.key_file, conf.passphrase_file);
    if (beside) opts.log.warn({ code: 'SIGNER_PASSPHRASE_BESIDE_KEY' }, beside);
  }
  const publicKey = toHex(key.publicKey);
  const software = createSlhDsa({ paramSet: conf.crypto.param_set as ParamSet, backend: conf.crypto.backend });
  // Native custody: the token signs (the secret key is not here); verifying stays in software.
  const slh = key.signInToken ? { ...software, sign: (_sk: Uint8Array, m: Uint8Array) => key.signInToken!(m) } : software;
  const epochs = await SignerEpochs.open(path.join(dataDir, EPOCHS_FILE), ValidatorSet.fromConfig(conf.validators),
    { chainId: conf.chain_id, genesisHash: genesisHashOf(conf.chain_id), dsa: software });
  const validators = seatIn(conf, epochs, key.publicKey, opts.log);
  const store = key.store(path.join(dataDir, STATE_FILE));
  const journalFile = path.join(dataDir, JOURNAL_FILE);
  const state = await stateForEpoch(await loadOrInitState(opts, publicKey, store, journalFile), epochs, store, opts.log);
  const journal = await openJournal(journalFile, { create: false, rotateBytes: conf.journal.rotate_mib * 1024 * 1024, keepSegments: conf.journal.keep_files });
  await journal.append({ type: 'start', epoch: state.epoch, lastVote: state.lastVote, locked: state.locked, lastProposalView: state.lastProposalView, lastNewView: state.lastNewView, signed: state.signed });
  const signer = new LocalSigner({
    identity: { publicKey: key.publicKey, paramSet: key.paramSet, chainId: conf.chain_id, member: conf.member },
    validators,
    state,
  }, {
    slh, secretKey: key.secretKey, store, journal, epochs, hashBlock: blockHash, maxViewJump: conf.max_view_jump,
    qcFor: (set, rootHash) => createQcChecker({ chainId: conf.chain_id, validators: set, rootHash, slh: software }),
    log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.onRefusal ? { onRefusal: opts.onRefusal } : {}),
    release: async () => {
      await journal.close();
      key.close();
    },
  });
  opts.log.info({ custody: key.describe, stateAuthenticatedBy: store.authenticatedBy ?? null }, 'key custody');
  opts.log.info({ journalSeq: journal.seq, journalHead: journal.head }, 'journal head');
  opts.log.info({ epoch: state.epoch, seated: validators.self !== undefined, validatorIndex: validators.selfIndex, validators: validators.n, lastVote: state.lastVote, locked: state.locked.view, signed: state.signed }, 'signer opened');
  return signer;
}
