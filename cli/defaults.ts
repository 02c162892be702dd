// Defaults the command line shows in its help, kept apart from the modules that act on them so
// that building the command line loads nothing else (cli/main.ts).

/**
 * The idle heartbeat of a federation btcfed makes (`genesis`, `init`, `devnet`) unless told
 * otherwise: idle views, since a block every view writes ~8 MiB a minute per member at idle.
 * `0s` is a block every view. (initFederation, the test and bench helper, keeps a block every view
 * unless given one.)
 */
export const DEFAULT_IDLE_HEARTBEAT = '10s';

/** `btcfed firewall`: connections one source address (an IPv6 /64) may hold at once at a gateway port. */
export const DEFAULT_FIREWALL_MAX_PER_SOURCE = 32;
