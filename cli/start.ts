// `btcfed start <service>`: one member's service in the foreground, with btcfed's usage, help and
// exit codes (usage errors exit 2 before anything starts). It checks the member (or signer) dir,
// then replaces itself (execve: same process id, for systemd and pid files) with Node running
// services/<service>/main.ts under the services' Node flags — exactly what the devnet, the test bed
// and the systemd units run. It must not start anything itself: the service's own main.ts does.

import fs from 'node:fs';
import path from 'node:path';
import type { Command, Option } from 'commander';
import { FedError } from '#libs/errors/index.ts';
import { NODE_FLAGS, serviceEnv } from '#libs/service/node-flags.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
export const SERVICES = ['store', 'gateway', 'consensus', 'signer'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** The member dir (or signer dir) a command works on: --home, else $BTCFED_HOME, else the devnet's m0. */
export function homeOf(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, fallback = '.devnet/m0'): string {
  return path.resolve(flag ?? (env.BTCFED_HOME || undefined) ?? fallback);
}

/** The member dir's conf.yaml must be there; for the signer, signer.yaml. */
function checkHome(service: ServiceName, home: string): void {
  const file = path.join(home, service === 'signer' ? 'signer.yaml' : 'conf.yaml');
  if (!fs.existsSync(file)) {
    throw new FedError('MEMBER_DIR_INVALID', `${file} not found: --home (or BTCFED_HOME) must name the ${service === 'signer' ? 'signer' : 'member'} dir`, { file });
  }
}

/** Where the member's store listens, as its gateway and consensus dial it (0.0.0.0 → 127.0.0.1). */
async function storeAddressOf(home: string): Promise<string> {
  // Loaded here, not with the command line: every btcfed command builds `start` (cli/main.ts).
  const { parseConfText } = await import('#libs/config/index.ts');
  const file = path.join(home, 'conf.yaml');
  const listen = parseConfText(fs.readFileSync(file, 'utf8'), file).services.store.listen;
  return listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
}

interface Spec { flags: [flag: string, description: string][]; boolean: string[] }
const SPECS: Record<ServiceName, Spec> = {
  store: {
    flags: [['--listen <host:port>', 'gRPC address (default: services.store.listen)'], ['--metrics <host:port>', 'metrics address (default: services.store.metrics)'],
      ['--nats <url>', 'NATS URL (default: conf.yaml nats)']],
    boolean: ['--no-nats'],
  },
  gateway: {
    flags: [['--store <host:port>', 'the member\'s store (default: services.store.listen of conf.yaml)'], ['--listen <host:port>', 'gRPC address'],
      ['--metrics <host:port>', 'metrics address'], ['--nats <url>', 'NATS URL'], ['--backoff-base <duration>', 'first redial delay'],
      ['--backoff-max <duration>', 'longest redial delay'], ['--ping-interval <duration>', 'libp2p ping interval']],
    boolean: ['--no-nats', '--drop-private-addrs'],
  },
  consensus: {
    flags: [['--store <host:port>', 'the member\'s store (default: services.store.listen of conf.yaml)'], ['--listen <host:port>', 'public gRPC address'],
      ['--admin-listen <host:port>', 'AdminService address'], ['--metrics <host:port>', 'metrics address'], ['--gateway <host:port>', 'the gateway to use'],
      ['--signer <host:port>', 'the signer to use'], ['--nats <url>', 'NATS URL']],
    boolean: ['--no-nats'],
  },
  signer: {
    flags: [['--listen <host:port>', 'gRPC address (default: signer.yaml listen)'], ['--metrics <host:port>', 'metrics address'], ['--nats <url>', 'NATS URL']],
    boolean: ['--no-nats', '--init', '--init-if-pending', '--insecure'],
  },
};

/** The service's own argv for these options (flags it knows, in its spelling). */
export async function serviceArgs(service: ServiceName, home: string, opts: Record<string, unknown>): Promise<string[]> {
  const args: string[] = service === 'signer' ? ['run', '--data-dir', home] : ['--data-dir', home];
  if (service === 'gateway' || service === 'consensus') args.push('--store', typeof opts.store === 'string' ? opts.store : await storeAddressOf(home));
  for (const [flag] of SPECS[service].flags) {
    const name = flag.split(' ')[0]!.slice(2);
    if (name === 'store') continue;
    const key = name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    if (typeof opts[key] === 'string') args.push(`--${name}`, opts[key]);
  }
  if (opts.nats === false) args.push('--no-nats');
  for (const flag of SPECS[service].boolean) {
    const name = flag.slice(2);
    if (name === 'no-nats') continue;
    const key = name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    if (opts[key] === true) args.push(flag);
  }
  return args;
}

/** The command line that runs the service: Node, the services' flags, main.ts, its arguments. */
export function serviceCommand(service: ServiceName, args: readonly string[]): string[] {
  return [process.execPath, ...NODE_FLAGS, '--disable-warning=ExperimentalWarning', path.join(ROOT, 'services', service, 'main.ts'), ...args];
}

/** Adds `start` and its four services to `parent` (they inherit its help and error settings). */
export function startCommand(parent: Command, homeOpt: () => Option): Command {
  const start = parent.command('start')
    .description('run one service of a member in the foreground (the process a systemd unit runs): store, gateway, consensus or signer')
    .addHelpText('after', `
The member dir is --home DIR, else $BTCFED_HOME, else .devnet/m0; for the signer, its signer dir.
The process becomes the service (same pid): SIGTERM stops it cleanly, SIGHUP reloads the store's files.`);
  for (const service of SERVICES) {
    const cmd = start.command(service)
      .description(`the ${service}${service === 'signer' ? ' (run): its signer dir holds signer.yaml and the sealed key' : ' of the member'}`)
      .addOption(homeOpt());
    for (const [flag, description] of SPECS[service].flags) cmd.option(flag, description);
    for (const flag of SPECS[service].boolean) {
      cmd.option(flag, flag === '--no-nats' ? 'without NATS (no events published)'
        : flag === '--init' ? 'first start of a new key: create its safety state (by hand, never in a unit)'
          : flag === '--init-if-pending' ? 'create the safety state only while member init\'s init-pending marker is there (what the unit passes)'
            : flag === '--insecure' ? 'plaintext gRPC, on loopback only (tests)'
            : 'do not dial private addresses of peers');
    }
    cmd.action(async (o: Record<string, unknown>) => {
      const home = homeOf(o.home as string | undefined, process.env, service === 'signer' ? '.devnet/m0/signer' : '.devnet/m0');
      checkHome(service, home);
      const argv = serviceCommand(service, await serviceArgs(service, home, o));
      if (typeof process.execve !== 'function') throw new FedError('CLI_UNSUPPORTED', `this Node (${process.version}) cannot replace its process (process.execve)`);
      process.execve(argv[0]!, argv, serviceEnv());
    });
  }
  return start;
}
