// The signer's composition root and CLI. `run` wires the LocalSigner to gRPC (mutual TLS;
// plaintext only with --insecure on loopback), metrics and NATS; shutdown runs in reverse:
// health NOT_SERVING → drain gRPC → finish the request in progress → NATS → metrics → lock.
//
//   node services/signer/main.ts keygen         --data-dir DIR [--backend file|pkcs11]
//   node services/signer/main.ts import-key     --data-dir DIR
//   node services/signer/main.ts show-key       --data-dir DIR
//   node services/signer/main.ts check-custody  --data-dir DIR
//   node services/signer/main.ts bind-state     --data-dir DIR
//   node services/signer/main.ts run            --data-dir DIR [--init | --init-if-pending] [--insecure] [--listen HOST:PORT]
//                                                [--metrics HOST:PORT] [--nats URL] [--no-nats]
//   node services/signer/main.ts verify-journal --data-dir DIR
//   node services/signer/main.ts repair-journal --data-dir DIR
//   node services/signer/main.ts export-state   --data-dir DIR [--out FILE]
//   node services/signer/main.ts import-state FILE --data-dir DIR
//
// Must never print or log the secret key, the passphrase or the token's PIN.

import { FRESH_MARKER, consumeFreshMarker, isFreshSigner } from './fresh.ts';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createLogger, logReady, type Logger } from '#libs/log/index.ts';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { createServer, loadBtcfedProtos, type ServerSecurity } from '#libs/rpc/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { createSlhDsa, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { parseHostPort, type SignerConf } from '#libs/config/index.ts';
import { EXIT_DO_NOT_RESTART, fatal, lifecycle, natsOptionsFor, parseFlags } from '#libs/service/index.ts';
import { SignerServiceService } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { lockDir, writeFileAtomic } from '#libs/files/index.ts';
import { connectRefusalPublisher, type RefusalPublisher } from './events.ts';
import { JOURNAL_FILE, verifyJournal } from './journal.ts';
import { readPassphrase, sealKey, writeNewKeyFile } from './keyfile.ts';
import { exportState, importState } from './migrate.ts';
import { repairTornJournal } from './repair.ts';
import { genesisHashOf, loadSignerConf, openLocalSigner, passphraseSource } from './open.ts';
import { custodyPublicKey } from './custody.ts';
import { bindStateCmd, checkCustody, importKeyIntoToken, keygenIntoToken } from './ceremony.ts';
import { SignerEpochs, type EndedEpoch } from './epochs.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { signerService } from './rpc.ts';

const USAGE = `usage: signer <command> --data-dir DIR
  keygen [--backend file|pkcs11]  write a new key where signer.yaml's custody says (refuses to replace one), print the public key
  import-key                   move the key file into the token (custody pkcs11 sealed), then destroy the file
  show-key                     print the public key and the back-end that holds it
  check-custody                check token, PIN, key and state are usable, without starting the signer
  bind-state                   authenticate the safety state as it is under the token (after checking it is the newest)
  run [--init | --init-if-pending] [--insecure] [--listen HOST:PORT] [--metrics HOST:PORT] [--nats URL] [--no-nats]
  verify-journal               check the journal's hash chain
  repair-journal               move a torn last line aside (after checking the state covers the journal)
  export-state [--out FILE]    print (or write) the safety state as JSON
  import-state FILE            merge an exported state (only while the signer is stopped)`;

const DATA_DIR = { 'data-dir': { type: 'string' } } as const;

function dataDirOf(flags: { 'data-dir'?: string | undefined }): string {
  if (!flags['data-dir']) throw new FedError('CLI_INVALID', `--data-dir is required\n${USAGE}`);
  return path.resolve(flags['data-dir']);
}

async function lockSigner(dataDir: string) {
  try {
    return await lockDir(dataDir, 'signer');
  } catch (err) {
    if (err instanceof FedError && err.code === 'STORE_LOCKED') {
      throw new FedError('SIGNER_RUNNING', `a signer is running on ${dataDir} (pid ${String(err.details.pid)}); stop it first`, err.details);
    }
    throw err;
  }
}

async function keygen(argv: string[], log: Logger): Promise<void> {
  const flags = parseFlags(argv, { ...DATA_DIR, backend: { type: 'string' } }, USAGE);
  const dataDir = dataDirOf(flags);
  const conf = await loadSignerConf(dataDir);
  const backend = flags.backend ?? conf.custody.backend;
  if (backend !== conf.custody.backend) {
    throw new FedError('CLI_INVALID', `keygen --backend ${backend}: signer.yaml custody is backend ${conf.custody.backend}; change signer.yaml first (the flag only confirms it)`, { field: 'custody.backend' });
  }
  let publicKey: Uint8Array;
  if (conf.custody.backend === 'pkcs11') {
    const made = await keygenIntoToken(conf, dataDir);
    publicKey = made.publicKey;
    log.info({ custody: made.where }, 'key made in the token');
  } else {
    const file = path.resolve(dataDir, conf.key_file);
    const passphrase = await readPassphrase(passphraseSource(conf, dataDir));
    const slh = createSlhDsa({ paramSet: conf.crypto.param_set as ParamSet, backend: conf.crypto.backend });
    const pair = slh.generateKeyPair();
    await writeNewKeyFile(file, await sealKey(slh.paramSet, pair.secretKey, passphrase));
    pair.secretKey.fill(0);
    publicKey = pair.publicKey;
    log.info({ file, paramSet: slh.paramSet }, 'key written');
  }
  process.stdout.write(`${toHex(publicKey)}\n`);
  process.stderr.write(`add to the validators of signer.yaml and conf.yaml:\n  - name: ${conf.member}\n    peer_id: <the gateway's peer id>\n    public_key: ${toHex(publicKey)}\n`);
}

async function importKeyCmd(argv: string[], log: Logger): Promise<void> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  const conf = await loadSignerConf(dataDir);
  const lock = await lockSigner(dataDir);
  try {
    const r = await importKeyIntoToken(conf, dataDir);
    log.warn({ security: true, event: 'signer.key_imported', publicKey: toHex(r.publicKey), sealed: r.sealedFile, destroyed: r.keyFile, stateBound: r.stateBound }, 'key moved into the token; key file destroyed');
    process.stdout.write(`imported: ${toHex(r.publicKey)} sealed in ${r.sealedFile}; ${r.stateBound ? 'safety state bound to the token; ' : 'no safety state yet; '}key file ${r.keyFile} overwritten and deleted\n`);
  } finally {
    await lock.release();
  }
}

async function showKey(argv: string[]): Promise<void> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  const k = await custodyPublicKey(await loadSignerConf(dataDir), dataDir);
  process.stdout.write(`public_key ${toHex(k.publicKey)}\nparam_set ${k.paramSet}\ncustody ${k.where}\n`);
}

async function checkCustodyCmd(argv: string[]): Promise<void> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  for (const line of await checkCustody(await loadSignerConf(dataDir), dataDir)) process.stdout.write(`${line}\n`);
}

async function bindStateCli(argv: string[], log: Logger): Promise<void> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  const conf = await loadSignerConf(dataDir);
  const lock = await lockSigner(dataDir);
  try {
    const r = await bindStateCmd(conf, dataDir);
    if (!r.bound) {
      process.stdout.write('no safety state: nothing to bind\n');
      return;
    }
    log.warn({ security: true, event: 'signer.state_bound', publicKey: r.publicKey }, 'safety state authenticated under the token as it is on disk');
    process.stdout.write('bound: the safety state is authenticated by the token\n');
  } finally {
    await lock.release();
  }
}

async function verify(argv: string[]): Promise<number> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  const file = path.join(dataDir, JOURNAL_FILE);
  const v = await verifyJournal(file);
  if (v.ok) {
    process.stdout.write(`ok: ${file}: ${v.entries} entries${v.files > 1 ? ` in ${v.files} files (from seq ${v.firstSeq}; older files rotated out)` : ''}, head ${v.head}\n`);
    return 0;
  }
  process.stdout.write(`broken: ${v.file}: line ${v.line}: ${v.reason} (${v.entries} good entries before it)\n`);
  return 1;
}

async function repairCmd(argv: string[], log: Logger): Promise<void> {
  const dataDir = dataDirOf(parseFlags(argv, DATA_DIR, USAGE));
  const lock = await lockSigner(dataDir);
  try {
    const r = await repairTornJournal(dataDir);
    if (!r.repaired) {
      process.stdout.write(`not torn: ${r.entries} complete entries; nothing changed\n`);
      return;
    }
    log.warn({ security: true, event: 'signer.journal_repaired', backup: r.backup, tornBytes: r.tornBytes, tornSha256: r.tornSha256 }, 'torn journal line moved aside');
    process.stdout.write(`repaired: ${r.entries} complete entries kept, ${r.tornBytes} torn bytes (sha256 ${r.tornSha256}) moved to ${r.backup}; a repair record was appended\n`);
  } finally {
    await lock.release();
  }
}

async function exportCmd(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { ...DATA_DIR, out: { type: 'string' } }, USAGE);
  const text = await exportState(dataDirOf(flags));
  if (flags.out) await writeFileAtomic(path.resolve(flags.out), text, { mode: 0o600 });
  else process.stdout.write(text);
}

async function importCmd(argv: string[], log: Logger): Promise<void> {
  const [file, ...rest] = argv;
  if (!file || file.startsWith('-')) throw new FedError('CLI_INVALID', `import-state needs the exported FILE first\n${USAGE}`);
  const dataDir = dataDirOf(parseFlags(rest, DATA_DIR, USAGE));
  const conf = await loadSignerConf(dataDir);
  const lock = await lockSigner(dataDir);
  try {
    const { publicKey } = await custodyPublicKey(conf, dataDir);
    const dsa = createSlhDsa({ paramSet: conf.crypto.param_set as ParamSet, backend: conf.crypto.backend });
    const replay = (ended: EndedEpoch[], from: string) => {
      SignerEpochs.replay(from, ended, ValidatorSet.fromConfig(conf.validators), { chainId: conf.chain_id, genesisHash: genesisHashOf(conf.chain_id), dsa });
    };
    const result = await importState(dataDir, await fs.readFile(file, 'utf8'), path.resolve(file), toHex(publicKey), replay);
    // With a token, the merged state (which only ever raises marks) becomes the authenticated record.
    if (conf.custody.backend === 'pkcs11') await bindStateCmd(conf, dataDir);
    log.info({ file, result: result.kind, epoch: result.state.epoch, epochsEnded: result.epochsEnded, lastVote: result.state.lastVote, locked: result.state.locked.view }, 'state imported');
    process.stdout.write(`${result.kind}: epoch ${result.state.epoch} (history of ${result.epochsEnded} ended epochs), last vote view ${result.state.lastVote.view} phase ${result.state.lastVote.phase}, locked view ${result.state.locked.view}\n`);
  } finally {
    await lock.release();
  }
}

function security(conf: SignerConf, dataDir: string, insecure: boolean, log: Logger): ServerSecurity {
  if (insecure) return { mode: 'insecure' };
  if (!conf.tls) {
    throw new FedError('SIGNER_TLS_REQUIRED', 'signer.yaml has no tls section: the signer serves mutual TLS only (plaintext needs --insecure, on loopback)');
  }
  // Nothing but the member's own consensus service may reach a signer: an empty allow list would
  // admit every certificate the CA signed (another service of the member, another member).
  if (conf.allowed_clients.length === 0) {
    if (!conf.allow_any_client) {
      throw new FedError('SIGNER_CLIENTS_REQUIRED',
        'signer.yaml: allowed_clients is empty: list the SHA-256 fingerprint of the consensus service\'s client certificate (openssl x509 -in consensus.pem -noout -fingerprint -sha256), or set allow_any_client: true to admit any certificate the CA signed',
        { field: 'allowed_clients' });
    }
    log.warn({ security: true, event: 'signer.any_client' }, 'allow_any_client: any certificate the CA signed may ask this signer for signatures');
  }
  const file = (p: string) => path.resolve(dataDir, p);
  return { mode: 'mtls', certFile: file(conf.tls.cert_file), keyFile: file(conf.tls.key_file), caFile: file(conf.tls.ca_file) };
}

/** A token that is not there yet (unplugged, its daemon or library not up) at start. */
const TOKEN_AWAY = new Set(['SIGNER_TOKEN_ABSENT', 'SIGNER_TOKEN_FAILED']);
const TOKEN_WAIT_MAX_MS = 30_000;

/**
 * Opens the signer, waiting for a token that does not answer yet: tried again after 1 s, 2 s, 4 s, …
 * up to every 30 s, each failure logged (error, with its code), until it answers or the signer is
 * stopped. A refused PIN, a module that does not load, a missing key or state is no reason to wait:
 * those end the start at once. Without a token nothing is served meanwhile (consensus reports the
 * signer unreachable: BtcfedSignerUnreachable).
 */
async function untilTokenAnswers<T>(log: Logger, open: () => Promise<T>): Promise<T> {
  for (let delay = 1000, tries = 1; ; delay = Math.min(delay * 2, TOKEN_WAIT_MAX_MS), tries++) {
    try {
      return await open();
    } catch (err) {
      if (!(err instanceof FedError) || !TOKEN_AWAY.has(err.code)) throw err;
      log.error({ code: err.code, err: err.message, tries, retryMs: delay }, 'the key\'s token does not answer: waiting for it');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function run(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, {
    ...DATA_DIR, init: { type: 'boolean' }, 'init-if-pending': { type: 'boolean' }, insecure: { type: 'boolean' }, listen: { type: 'string' },
    metrics: { type: 'string' }, nats: { type: 'string' }, 'no-nats': { type: 'boolean' },
  }, USAGE);
  const dataDir = dataDirOf(flags);
  const conf = await loadSignerConf(dataDir);
  const log = createLogger({ service: 'signer', member: conf.member, level: conf.logging.level, format: conf.logging.format });
  const lock = await lockSigner(dataDir);
  try {
    const metrics = createPromMetrics({ prefix: 'btcfed_', defaultLabels: { member: conf.member, service: 'signer' } });
    const natsUrl = flags['no-nats'] ? undefined : (flags.nats ?? conf.nats?.url);
    const events: RefusalPublisher | undefined = natsUrl ? connectRefusalPublisher({ url: natsUrl, member: conf.member, log, metrics,
      ...(conf.nats ? { auth: natsOptionsFor(conf.nats, flags.nats, dataDir) } : {}) }) : undefined;
    const serverSecurity = security(conf, dataDir, flags.insecure ?? false, log);
    // --init-if-pending: --init only while the marker member init left with a new key is there
    // (fresh.ts); used up once the safety state exists.
    const pending = flags['init-if-pending'] === true && isFreshSigner(dataDir);
    const signer = await untilTokenAnswers(log, () => openLocalSigner({ dataDir, conf, init: (flags.init ?? false) || pending, log: log.child({ module: 'signer' }), metrics,
      ...(events ? { onRefusal: (r) => events.publish(r) } : {}) }));
    if (pending) {
      await consumeFreshMarker(dataDir);
      log.info({ marker: FRESH_MARKER }, 'first start of a new key: safety state created, the init-pending marker removed');
    }
    const server = createServer({ security: serverSecurity, metrics, log: log.child({ module: 'rpc' }),
      reflection: loadBtcfedProtos, grpcOptions: { 'grpc.max_receive_message_length': 80 * 1024 * 1024 } });
    server.addService(SignerServiceService, signerService({
      signer, log: log.child({ module: 'rpc' }), requireCertificate: !flags.insecure, allowedClients: conf.allowed_clients, operatorClients: conf.operator_clients,
    }));
    const listen = flags.listen ?? conf.listen;
    const port = await server.bind(listen);
    const metricsAddr = flags.metrics ?? conf.metrics;
    const hp = metricsAddr ? parseHostPort(metricsAddr, true) : undefined;
    if (hp && !hp.ok) throw new FedError('CLI_INVALID', `metrics address: ${hp.reason}`);
    const endpoint = hp?.ok ? await serveMetrics({ ...hp.value, registry: metrics.registry }) : undefined;
    const life = lifecycle(log);
    life.add({ name: 'grpc', run: () => server.shutdown({ graceMs: 3000 }) });
    life.add({ name: 'signer', run: () => signer.close() });
    life.add({ name: 'nats', run: () => events?.close() });
    life.add({ name: 'metrics', run: () => endpoint?.close() });
    life.add({ name: 'lock', run: () => lock.release() });
    logReady(log, { dataDir, grpcPort: port, listen, security: flags.insecure ? 'insecure' : 'mtls', metricsPort: endpoint?.port,
      nats: events ? 'on' : 'off', validatorIndex: signer.identityNow.validatorIndex, publicKey: toHex(signer.identityNow.publicKey) }, 'signer ready');
  } catch (err) {
    await lock.release();
    // A refused PIN is not retried by a restart: hardware tokens lock the PIN after a few wrong tries.
    fatal(log, err, 'starting the signer', isFedError(err, 'SIGNER_TOKEN_PIN') ? EXIT_DO_NOT_RESTART : 1);
  }
}

async function main(): Promise<void> {
  const [command, ...argv] = process.argv.slice(2);
  // Text on stderr for the one-shot commands; made when one runs (a signer that runs logs JSON).
  let made: Logger | undefined;
  const cli = (): Logger => (made ??= createLogger({ service: 'signer', destination: process.stderr, format: 'text' }));
  try {
    switch (command) {
      case 'keygen':
        return await keygen(argv, cli());
      case 'run':
        return await run(argv);
      case 'import-key':
        return await importKeyCmd(argv, cli());
      case 'show-key':
        return await showKey(argv);
      case 'check-custody':
        return await checkCustodyCmd(argv);
      case 'bind-state':
        return await bindStateCli(argv, cli());
      case 'verify-journal':
        process.exitCode = await verify(argv);
        return;
      case 'repair-journal':
        return await repairCmd(argv, cli());
      case 'export-state':
        return await exportCmd(argv);
      case 'import-state':
        return await importCmd(argv, cli());
      case '--version':
      case '--help':
      case '-h':
        parseFlags([command], {}, USAGE); // prints and exits
        return;
      default:
        throw new FedError('CLI_INVALID', `unknown command ${JSON.stringify(command ?? '')}\n${USAGE}`);
    }
  } catch (err) {
    fatal(command === 'run' ? createLogger({ service: 'signer' }) : cli(), err, command ?? 'signer');
  }
}

await main();
