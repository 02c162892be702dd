// The running build's version: package.json's, read once. One home for what `--version`,
// `btcfed_build_info` and logs report.

import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
