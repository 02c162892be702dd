// libs/config: the schemas and parsers of conf.yaml and peers.yaml, shared by every
// service so that the store and its clients agree on what a valid file is.
export { confSchema, peersSchema, peerEntrySchema, MEMBER_NAME, PARAM_SET_NAMES, READ_CPU_DEFAULTS, readCpuLimits } from './schema.ts';
export type { Conf, ConfInput, CpuRate, PeerEntry, PeersFile, ReadCpuKey, Role } from './schema.ts';
export {
  parseYaml, parseConfObject, parseNatsObject, parseConfText, parsePeersObject, parsePeersText,
  mergePeer, peersToData, configInvalid,
} from './parse.ts';
export type { ConfigIssue, Peer } from './parse.ts';
export { BASE_TIMEOUT_RANGE_MS, baseTimeoutProblem, idleHeartbeatProblem, networkList, parseCidr, parseDuration, parseHostPort, parsePeerId, parseTcpMultiaddr, parsePrivateKey, parsePublicKey } from './values.ts';
export type { Cidr, HostPort, PeerAddress, Parsed } from './values.ts';
export { generateIdentity, resolvePath } from './identity.ts';
export type { Identity } from './identity.ts';
export { passphraseBesideKey, signerConfSchema, parseSignerConfObject, parseSignerConfText, type SignerConf, type SignerConfInput } from './signer.ts';
export {
  CARD_VERSION, GENESIS_VERSION, memberCardSchema, genesisSchema, compareNames, genesisDigest, genesisValidators, memberAddressProblem,
  parseCardText, parseGenesisText, assembleGenesis, type MemberCard, type Genesis,
} from './genesis.ts';
