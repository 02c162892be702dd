// btcfed: the command line of the project, on commander. Every command has its own help
// (`btcfed <command> --help`, which never starts anything); usage goes to stdout; errors print as
// `btcfed: <message> (<code>)` on stderr. Exit codes: 0 ok, 1 the command failed, 2 usage
// (an unknown command or flag, a missing or malformed option).

import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { isParamSet, type ParamSet } from '#libs/crypto/params.ts';
import { parseDuration } from '#libs/config/duration.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { versionLine } from '#libs/version/index.ts';
import { DEFAULT_FIREWALL_MAX_PER_SOURCE, DEFAULT_IDLE_HEARTBEAT } from './defaults.ts';
import { homeOf, startCommand } from './start.ts';

// Each command loads the modules it runs when it runs (gRPC, the config schema and libp2p's key
// parsing, the crypto backends): loading all of them for any command cost `btcfed status` a third
// of its start, and `btcfed --help` or a usage error all of it. What is imported above is what
// building the command line needs: option parsers and defaults.

const load = {
  client: () => import('./client.ts'),
  member: () => import('./member.ts'),
  init: () => import('./init.ts'),
  cert: () => import('./cert.ts'),
  rotate: () => import('./rotate.ts'),
  verify: () => import('./verify.ts'),
  inspect: () => import('./inspect.ts'),
  firewall: () => import('./firewall.ts'),
  reconfigure: () => import('./reconfigure.ts'),
  devnetCommand: () => import('./devnet-command.ts'),
  grpc: () => import('@grpc/grpc-js'),
  rpc: () => import('#libs/rpc/index.ts'),
};

/**
 * Loads every module a command may load. For scripts/prepack.ts, which finds the packages a
 * signer host's install does without by what btcfed and the signer load: `--version` alone loads
 * none of the commands' packages any more.
 */
export async function loadEveryCommand(): Promise<void> {
  await Promise.all(Object.values(load).map((l) => l()));
}

const root = path.resolve(import.meta.dirname, '..');

/** A usage error (exit 2): what the command line got wrong. */
class UsageError extends Error {}

// Option value parsers: a bad value is a usage error that names the option.
const nonNegativeInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
};
const positiveInt = (v: string): number => {
  const n = nonNegativeInt(v);
  if (n === 0) throw new InvalidArgumentError('must be at least 1');
  return n;
};
const durationMs = (v: string): number => {
  const r = parseDuration(v);
  if (!r.ok) throw new InvalidArgumentError(r.reason);
  return r.value;
};
const paramSetOf = (v: string): ParamSet => {
  if (!isParamSet(v)) throw new InvalidArgumentError(`unknown parameter set "${v}"`);
  return v;
};
const txHash = (v: string): string => {
  if (!/^[0-9a-f]{64}$/i.test(v)) throw new InvalidArgumentError('must be a transaction hash: 64 hex digits');
  return v;
};
/** A flag given as "A,B" or several times: every value, trimmed, none empty. */
const collect = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(',').map((x) => x.trim()).filter((x) => x !== '')];

const changes = (n: number): string => `${n} epoch change${n === 1 ? '' : 's'}`;
/** How `btcfed verify` reached an epoch's set: changes kept in --trusted-epochs, changes checked now. */
const epochWalk = (fromKept: number, walked: number): string =>
  fromKept === 0 ? `checking ${changes(walked)}`
    : walked === 0 ? `the ${changes(fromKept)} kept in the trusted-epochs file`
      : `the ${changes(fromKept)} kept in the trusted-epochs file and checking ${walked} more`;
const memberOpt = () => new Option('--member <dir>', 'the member dir (its conf.yaml and client certificate); default: $BTCFED_HOME, else .devnet/m0');
/** --home DIR: the member dir, for every command that takes --member and for start (CometBFT's --home / CMTHOME). */
const homeOpt = () => new Option('--home <dir>', 'the member dir, as --member (default: $BTCFED_HOME, else .devnet/m0)');
const consensusOpt = () => new Option('--consensus <host:port>', 'the consensus address to dial (default: services.consensus.listen of the member\'s conf.yaml)');
const basePortOpt = () => new Option('--base-port <port>', 'first port of member 0; each member takes 10').argParser(nonNegativeInt).default(7100);
const paramSetOpt = () => new Option('--param-set <set>', 'SLH-DSA parameter set').argParser(paramSetOf).default('slh-dsa-sha2-128f');
const natsOpt = () => new Option('--nats <url>', 'NATS server URL').default('nats://127.0.0.1:4222');
/** Idle views: 0 or absent, a block every view; else blocks only for work, and a heartbeat this long after the last. */
const idleHeartbeat = (v: string): string => {
  if (v === '0') return '0s';
  const ms = durationMs(v);
  if (ms > 0 && (ms < 1000 || ms > 30_000)) throw new InvalidArgumentError('must be 0 (a block every view) or 1s to 30s');
  return v;
};
const idleHeartbeatOpt = (what = '') => new Option('--idle-heartbeat <duration>', `idle views${what}: blocks only when there are transactions, and one this long after the last commit (0: a block every view)`)
  .argParser(idleHeartbeat).default(DEFAULT_IDLE_HEARTBEAT);

const rel = (p: string): string => path.relative(process.cwd(), p) || '.';

export function buildProgram(): Command {
  const program = new Command('btcfed')
    .description('BTC Federation node: make members and a genesis, run a local federation, query and operate a member.')
    .version(versionLine(), '-V, --version', 'print the version and the commit it was built from')
    .helpOption('-h, --help', 'this help')
    .helpCommand('help [command]', 'help for a command')
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false })
    .addHelpText('after', `
Exit codes: 0 ok, 1 the command failed, 2 usage.
A local federation: btcfed devnet. One member per host: btcfed member init, btcfed genesis, btcfed member join.`);

  const member = program.command('member').description('one member on its operator\'s host: make it, then join a genesis');
  member.command('init')
    .description('keys, certificates for the given host names, the libp2p identity, the sealed signer key, and the public DIR/member-card.yaml')
    .requiredOption('--name <name>', 'member name (a-z, 0-9, -)')
    .requiredOption('--out <dir>', 'the member dir to make')
    .requiredOption('--host <host>', 'this member\'s address or DNS name (comma-separated or repeated)', collect)
    .option('--signer-host <host>', 'the signer host\'s address or name, when the signer runs apart (comma-separated or repeated)', collect)
    .addOption(basePortOpt())
    .addOption(paramSetOpt())
    .option('--nats <url>', 'NATS URL(s) (comma-separated or repeated)', collect)
    .option('--listen-all', 'listen on every interface (0.0.0.0), e.g. behind NAT', false)
    .option('--passphrase-out <file>', 'where the signer\'s passphrase is written, never in the signer dir (default DIR/secrets/signer-passphrase)')
    .option('--passphrase-file <path>', 'signer.yaml passphrase_file: where the signer host reads it (default /run/credentials/btcfed-signer@NAME.service/passphrase)')
    .action(async (o: { name: string; out: string; host: string[]; signerHost?: string[]; basePort: number; paramSet: ParamSet; nats?: string[]; listenAll: boolean; passphraseOut?: string; passphraseFile?: string }) => {
      const { CARD_FILE, initMember } = await load.member();
      const dir = path.resolve(o.out);
      const m = await initMember({ name: o.name, dir, hosts: o.host, signerHosts: o.signerHost ?? [], basePort: o.basePort, paramSet: o.paramSet,
        natsUrls: o.nats ?? ['nats://127.0.0.1:4222'], listenAll: o.listenAll,
        ...(o.passphraseOut ? { passphraseOut: path.resolve(o.passphraseOut) } : {}), ...(o.passphraseFile ? { passphraseFile: o.passphraseFile } : {}) });
      console.log(`made member ${m.name} in ${dir}
  card     ${path.join(dir, CARD_FILE)}   (public: send it to whoever assembles the genesis)
  peer     ${m.identity.peerId}
  SLH-DSA  ${m.publicKey.slice(0, 32)}… (${o.paramSet})
  libp2p   ${m.card.libp2p.addresses.join(' ')}
  signer   ${path.join(dir, 'signer')}  (after member join, the only dir its host gets)
  passphrase ${m.passphraseOut}  (the signer host's own copy, moved apart from signer/: signer.yaml reads it at ${m.passphraseFile})
  CA keys  ${path.join(dir, 'ca')}  (move them offline; no service reads them)
next: btcfed genesis --chain-id ID --card ${path.join(dir, CARD_FILE)} --card … --out genesis.yaml, then btcfed member join --genesis genesis.yaml --dir ${dir}`);
    });
  member.command('join')
    .description('complete a member dir from the genesis: validator set, chain id, the other members as peers')
    .requiredOption('--genesis <file>', 'genesis.yaml from btcfed genesis')
    .requiredOption('--dir <dir>', 'the member dir made by member init')
    .option('--observer', 'join as an observer (not in the genesis): follow and verify the chain, serve reads, never vote')
    .option('--added', 'a validator not in the genesis, to be added by a reconfiguration: it follows the chain until an epoch seats it')
    .option('--follow <card>', 'observer: the member card of another observer to ask for blocks first (repeat)', collect)
    .action(async (o: { genesis: string; dir: string; observer?: boolean; follow?: string[]; added?: boolean }) => {
      if (o.follow && !o.observer) throw new FedError('CLI_INVALID', '--follow is for observers (--observer)');
      if (o.added && o.observer) throw new FedError('CLI_INVALID', '--added is for validators, not observers');
      const { CARD_FILE, joinMember, joinObserver } = await load.member();
      if (o.added) {
        const r = await joinMember({ genesisFile: path.resolve(o.genesis), dir: path.resolve(o.dir), added: true });
        console.log(`${r.changed ? 'joined' : 'already joined'} chain ${r.genesis.chain_id} as a member to be added (not in its genesis)
  genesis digest ${r.genesis.digest}  (compare it with the other operators)
  its signer stands by; start its services: consensus follows the chain until a reconfiguration
  adding this member's card (btcfed reconfigure propose --add ${path.join(o.dir, CARD_FILE)}) commits`);
        return;
      }
      if (o.observer) {
        const r = await joinObserver({ genesisFile: path.resolve(o.genesis), dir: path.resolve(o.dir), followCards: (o.follow ?? []).map((f) => path.resolve(f)) });
        console.log(`${r.changed ? 'joined' : 'already joined'} as an observer of chain ${r.genesis.chain_id} (${r.genesis.members.length} validators)${o.follow ? `, following ${o.follow.length} observer(s) first` : ''}
  genesis digest ${r.genesis.digest}  (compare it with the operators')
  run its store, gateway and consensus; it needs no signer (its signer dir can go)`);
        return;
      }
      const r = await joinMember({ genesisFile: path.resolve(o.genesis), dir: path.resolve(o.dir) });
      const g = r.genesis;
      console.log(`${r.changed ? 'joined' : 'already joined'}: ${g.members[r.index]!.name} is validator ${r.index} of ${g.members.length} on chain ${g.chain_id}
  genesis digest ${g.digest}  (compare it with the other operators)`);
    });

  member.command('rotate')
    .description('a new identity for a rotate change (docs/reconfiguration.md): a new card with a new libp2p key and/or a standby signer\'s key; --apply once the change has committed')
    .requiredOption('--dir <dir>', 'the member dir')
    .option('--libp2p', 'a new libp2p identity (moves the member to a new peer id; its key waits in DIR/secrets/next-libp2p-key)')
    .option('--public-key <hex>', 'the SLH-DSA public key of the new signer standing by (its keygen printed it)')
    .option('--apply', 'the change has committed: make the new key conf.yaml\'s node.private_key and the new card the member\'s (refused until the member\'s consensus seats it)')
    .addOption(consensusOpt())
    .action(async (o: { dir: string; libp2p?: boolean; publicKey?: string; apply?: boolean; consensus?: string }) => {
      const dir = path.resolve(o.dir);
      const [{ applyRotation, prepareRotation, seatFrom }, { consensusClient }, { CARD_FILE }] = await Promise.all([load.rotate(), load.client(), load.member()]);
      if (o.apply) {
        if (o.libp2p || o.publicKey) throw new FedError('CLI_INVALID', '--apply takes no --libp2p or --public-key: it applies what was prepared');
        const client = consensusClient(dir, o.consensus);
        try {
          const r = await applyRotation({ dir, seatOf: seatFrom(client) });
          console.log(`applied: epoch ${r.epoch} seats this member as peer ${r.peerId}
  ${r.keyChanged ? 'conf.yaml node.private_key is the new libp2p key: restart the store, then the gateway (they read it at start)' : 'conf.yaml already held the new libp2p key (or the peer id did not change)'}
  ${rel(path.join(dir, CARD_FILE))} is the new card${r.cardBackup ? ` (the old one: ${rel(r.cardBackup)})` : ''}`);
        } finally {
          client.close();
        }
        return;
      }
      const r = await prepareRotation({ dir, libp2p: o.libp2p ?? false, ...(o.publicKey ? { publicKey: o.publicKey } : {}) });
      console.log(`prepared a rotation of ${r.card.name}
  card     ${rel(r.cardFile)}   (public: btcfed reconfigure propose --rotate ${r.card.name}=${rel(r.cardFile)})
  peer     ${r.card.libp2p.peer_id}${r.keyFile ? `  (new; its key in ${rel(r.keyFile)}, 0600)` : ''}
  SLH-DSA  ${r.card.slh_dsa.public_key.slice(0, 32)}…
next: once the change committed, btcfed member rotate --dir ${rel(dir)} --apply${r.keyFile ? ', then restart the store and the gateway' : ''}`);
    });

  program.command('genesis')
    .description('the validator set from every member\'s card; prints the digest operators compare')
    .requiredOption('--chain-id <id>', 'the chain id')
    .requiredOption('--card <file>', 'a member card (repeat, or comma-separate)', collect)
    .requiredOption('--out <file>', 'where to write genesis.yaml')
    .option('--base-timeout <duration>', 'the view timer\'s base (e.g. 1s, 1m30s)', '1s')
    .addOption(idleHeartbeatOpt())
    .action(async (o: { chainId: string; card: string[]; out: string; baseTimeout: string; idleHeartbeat?: string }) => {
      durationMs(o.baseTimeout);
      const { makeGenesis } = await load.member();
      const g = await makeGenesis({ chainId: o.chainId, baseTimeout: o.baseTimeout, ...(o.idleHeartbeat !== undefined ? { idleHeartbeat: o.idleHeartbeat } : {}), cardFiles: o.card.map((c) => path.resolve(c)), out: path.resolve(o.out) });
      console.log(`wrote ${path.resolve(o.out)}: chain ${g.chain_id}, ${g.members.length} validator(s) in this order: ${g.members.map((m) => m.name).join(', ')}`);
      console.log(`digest ${g.digest}`);
    });

  program.command('init')
    .description('a whole federation\'s member dirs on this machine (127.0.0.1): member init, genesis and member join for each')
    .requiredOption('--out <dir>', 'where the member dirs go')
    .option('--members <n>', 'how many members', positiveInt, 4)
    .option('--observers <n>', 'how many observers besides (o0 follows the validators, the others o0)', nonNegativeInt, 0)
    .addOption(basePortOpt())
    .option('--chain-id <id>', 'the chain id', 'btcfed-devnet')
    .addOption(paramSetOpt())
    .option('--base-timeout <duration>', 'the view timer\'s base', '1s')
    .option('--server-names <names>', 'extra names in every server certificate (localhost and 127.0.0.1 are always in)', collect)
    .addOption(idleHeartbeatOpt())
    .addOption(natsOpt())
    .action(async (o: { out: string; members: number; observers: number; basePort: number; chainId: string; paramSet: ParamSet; baseTimeout: string; idleHeartbeat?: string; serverNames?: string[]; nats: string }) => {
      durationMs(o.baseTimeout);
      const out = path.resolve(o.out);
      const { initFederation } = await load.init();
      const members = await initFederation({ members: o.members, observers: o.observers, out, basePort: o.basePort, chainId: o.chainId, paramSet: o.paramSet,
        baseTimeout: o.baseTimeout, ...(o.idleHeartbeat !== undefined ? { idleHeartbeat: o.idleHeartbeat } : {}), logFormat: 'json', natsUrl: o.nats, serverNames: o.serverNames ?? [] });
      console.log(`made ${members.length} member dirs in ${out}; the members' CA keys are in ${path.join(out, 'ca')} (move them offline):`);
      for (const m of members) {
        console.log(`  ${m.name}  peer ${m.identity.peerId}  ${m.observer ? 'observer (no signer)     ' : `SLH-DSA ${m.publicKey.slice(0, 16)}…`}  ports ${m.ports.store}–${m.ports.signerMetrics}`);
      }
    });

  program.command('devnet')
    .description('run a local federation: every member\'s four services (made first when --dir has none); a service that exits is started again')
    .option('--members <n>', 'how many members (when making it)', positiveInt, 4)
    .option('--observers <n>', 'how many observers (when making it)', nonNegativeInt, 0)
    .option('--dir <dir>', 'where the member dirs are (or go)', '.devnet')
    .addOption(basePortOpt())
    .option('--chain-id <id>', 'the chain id (when making it)', 'btcfed-devnet')
    .addOption(paramSetOpt())
    .option('--base-timeout <duration>', 'the view timer\'s base (when making it)', '1s')
    .addOption(idleHeartbeatOpt(' (when making it)'))
    .addOption(natsOpt())
    .action(async (o: { members: number; observers: number; dir: string; basePort: number; chainId: string; paramSet: ParamSet; baseTimeout: string; idleHeartbeat: string; nats: string }) => {
      durationMs(o.baseTimeout);
      const { devnet } = await load.devnetCommand();
      await devnet(o);
    });

  program.command('status')
    .description('one member\'s status: view, leader, committed height and hash, mempool, peers')
    .addOption(memberOpt()).addOption(consensusOpt())
    .addOption(new Option('--timeout <duration>', 'how long to wait for an answer').argParser(durationMs).default(5000, '5s'))
    .action(async (o: { member: string; consensus?: string; timeout: number }) => {
      const dir = path.resolve(o.member);
      const { consensusAddress, consensusClient, status } = await load.client();
      const client = consensusClient(dir, o.consensus);
      try { await status(client, consensusAddress(dir, o.consensus), o.timeout); } finally { client.close(); }
    });

  program.command('submit')
    .description('submit transactions (in batches of 10,000 per call) and wait until they are committed')
    .argument('[tx...]', 'transactions, as text')
    .addOption(memberOpt()).addOption(consensusOpt())
    .option('--count <n>', 'submit N random transactions instead', positiveInt)
    .option('--size <bytes>', 'size of each random transaction', positiveInt, 250)
    .option('--no-wait', 'return once accepted, without waiting for the commit')
    .addOption(new Option('--timeout <duration>', 'how long to wait for the commit').argParser(durationMs).default(60_000, '60s'))
    .action(async (txArgs: string[], o: { member: string; consensus?: string; count?: number; size: number; wait: boolean; timeout: number }) => {
      const txs = o.count !== undefined ? Array.from({ length: o.count }, () => new Uint8Array(randomBytes(o.size))) : txArgs.map((s) => new TextEncoder().encode(s));
      if (txs.length === 0) throw new UsageError('nothing to submit: give transactions as arguments or --count N');
      const dir = path.resolve(o.member);
      const { consensusAddress, consensusClient, submit } = await load.client();
      const client = consensusClient(dir, o.consensus);
      try { await submit(client, consensusAddress(dir, o.consensus), txs, o.wait, o.timeout); } finally { client.close(); }
    });

  program.command('evidence')
    .description('equivocation evidence one member kept: who signed two conflicting messages, in which epoch and view')
    .addOption(memberOpt()).addOption(consensusOpt())
    .option('--from-epoch <n>', 'evidence from this epoch on', nonNegativeInt, 0)
    .option('--from-view <n>', 'and, in that epoch, from this view on', nonNegativeInt, 0)
    .option('--json', 'one JSON object per item, with both signed messages in hex')
    .action(async (o: { member: string; consensus?: string; fromEpoch: number; fromView: number; json?: boolean }) => {
      const dir = path.resolve(o.member);
      const { consensusAddress, consensusClient, evidence } = await load.client();
      const client = consensusClient(dir, o.consensus);
      try { await evidence(client, consensusAddress(dir, o.consensus), { epoch: o.fromEpoch, view: o.fromView }, o.json === true); } finally { client.close(); }
    });

  program.command('watch')
    .description('follow committed blocks as they commit (Ctrl-C to stop)')
    .addOption(memberOpt()).addOption(consensusOpt())
    .option('--from <height>', 'start at this height (0: from the next commit)', nonNegativeInt, 0)
    .action(async (o: { member: string; consensus?: string; from: number }) => {
      const { consensusClient, watch } = await load.client();
      const client = consensusClient(path.resolve(o.member), o.consensus);
      try { await watch(client, o.from); } finally { client.close(); }
    });

  program.command('verify')
    .description('check that block H is committed (its COMMIT QC against the validator set of a conf.yaml you trust), or that transaction TX is, by its inclusion proof')
    .option('--height <h>', 'the block height', positiveInt)
    .option('--tx <hash>', 'the transaction (hex hash): alone, checked by its inclusion proof without the block; with --height, found in that block', txHash)
    .addOption(memberOpt()).addOption(consensusOpt())
    .option('--trust <conf>', 'the conf.yaml whose validators are trusted (default: the member\'s)')
    .option('--trusted-epochs <file>', 'keep the epoch changes walked from genesis in FILE, and next time start from them (created when missing)')
    .action(async (o: { height?: number; tx?: string; member: string; consensus?: string; trust?: string; trustedEpochs?: string }) => {
      if (o.height === undefined && o.tx === undefined) throw new UsageError('verify needs --height H, --tx HASH, or both');
      const memberDir = path.resolve(o.member);
      const [{ consensusAddress, consensusClient }, { loadKeptEpochs, trustRootFrom, verifyBlock, verifyTransaction }] = await Promise.all([load.client(), load.verify()]);
      consensusAddress(memberDir, o.consensus); // a missing member dir is named as such
      const trust = trustRootFrom(path.resolve(o.trust ?? path.join(memberDir, 'conf.yaml')));
      const kept = o.trustedEpochs === undefined ? undefined : loadKeptEpochs(path.resolve(o.trustedEpochs), trust);
      const client = consensusClient(memberDir, o.consensus);
      try {
        const tx = o.tx === undefined ? undefined : Buffer.from(o.tx, 'hex');
        const v = o.height === undefined ? await verifyTransaction(client, trust, tx!, kept) : await verifyBlock(client, trust, o.height, tx, kept);
        if (!v.ok) {
          console.log(`refused: ${v.reason}`);
          process.exitCode = 1;
          return;
        }
        console.log(`verified: block ${v.height} is committed on chain ${trust.chainId}: a COMMIT QC of view ${v.view} signed by validators ${v.signers.join(', ')}`
          + (v.epoch ? ` of epoch ${v.epoch} (its set reached from genesis's by ${epochWalk(v.fromKept ?? 0, v.walked ?? 0)})` : ` of ${trust.publicKeys.length}`)
          + (v.txIndex === undefined ? '' : `; transaction ${o.tx} is at index ${v.txIndex}${o.height === undefined ? ' (by its Merkle branch)' : ''}`));
      } finally {
        client.close();
      }
    });

  program.command('admin')
    .description('operator actions on a member\'s consensus, with its operator certificate (tls/operator.pem)')
    .addArgument(new Argument('<action>', 'what to do').choices(['pause', 'resume', 'force-view-change', 'unmute', 'dump']))
    .addOption(memberOpt())
    .option('--admin <host:port>', 'the admin address (default: services.consensus.admin_listen)')
    .option('--validator <index>', 'unmute: the validator to forgive (its index in the set)', nonNegativeInt)
    .option('--full', 'dump: every byte of long values (signatures, QCs) in hex, not a summary')
    .action(async (action: string, o: { member: string; admin?: string; validator?: number; full?: boolean }) => {
      if (action === 'unmute' && o.validator === undefined) throw new UsageError('admin unmute needs --validator <index>');
      const { admin, adminClient } = await load.client();
      const client = adminClient(path.resolve(o.member), o.admin);
      try { await admin(client, action, o.validator, o.full ?? false); } finally { client.close(); }
    });

  const reconfigure = program.command('reconfigure')
    .description('change the validator set: propose a change, approve it on each signer, assemble the transaction (docs/reconfiguration.md)');
  reconfigure.command('propose')
    .description('a change of the current validator set, checked against it, as change.yaml with its id')
    .addOption(memberOpt())
    .option('--add <card>', 'add the member of this card (repeat)', collect)
    .option('--remove <name>', 'remove this member (repeat)', collect)
    .option('--rotate <name=card>', 'give this member the key and peer id of its new card (repeat)', collect)
    .option('--base-timeout <duration>', 'set the federation\'s base view timeout from the next epoch (with --idle-heartbeat)')
    .option('--idle-heartbeat <duration>', 'set the federation\'s idle heartbeat from the next epoch, 0 for a block every view (with --base-timeout)')
    .option('--out <file>', 'where the change goes', 'change.yaml')
    .action(async (o: { member: string; add?: string[]; remove?: string[]; rotate?: string[]; baseTimeout?: string; idleHeartbeat?: string; out: string }) => {
      const r = await (await load.reconfigure()).propose({ memberDir: path.resolve(o.member), add: (o.add ?? []).map((f) => path.resolve(f)), remove: o.remove ?? [], rotate: o.rotate ?? [],
        ...(o.baseTimeout !== undefined ? { baseTimeout: o.baseTimeout } : {}), ...(o.idleHeartbeat !== undefined ? { idleHeartbeat: o.idleHeartbeat } : {}), out: path.resolve(o.out) });
      console.log(`change ${r.id}
  ends epoch ${r.change.epoch} of chain ${r.change.chainId}; ${r.change.ops.length} operation(s); ${r.size} validators after it
  checked against ${r.checkedAgainst}
  written to ${rel(r.file)}: send it to every operator, who compares the id and approves it on its own signer`);
    });
  reconfigure.command('approve')
    .description('ask this member\'s signer to approve the change (with an operator certificate listed in signer.yaml operator_clients)')
    .addOption(memberOpt())
    .requiredOption('--change <file>', 'change.yaml from reconfigure propose')
    .requiredOption('--signer <host:port>', 'the signer\'s address')
    .requiredOption('--ca <file>', 'the CA the signer\'s certificate is signed by')
    .requiredOption('--cert <file>', 'the operator\'s client certificate')
    .requiredOption('--key <file>', 'its key')
    .option('--out <file>', 'where the approval goes (default: approval-<member>.yaml)')
    .action(async (o: { member: string; change: string; signer: string; ca: string; cert: string; key: string; out?: string }) => {
      const out = path.resolve(o.out ?? `approval-${path.basename(path.resolve(o.member))}.yaml`);
      const r = await (await load.reconfigure()).approve({ memberDir: path.resolve(o.member), change: path.resolve(o.change), signer: o.signer,
        caFile: path.resolve(o.ca), certFile: path.resolve(o.cert), keyFile: path.resolve(o.key), out });
      console.log(`${r.member} (validator ${r.validator}) approved change ${r.id}\n  written to ${rel(r.file)}`);
    });
  reconfigure.command('assemble')
    .description('the reconfiguration transaction from the change and a quorum of approvals, each verified')
    .addOption(memberOpt())
    .requiredOption('--change <file>', 'change.yaml')
    .requiredOption('--approval <file>', 'an approval file (repeat, or comma-separate)', collect)
    .option('--out <file>', 'where the transaction goes', 'reconfig.tx')
    .action(async (o: { member: string; change: string; approval: string[]; out: string }) => {
      const r = await (await load.reconfigure()).assemble({ memberDir: path.resolve(o.member), change: path.resolve(o.change), approvals: o.approval.map((f) => path.resolve(f)), out: path.resolve(o.out) });
      console.log(`transaction for change ${r.id}: ${r.approvals} approvals (quorum ${r.quorum}), ${r.bytes} bytes, written to ${rel(r.file)}
  checked against ${r.checkedAgainst}
  next: btcfed reconfigure submit --tx ${rel(r.file)} (to any member: it proposes it when it leads)`);
    });
  reconfigure.command('submit')
    .description('hand the transaction to a member, which checks it against its current epoch and passes it on to every validator: whichever leads next proposes it')
    .addOption(memberOpt())
    .requiredOption('--tx <file>', 'the transaction from reconfigure assemble')
    .option('--admin <host:port>', 'the admin address (default: services.consensus.admin_listen)')
    .action(async (o: { member: string; tx: string; admin?: string }) => {
      const r = await (await load.reconfigure()).submit({ memberDir: path.resolve(o.member), tx: path.resolve(o.tx), ...(o.admin ? { admin: o.admin } : {}) });
      console.log(`change ${r.id} submitted: it ends epoch ${r.epoch} once a block carrying it commits (btcfed status shows the epoch)`);
    });
  reconfigure.command('history')
    .description('the chain\'s epochs: where each ended, by which change, approved by whom, and the set after it (each end checked from genesis)')
    .addOption(memberOpt()).addOption(consensusOpt())
    .action(async (o: { member: string; consensus?: string }) => {
      for (const line of await (await load.reconfigure()).history({ memberDir: path.resolve(o.member), ...(o.consensus ? { consensus: o.consensus } : {}) })) console.log(line);
    });
  reconfigure.command('inspect')
    .description('what a change, approval or transaction file holds')
    .argument('<file>')
    .action(async (file: string) => { console.log(await (await load.reconfigure()).inspect(path.resolve(file))); });

  const cert = program.command('cert').description('certificates from a member\'s CA');
  cert.command('issue')
    .description('a client certificate for one application of a member, for its public API')
    .requiredOption('--client <name>', 'the application\'s name (the certificate\'s common name)')
    .requiredOption('--member-name <name>', 'the member whose CA signs it')
    .requiredOption('--ca-dir <dir>', 'that member\'s CA dir (e.g. DIR/ca/m0)')
    .requiredOption('--out <dir>', 'where the certificate and key go')
    .option('--member-dir <dir>', 'the member dir: its tls/ca.pem must be the CA in --ca-dir')
    .action(async (o: { client: string; memberName: string; caDir: string; out: string; memberDir?: string }) => {
      const { issueClientCert } = await load.cert();
      const made = await issueClientCert({ member: o.memberName, caDir: path.resolve(o.caDir), app: o.client, out: path.resolve(o.out),
        ...(o.memberDir ? { memberDir: path.resolve(o.memberDir) } : {}) });
      console.log(`issued ${made.name}: certificate ${made.cert}, key ${made.key} (keep it secret), member CA ${made.ca}`);
    });
  cert.command('check')
    .description('each certificate of a member dir (or signer dir): when it expires, whether the member\'s CA issued it; exit 1 if one expires within --within')
    .requiredOption('--dir <dir>', 'the member dir (or a signer dir)')
    .option('--within <duration>', 'the window that fails the check (e.g. 30d, 12h)', '21d')
    .option('--app-cert <file>', 'an application certificate from cert issue (NAME.pem, key NAME-key.pem beside it) to check too (repeat)', collect)
    .action(async (o: { dir: string; within: string; appCert?: string[] }) => {
      const { checkCertificates, parseWithin } = await load.cert();
      const within = parseWithin(o.within);
      const r = await checkCertificates(path.resolve(o.dir), new Date(), (o.appCert ?? []).map((f) => path.resolve(f)));
      let bad = 0;
      for (const c of r.certs) {
        const soon = c.daysLeft * 86_400_000 <= within;
        if (soon || !c.fromMemberCa) bad++;
        const state = !c.fromMemberCa ? 'CA?  ' : c.daysLeft <= 0 ? 'EXPIRED' : soon ? 'renew' : 'ok   ';
        console.log(`${state} ${c.role.padEnd(9)} ${c.file}  until ${c.notAfter.toISOString()} (${Math.floor(c.daysLeft)} days)${c.fromMemberCa ? '' : `  not issued by the member's CA ${r.caFile}`}`);
      }
      if (bad > 0) throw new FedError('CERT_CHECK_FAILED', `${bad} of ${r.certs.length} certificate(s) of ${r.member} expire within ${o.within} or are not from its CA: btcfed cert renew`);
    });
  cert.command('renew')
    .description('every service certificate of a member dir again from its CA (same subject, names, usages and key), each file replaced atomically; restart the services after')
    .requiredOption('--dir <dir>', 'the member dir (or a signer dir)')
    .requiredOption('--ca-dir <dir>', 'the member\'s CA dir (ca.pem, ca-key.pem)')
    .option('--within <duration>', 'renew only those expiring within this window (e.g. 30d); default every one')
    .option('--valid-days <n>', 'validity of the new certificates (default: as long as the old ones)', positiveInt)
    .option('--app-cert <file>', 'an application certificate from cert issue (NAME.pem, key NAME-key.pem beside it) to renew too (repeat)', collect)
    .action(async (o: { dir: string; caDir: string; within?: string; validDays?: number; appCert?: string[] }) => {
      const { parseWithin, renewCertificates } = await load.cert();
      const r = await renewCertificates({ dir: path.resolve(o.dir), caDir: path.resolve(o.caDir), appCerts: (o.appCert ?? []).map((f) => path.resolve(f)),
        ...(o.within ? { withinMs: parseWithin(o.within) } : {}), ...(o.validDays ? { validDays: o.validDays } : {}) });
      for (const c of r.renewed) {
        console.log(`renewed ${c.role.padEnd(9)} ${c.file}  until ${c.until.toISOString()} (was ${c.was.toISOString()})${c.pinned.length > 0 ? `; new fingerprint added to ${c.pinned.join(', ')}` : ''}`);
      }
      for (const c of r.kept) console.log(`kept    ${c.role.padEnd(9)} ${c.file}  until ${c.until.toISOString()}`);
      console.log(r.renewed.length === 0 ? `nothing to renew for ${r.member}` : `${r.renewed.length} certificate(s) of ${r.member} renewed: copy them to their hosts and restart the services that hold them (TLS files are read at start)`);
    });

  program.command('keygen')
    .description('a new SLH-DSA key in a signer\'s data dir (sealed with its passphrase; refuses to replace one); prints the public key')
    .requiredOption('--data-dir <dir>', 'the signer\'s data dir (its signer.yaml)')
    .action((o: { dataDir: string }) => {
      // The signer's own keygen, so the key is made by the code that reads it, on the signer host.
      const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', path.join(root, 'services/signer/main.ts'), 'keygen', '--data-dir', path.resolve(o.dataDir)],
        { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`keygen failed (the signer exited ${r.status ?? r.signal})`);
    });

  program.command('show-node-id')
    .description('the member\'s libp2p peer id (what other members put in peers.yaml and the validator list)')
    .addOption(memberOpt())
    .action(async (o: { member: string }) => { console.log((await load.inspect()).showNodeId(path.resolve(o.member))); });

  program.command('show-validator')
    .description('the member\'s validator entry: index, name, peer id, SLH-DSA public key')
    .addOption(memberOpt())
    .action(async (o: { member: string }) => { console.log((await load.inspect()).showValidator(path.resolve(o.member))); });

  program.command('firewall')
    .description('iptables rules for the member\'s gateway port(s), from its conf.yaml and peers.yaml: validators\' hosts pass, any other source is held to twice peers.inbound_connections_per_host and a number of connections at once (docs/gateway.md); printed, or loaded with --apply')
    .addOption(memberOpt())
    .option('--ipv6', 'the IPv6 rules (ip6tables; a source is its /64)', false)
    .addOption(new Option('--max-connections-per-source <n>', 'connections one source address (IPv6: /64) may hold at once').argParser(positiveInt).default(DEFAULT_FIREWALL_MAX_PER_SOURCE))
    .option('--apply', 'load them on this host now (iptables-restore --noflush: only their own chain is replaced) and hook the chain from INPUT once; needs root', false)
    .action(async (o: { member: string; ipv6: boolean; maxConnectionsPerSource: number; apply: boolean }) => {
      const { memberFirewall, applyFirewall, applyHint } = await load.firewall();
      const fw = memberFirewall(path.resolve(o.member), { ipv6: o.ipv6, maxPerSource: o.maxConnectionsPerSource });
      for (const n of fw.notes) console.error(`btcfed: note: ${n}`);
      if (o.apply) console.log(applyFirewall(fw, o.ipv6));
      else console.log(`${fw.restore}${applyHint(fw, o.ipv6)}`);
    });

  program.command('config').description('configuration files')
    .command('check')
    .description('check conf.yaml, peers.yaml or signer.yaml files without starting anything: every problem, with file and field')
    .argument('<file...>', 'the files')
    .action(async (files: string[]) => {
      const { checkConfigFile } = await load.inspect();
      let bad = 0;
      for (const f of files) {
        const r = checkConfigFile(path.resolve(f));
        if (r.ok) console.log(`ok    ${f}: ${r.summary}`);
        else {
          bad++;
          console.log(`error ${f}:`);
          for (const p of r.problems) console.log(`  ${p}`);
        }
      }
      if (bad > 0) throw new Error(`${bad} of ${files.length} file(s) have problems`);
    });

  startCommand(program, homeOpt);

  // Every command that takes --member also takes --home (or BTCFED_HOME); .devnet/m0 only when none is given.
  const withHome = (cmd: Command): void => {
    if (cmd.options.some((o) => o.attributeName() === 'member')) {
      cmd.addOption(homeOpt().conflicts('member'));
      cmd.hook('preAction', (c) => {
        const o = c.opts<{ member?: string; home?: string }>();
        c.setOptionValue('member', o.member ?? homeOf(o.home));
      });
    }
    cmd.commands.forEach(withHome);
  };
  withHome(program);
  return program;
}

/** "member init" for the command `init` under `member`. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The service's FedError code in a gRPC error's trailer, else the name of its status. */
async function grpcCodeOf(err: unknown, code: number): Promise<string | undefined> {
  const [{ errorCodeOf }, grpc] = await Promise.all([load.rpc(), load.grpc()]);
  return errorCodeOf(err) ?? grpc.status[code];
}

/** Runs the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const usageExit = (cmd: Command) => cmd.exitOverride().showHelpAfterError(`(btcfed ${cmd.name() === 'btcfed' ? '' : `${commandPath(cmd)} `}--help shows the usage)`).configureOutput({
    writeOut: (s) => process.stdout.write(s),
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(`btcfed: ${s.replace(/^error: /, '')}`),
  });
  const each = (cmd: Command): void => { usageExit(cmd); cmd.commands.forEach(each); };
  each(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version end with exit 0; everything else commander refuses is usage (2).
      if (err.exitCode === 0) return 0;
      // `btcfed` alone, or `btcfed member` without an action: the help, on stderr, as usage.
      return 2;
    }
    if (err instanceof UsageError) {
      console.error(`btcfed: ${err.message}\n(see btcfed ${argv[0] ?? ''} --help)`);
      return 2;
    }
    // A gRPC error's text is its `details` (a string); a FedError's details are data, its text the message.
    // Every failure names a code: a FedError's, the service's (its error-code trailer), or the gRPC status.
    const code = (err as { code?: unknown }).code;
    const details = (err as { details?: unknown }).details;
    const message = typeof details === 'string' ? details : errorMessage(err);
    const named = typeof code === 'string' ? code
      : typeof code === 'number' ? await grpcCodeOf(err, code) : undefined;
    console.error(`btcfed: ${message}${named ? ` (${named})` : ''}`);
    return 1;
  }
}

// `btcfed watch | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err; });

if (import.meta.main) {
  process.exitCode = await run(process.argv.slice(2));
}
