// libs/validators: the validator set of an epoch (who, quorum, leader, self), one object passed
// to every service instead of each computing these facts from the config on its own.
export { ValidatorSet, describeClaim, type SelfClaim, type Validator, type ValidatorEntry } from './set.ts';
