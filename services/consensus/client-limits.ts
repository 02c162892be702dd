// What one client of the public API may hold and spend, and what all clients together may: open
// StreamCommits streams and read calls in flight (counts per client and in all: what a client
// makes this member hold in memory), and two token buckets each per client and in total — reads
// (in read units, api.ts: 1 a call and 1 a block it may return) and submissions (in
// transactions): what a client makes this member spend in CPU. A client is its verified
// certificate (SHA-256 fingerprint) or, without TLS, its address (api-guard.ts); one application
// holding one certificate is one client however many connections it opens.
//
// Why both: the per-client budget keeps one application from taking what others need; the total
// keeps many of them from taking what consensus needs. A request is admitted only when both
// buckets hold its weight, and then both are charged, so a refused request costs nothing.
//
// Read units are a guess at cost made before the call; read CPU is what reads actually cost the
// event loop, in milliseconds (read-cpu.ts: each read's synchronous work, sending included). It is
// charged after the fact, so a read is admitted while both CPU buckets are above zero, and may
// overdraw them once: the client (or every client) is then refused until they have refilled.
//
// Pure logic on an injected clock. Bounded: at most `maxClients` records; a new client evicts
// the least recently seen one holding nothing (its buckets were refilling: forgetting it
// gives it at most a fresh burst, which the total still bounds), and `sweep` drops clients whose
// buckets are full again and that hold nothing — they are then no different from a new client.

/** Tokens a second and the most a bucket holds (a burst). */
export interface Rate { rate: number; burst: number }

export interface ClientLimitsOptions {
  /** Clients tracked at once (must exceed streamsTotal + readsInFlightTotal, so one holding nothing can always go). */
  maxClients: number;
  streamsPerClient: number;
  streamsTotal: number;
  /** Read calls from admission until HTTP/2 has taken the whole answer: what a slow reader makes us hold. */
  readsInFlightPerClient: number;
  readsInFlightTotal: number;
  readPerClient: Rate;
  readTotal: Rate;
  submitPerClient: Rate;
  submitTotal: Rate;
  /** Milliseconds of the event loop reads may take a second (rate) and at once (burst): per client… */
  readCpuPerClient: Rate;
  /** …and for all clients together: what reads may take from the consensus engine sharing the process. */
  readCpuTotal: Rate;
}

export type Budget = 'read' | 'submit';

/** The limits a refusal can name: each is a key of services.consensus.limits, and the `limit` label of the refusal metric. */
export const LIMIT_NAMES = ['streams_per_client', 'streams_total', 'stream_stall', 'reads_in_flight_per_client', 'reads_in_flight_total',
  'read_per_client', 'read_total', 'read_cpu_per_client', 'read_cpu_total', 'submit_per_client', 'submit_total', 'max_clients'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/** Where the limits live in conf.yaml: every refusal names its key there. */
export const LIMITS_KEY = 'services.consensus.limits';

export interface Refusal {
  limit: LimitName;
  /** For the client: the method, the limit, its configured value and its key in conf.yaml. */
  message: string;
  /** How many times this client has met this limit (1, 2, …): log the 1st, 2nd, 4th, 8th, … only. */
  nth: number;
}

export type SlotGrant = { ok: true; release(): void } | { ok: false; refusal: Refusal };
/** An admitted read: charge it the milliseconds it took, as they are measured (any number of times). */
export type CpuGrant = { ok: true; charge(ms: number): void } | { ok: false; refusal: Refusal };
/** What a client holds: open streams, and read calls whose answers are not yet taken. */
export type SlotKind = 'streams' | 'reads';

/** The 1st, 2nd, 4th, 8th, … refusal of a kind: logged; the rest only counted, so a flood cannot flood the log. */
export const worthLogging = (nth: number): boolean => nth > 0 && (nth & (nth - 1)) === 0;

interface Bucket { tokens: number; at: number }
interface Client { read: Bucket; submit: Bucket; cpu: Bucket; held: Record<SlotKind, number>; refusals: Map<LimitName, number> }

export class ClientLimits {
  #o: ClientLimitsOptions;
  readonly #now: () => number;
  readonly #clients = new Map<string, Client>();
  readonly #total: Record<Budget, Bucket>;
  readonly #cpu: Bucket;
  readonly #held: Record<SlotKind, number> = { streams: 0, reads: 0 };
  /** Refusals for want of room in the client map (there is no client record to count them on). */
  #fullRefusals = 0;

  constructor(options: ClientLimitsOptions, deps: { now: () => number }) {
    this.#o = options;
    this.#now = deps.now;
    const t = this.#now();
    this.#total = { read: { tokens: options.readTotal.burst, at: t }, submit: { tokens: options.submitTotal.burst, at: t } };
    this.#cpu = { tokens: options.readCpuTotal.burst, at: t };
  }

  /** New limits (a config reload): buckets keep what they hold (debts too), capped by the new bursts; open streams stay open. */
  configure(options: ClientLimitsOptions): void { this.#o = options; }

  get options(): ClientLimitsOptions { return this.#o; }
  /** Clients tracked now. */
  get clients(): number { return this.#clients.size; }
  /** StreamCommits streams open now, all clients. */
  get streams(): number { return this.#held.streams; }
  /** Read calls in flight now, all clients. */
  get reads(): number { return this.#held.reads; }

  /**
   * Admits a request of `weight` tokens from `client` against its own bucket and the total, or
   * says which limit refuses it. Nothing is charged when it is refused.
   */
  admit(client: string, budget: Budget, weight: number, method: string): Refusal | undefined {
    const c = this.#client(client);
    if (!c) return this.#clientsFull(method);
    const now = this.#now();
    const mine = budget === 'read' ? this.#o.readPerClient : this.#o.submitPerClient;
    const all = budget === 'read' ? this.#o.readTotal : this.#o.submitTotal;
    const own = refill(c[budget], mine, now);
    const total = refill(this.#total[budget], all, now);
    if (own < weight) return this.#refuse(c, `${budget}_per_client`, rateMessage(method, budget, `${budget}_per_client`, mine, weight, 'per client'));
    if (total < weight) return this.#refuse(c, `${budget}_total`, rateMessage(method, budget, `${budget}_total`, all, weight, 'for all clients together'));
    c[budget].tokens -= weight;
    this.#total[budget].tokens -= weight;
    return undefined;
  }

  /**
   * Admits a read call of `client` against the CPU reads have spent: refused while its client's
   * bucket or the total is empty or in debt. A `cheap` call (GetStatus: a few keys read, a small
   * answer) is refused by the total only: a client that spent its own on pages of blocks may
   * still ask where the chain is, at a cost its read units bound and its own bucket is still
   * charged. Nothing is charged here: the grant charges what the call turns out to take.
   */
  admitReadCpu(client: string, method: string, cheap: boolean): CpuGrant {
    const c = this.#client(client);
    if (!c) return { ok: false, refusal: this.#clientsFull(method) };
    const now = this.#now();
    const mine = this.#o.readCpuPerClient;
    const all = this.#o.readCpuTotal;
    const own = refill(c.cpu, mine, now);
    const total = refill(this.#cpu, all, now);
    if (!cheap && own <= 0) return { ok: false, refusal: this.#refuse(c, 'read_cpu_per_client', cpuMessage(method, 'read_cpu_per_client', mine, own, 'per client')) };
    if (total <= 0) return { ok: false, refusal: this.#refuse(c, 'read_cpu_total', cpuMessage(method, 'read_cpu_total', all, total, 'for all clients together')) };
    return {
      ok: true,
      charge: (ms) => {
        if (!(ms > 0)) return;
        const at = this.#now();
        // Debt is bounded by a burst: what was spent beyond it only delays the next read longer.
        c.cpu.tokens = Math.max(-this.#o.readCpuPerClient.burst, refill(c.cpu, this.#o.readCpuPerClient, at) - ms);
        this.#cpu.tokens = Math.max(-this.#o.readCpuTotal.burst, refill(this.#cpu, this.#o.readCpuTotal, at) - ms);
      },
    };
  }

  /**
   * For what a stream reads (StreamCommits' blocks): charges `weight` when both buckets hold it and
   * returns 0, else returns the milliseconds until they will — the stream waits, it is not refused.
   */
  delay(client: string, budget: Budget, weight: number): number {
    const c = this.#client(client);
    if (!c) return 1000;
    const now = this.#now();
    const mine = budget === 'read' ? this.#o.readPerClient : this.#o.submitPerClient;
    const all = budget === 'read' ? this.#o.readTotal : this.#o.submitTotal;
    const own = refill(c[budget], mine, now);
    const total = refill(this.#total[budget], all, now);
    if (own >= weight && total >= weight) {
      c[budget].tokens -= weight;
      this.#total[budget].tokens -= weight;
      return 0;
    }
    const wait = (have: number, r: Rate) => (have >= weight ? 0 : ((weight - have) * 1000) / r.rate);
    return Math.max(1, Math.ceil(Math.max(wait(own, mine), wait(total, all))));
  }

  /** A slot for one more open stream of `client`; release it (once; again is a no-op) when the stream ends. */
  openStream(client: string, method: string): SlotGrant {
    return this.#slot(client, method, 'streams', this.#o.streamsPerClient, this.#o.streamsTotal,
      'open streams', 'streams_per_client', 'streams_total');
  }

  /** A slot for one more read call of `client` in flight; release it once its answer is taken (or the call is gone). */
  startRead(client: string, method: string): SlotGrant {
    return this.#slot(client, method, 'reads', this.#o.readsInFlightPerClient, this.#o.readsInFlightTotal,
      'read calls in flight', 'reads_in_flight_per_client', 'reads_in_flight_total');
  }

  #slot(client: string, method: string, kind: SlotKind, mine: number, all: number, what: string, mineKey: LimitName, allKey: LimitName): SlotGrant {
    const c = this.#client(client);
    if (!c) return { ok: false, refusal: this.#clientsFull(method) };
    if (c.held[kind] >= mine) return { ok: false, refusal: this.#refuse(c, mineKey, `${method}: at most ${mine} ${what} per client (${LIMITS_KEY}.${mineKey})`) };
    if (this.#held[kind] >= all) return { ok: false, refusal: this.#refuse(c, allKey, `${method}: at most ${all} ${what} for all clients together (${LIMITS_KEY}.${allKey})`) };
    c.held[kind]++;
    this.#held[kind]++;
    let open = true;
    return {
      ok: true,
      release: () => {
        if (!open) return;
        open = false;
        c.held[kind]--;
        this.#held[kind]--;
      },
    };
  }

  /** Records a refusal decided outside (a stalled stream cancelled): its count for this client. */
  refused(client: string, limit: LimitName): number {
    const c = this.#clients.get(client);
    if (!c) return 1;
    const nth = (c.refusals.get(limit) ?? 0) + 1;
    c.refusals.set(limit, nth);
    return nth;
  }

  /** Forgets clients that hold nothing and whose buckets are full again: they are as good as new. Returns how many. */
  sweep(): number {
    const now = this.#now();
    let n = 0;
    for (const [key, c] of this.#clients) {
      if (c.held.streams === 0 && c.held.reads === 0 && refill(c.read, this.#o.readPerClient, now) >= this.#o.readPerClient.burst
        && refill(c.cpu, this.#o.readCpuPerClient, now) >= this.#o.readCpuPerClient.burst
        && refill(c.submit, this.#o.submitPerClient, now) >= this.#o.submitPerClient.burst) {
        this.#clients.delete(key);
        n++;
      }
    }
    return n;
  }

  /** The client's record, most recently seen last; a new one may evict the least recently seen holding nothing. */
  #client(key: string): Client | undefined {
    let c = this.#clients.get(key);
    if (c) {
      this.#clients.delete(key);
      this.#clients.set(key, c);
      return c;
    }
    if (this.#clients.size >= this.#o.maxClients && !this.#evictOne()) return undefined;
    const t = this.#now();
    c = { read: { tokens: this.#o.readPerClient.burst, at: t }, submit: { tokens: this.#o.submitPerClient.burst, at: t },
      cpu: { tokens: this.#o.readCpuPerClient.burst, at: t }, held: { streams: 0, reads: 0 }, refusals: new Map() };
    this.#clients.set(key, c);
    return c;
  }

  #evictOne(): boolean {
    for (const [key, c] of this.#clients) {
      if (c.held.streams === 0 && c.held.reads === 0) { this.#clients.delete(key); return true; }
    }
    return false;
  }

  #refuse(c: Client, limit: LimitName, message: string): Refusal {
    const nth = (c.refusals.get(limit) ?? 0) + 1;
    c.refusals.set(limit, nth);
    return { limit, message, nth };
  }

  #clientsFull(method: string): Refusal {
    return { limit: 'max_clients', nth: ++this.#fullRefusals,
      message: `${method}: at most ${this.#o.maxClients} clients at once, every one of them holding a stream or a read (${LIMITS_KEY}.max_clients)` };
  }
}

/** Tops the bucket up to `now` (capped at the burst) and returns what it holds. */
function refill(b: Bucket, r: Rate, now: number): number {
  if (now > b.at) {
    b.tokens = Math.min(r.burst, b.tokens + ((now - b.at) * r.rate) / 1000);
    b.at = now;
  } else if (b.tokens > r.burst) {
    b.tokens = r.burst; // the burst was lowered by a reload
  }
  return b.tokens;
}

function rateMessage(method: string, budget: Budget, key: string, r: Rate, weight: number, whose: string): string {
  const unit = budget === 'read' ? 'read units' : 'transactions';
  const cost = weight === 1 ? '' : `; this call costs ${weight}`;
  if (weight > r.burst) return `${method}: at most ${r.rate} ${unit} a second ${whose}, in bursts of up to ${r.burst} (${LIMITS_KEY}.${key})${cost}: more than a burst, so it never passes; send less in one call`;
  return `${method}: at most ${r.rate} ${unit} a second ${whose}, in bursts of up to ${r.burst} (${LIMITS_KEY}.${key})${cost}; try again later`;
}

function cpuMessage(method: string, key: LimitName, r: Rate, have: number, whose: string): string {
  const wait = Math.max(0.1, (-have + 1) / r.rate); // until the bucket is above zero again
  return `${method}: reads may take at most ${r.rate} ms of CPU a second ${whose}, in bursts of up to ${r.burst} ms (${LIMITS_KEY}.${key}); `
    + `spent, try again in ${wait.toFixed(1)} s`;
}
