// libs/validators: the validator set of an epoch (who, quorum, leader, self), one object passed
// to every service instead of each computing these facts from the config on its own.
export { ValidatorSet, describeClaim, type SelfClaim, type Validator, type ValidatorEntry } from './set.ts';
export {
  DEFAULT_MIN_VALIDATORS, MAX_OPS, authorizeChange, nextValidatorSet, paramsOfChange, reconfigId,
  type ConsensusParams,
  type Approval, type ReconfigOp, type ReconfigRules, type Reconfiguration,
} from './reconfig.ts';
export { EpochHistory, type CommittedChange, type Verify } from './epochs.ts';
export { RECONFIG_TX_TAG, decodeReconfigTx, decodeReconfiguration, encodeReconfigTx, isReconfigTx, type ReconfigTx } from './reconfig-tx.ts';
