// `npm start`: the main job as far as it exists today — one member's store on a freshly made
// data dir (.devnet/m0), in the foreground. Once the consensus service lands this becomes
// the 4-member local federation. Ctrl-C stops it cleanly.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const dataDir = path.join(root, '.devnet', 'm0');
const listen = process.env.STORE_LISTEN ?? '127.0.0.1:7100';
const metrics = process.env.STORE_METRICS ?? '127.0.0.1:9100';

if (!fs.existsSync(path.join(dataDir, 'conf.yaml'))) {
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(path.join(dataDir, 'conf.yaml'), [
    '# Member m0 of the local devnet. Edit and save, or send SIGHUP: the store reloads it.',
    '# node.private_key is generated on first start.',
    'node:',
    '  name: m0',
    'network:',
    '  addresses: [/ip4/127.0.0.1/tcp/4001]',
    'peers:',
    '  exchange_interval: 30s',
    '  connection_timeout: 10s',
    'logging:',
    '  level: info',
    '  format: text',
    '',
  ].join('\n'), { mode: 0o600 });
  console.log(`made a fresh data dir: ${dataDir}`);
}

console.log(`
store of member m0 — gRPC on ${listen}, metrics on http://${metrics}/metrics
  data dir     ${dataDir}
  try          node_modules/.bin/node scripts/storectl.ts --store ${listen} get-config
               node_modules/.bin/node scripts/storectl.ts --store ${listen} watch
               edit ${path.join(dataDir, 'conf.yaml')} or peers.yaml, or: kill -HUP <pid>
  stop         Ctrl-C
`);

// Its own process group: a terminal's Ctrl-C reaches the child once, through us, not twice.
const child = spawn(process.execPath, [path.join(root, 'services/store/main.ts'), '--data-dir', dataDir, '--listen', listen, '--metrics', metrics], { stdio: 'inherit', detached: true });
const forward = (signal: NodeJS.Signals) => child.kill(signal);
process.on('SIGINT', () => forward('SIGINT'));
process.on('SIGTERM', () => forward('SIGTERM'));
process.on('SIGHUP', () => forward('SIGHUP'));
child.on('exit', (code) => process.exit(code ?? 1));
