// The transaction-id cache lives with block validity in libs/blocks; re-exported for the service.
export { rememberTxs, txHashesOf, txRootOf } from '#libs/blocks/index.ts';
