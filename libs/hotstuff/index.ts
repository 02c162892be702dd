// Public surface of libs/hotstuff: basic HotStuff as a pure state machine (events in,
// actions out). Drivers import from here only. Must never export the simulator.

export { createEngine, restoreEngine, type HotStuffEngine } from './engine.ts';
export type {
  EngineAction,
  EngineConfig,
  EngineDeps,
  EngineEvent,
  EngineMetrics,
  PersistedRecord,
  RejectReason,
  SafetyState,
  SignRequest,
  TimeoutConfig,
  ViewChangeCause,
  VoteMark,
} from './events.ts';
export { Phase } from './types.ts';
export type {
  Block,
  BlockHeader,
  ConsensusMessage,
  Equivocation,
  Hash,
  NewView,
  Proposal,
  QcAnnounce,
  QuorumCert,
  SignedMessage,
  Vote,
} from './types.ts';
export { faultBound, quorumSize, roundRobinLeader } from './quorum.ts';
export { LeaderSchedule, historyViews, isProbeView, mayLead, type CommittedView } from './schedule.ts';
export { genesisBlock, genesisHeader, genesisQC, isGenesisQC } from './genesis.ts';
export { QcVerifier, isQcRef, qcKey, qcRef, qcStructureError } from './qc.ts';
export { viewTimeoutMs } from './pacemaker.ts';
export { bytesEqual, toHex } from './bytes.ts';
export { blockHeaderError, headerError, type HeaderError, type HeaderExpect, type HeaderField } from './header.ts';
