// The shared Signer suite (services/signer/contract.ts) against both implementations: the
// in-process LocalSigner and the same signer behind gRPC with mutual TLS.

import { signerContract } from '../services/signer/contract.ts';
import { grpcHarness, inProcessHarness } from './support/signer.ts';

signerContract('in-process', () => inProcessHarness());
signerContract('gRPC (mTLS)', () => grpcHarness());
