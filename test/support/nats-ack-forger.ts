// A TCP proxy between one NATS client and a real nats-server that can lose a JetStream publish
// the way a replaced stream leader does: the message never reaches the server, yet the client
// gets an ack naming a stream sequence number. Everything else passes through unchanged. The
// client is real (the service's own code), the stream is real; only the lost message is forged.
//
// NATS's client protocol is line-based: a control line, then for PUB/HPUB (client to server) and
// MSG/HMSG (server to client) a payload whose length ends the line, and CRLF. Both directions are
// cut into whole frames, and only whole frames are written on, so a forged ack never lands in the
// middle of a server frame.

import net from 'node:net';

interface Lose { subject: string; remaining: number; nextSeq: number; stream: string }

/** Splits a NATS protocol byte stream into whole frames (a control line and its payload, if any). */
class Framer {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Array<{ line: string; frame: Buffer }> {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Array<{ line: string; frame: Buffer }> = [];
    for (;;) {
      const eol = this.#buf.indexOf('\r\n');
      if (eol < 0) return out;
      const line = this.#buf.subarray(0, eol).toString('latin1');
      const op = line.split(' ', 1)[0]!.toUpperCase();
      const withPayload = op === 'PUB' || op === 'HPUB' || op === 'MSG' || op === 'HMSG';
      const size = withPayload ? eol + 2 + Number(line.trim().split(/\s+/).at(-1)) + 2 : eol + 2;
      if (this.#buf.length < size) return out;
      out.push({ line, frame: this.#buf.subarray(0, size) });
      this.#buf = this.#buf.subarray(size);
    }
  }
}

export interface NatsAckForger {
  /** The URL clients connect to. */
  url: string;
  /** Loses the next `count` publishes to `subject`, answering each with an ack for `stream` at `fromSeq`, `fromSeq + 1`, … */
  loseNext(subject: string, opts: { count: number; fromSeq: number; stream: string }): void;
  /** Publishes lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}

export async function startNatsAckForger(target: { host: string; port: number }): Promise<NatsAckForger> {
  let lose: Lose | undefined;
  let lost = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const fromClient = new Framer();
    const fromServer = new Framer();
    /** The client's subscriptions by subject prefix (its reply inbox is a wildcard subscription). */
    const subs = new Map<string, string>();
    client.on('data', (chunk: Buffer) => {
      for (const { line, frame } of fromClient.push(chunk)) {
        const parts = line.trim().split(/\s+/);
        const op = parts[0]!.toUpperCase();
        if (op === 'SUB') subs.set(parts[1]!.replace(/\*$/, ''), parts.at(-1)!);
        if ((op === 'HPUB' || op === 'PUB') && lose && lose.remaining > 0 && parts[1] === lose.subject && parts.length >= (op === 'HPUB' ? 5 : 4)) {
          const reply = parts[2]!;
          const sid = [...subs].find(([prefix]) => reply.startsWith(prefix))?.[1];
          if (sid !== undefined) {
            const ack = Buffer.from(JSON.stringify({ stream: lose.stream, seq: lose.nextSeq }));
            lose.nextSeq++;
            lose.remaining--;
            lost++;
            // Only whole server frames are ever written to the client, so this lands between two.
            client.write(Buffer.concat([Buffer.from(`MSG ${reply} ${sid} ${ack.length}\r\n`), ack, Buffer.from('\r\n')]));
            continue;
          }
        }
        upstream.write(frame);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const { frame } of fromServer.push(chunk)) client.write(frame);
    });
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `nats://127.0.0.1:${port}`,
    loseNext(subject, opts) { lose = { subject, remaining: opts.count, nextSeq: opts.fromSeq, stream: opts.stream }; },
    get lost() { return lost; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
