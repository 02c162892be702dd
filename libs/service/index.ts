// What every service's composition root shares: strict command-line flags with clear
// errors, and the shutdown sequence (stop taking work → drain gRPC → drain NATS → flush
// logs), where a second signal forces the exit.

import { flushCompileCache } from 'node:module';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Logger } from 'pino';
import path from 'node:path';
import { versionLine } from '#libs/version/index.ts';
import { natsConnectOptions, type NatsConf, type NatsConnectOptions } from '#libs/events/index.ts';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { parseHostPort } from '#libs/config/index.ts';
import { logLifeEvent } from '#libs/log/index.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses flags; an unknown flag or a missing value is a FedError('CLI_INVALID') naming it. */
/**
 * A service's flags. `--version` prints the version and `--help` (or `-h`) the usage, on stdout,
 * and exit 0 before anything starts; a bad flag throws CLI_INVALID with the usage.
 */
export function parseFlags<O extends Options>(argv: readonly string[], options: O, usage: string) {
  if (argv.includes('--version')) {
    process.stdout.write(`${versionLine()}\n`);
    process.exit(0);
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new FedError('CLI_INVALID', `${errorMessage(err)}\n${usage}`);
  }
}

export interface ShutdownStep { name: string; run: () => Promise<unknown> | unknown }

export interface Lifecycle {
  /** Steps run in the order added; add them in reverse order of start. */
  add(step: ShutdownStep): void;
  /** Runs the steps once (later calls get the same promise). */
  stop(reason: string): Promise<void>;
}

export function lifecycle(log: Logger, opts: { exit?: (code: number) => void; signals?: boolean } = {}): Lifecycle {
  const steps: ShutdownStep[] = [];
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  // Every static import is compiled by now: write the compile cache (libs/service/node-flags.ts)
  // at once, not only at a clean exit, so a service that is killed still leaves it for its restart.
  flushCompileCache();
  let stopping: Promise<void> | undefined;

  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logLifeEvent(log, { reason }, 'shutting down');
      for (const step of steps) {
        try {
          await step.run();
        } catch (err) {
          log.warn({ step: step.name, err: errorMessage(err) }, 'shutdown step failed');
        }
      }
      logLifeEvent(log, {}, 'stopped');
      log.flush?.();
    })();
    return stopping;
  };

  if (opts.signals !== false) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (stopping) {
          log.warn({ signal }, 'second signal: exiting now');
          log.flush?.();
          exit(130);
          return;
        }
        void stop(signal).then(() => exit(0));
      });
    }
  }
  return { add: (step) => steps.push(step), stop };
}

/**
 * The exit status of a start refused for a reason a restart would make worse — a token that refused
 * the PIN locks it after a few tries — so that the unit's `RestartPreventExitStatus=` stops systemd
 * from trying again (78: sysexits.h EX_CONFIG).
 */
export const EXIT_DO_NOT_RESTART = 78;

/** The last word of a service that could not start: one clear line, exit status 1 (or `status`). */
export function fatal(log: Logger, err: unknown, what: string, status = 1): never {
  const code = err instanceof FedError ? err.code : 'INTERNAL';
  log.fatal({ code, err: errorMessage(err), ...(status !== 1 ? { exitStatus: status } : {}) }, `${what} failed: ${errorMessage(err)}`);
  log.flush?.();
  process.exit(status);
}

export { memberSecurity, memberSecurityFromDir, roleFiles, SERVICE_PLACEHOLDER } from './security.ts';
export type { MemberSecurity, SecurityOptions } from './security.ts';
export { SERVICE_ROLES, ROLE_USAGE, APP_NAME, appCertificateName, certificateName, callerOf, requireRole } from './identity.ts';
export type { ServiceRole, CallerCheck, Caller } from './identity.ts';
export { everyMethod, guardService, refusalCounter } from './guard.ts';
export type { RolePolicy, GuardOptions } from './guard.ts';
export { fetchConfig, watchConfig, toMemberConfig } from './store-link.ts';
export type { MemberConfig } from './store-link.ts';

/** "host:port" from a flag or config value, or a FedError naming what it was for. */
export function endpointOf(addr: string, what: string): { host: string; port: number } {
  const r = parseHostPort(addr, true);
  if (!r.ok) throw new FedError('CONFIG_INVALID', `${what}: ${r.reason}`);
  return r.value;
}

/**
 * A service's NATS connect options from its config's nats section: `--nats URL` (the flag) wins
 * over the configured servers; relative file paths resolve against the member's (or signer's)
 * data dir.
 */
export function natsOptionsFor(nats: NatsConf, flagUrl: string | undefined, dataDir: string | undefined): NatsConnectOptions {
  return natsConnectOptions(flagUrl ? { ...nats, servers: [flagUrl] } : nats, (p) => path.resolve(dataDir ?? '.', p));
}
