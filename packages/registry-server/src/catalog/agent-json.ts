import { availableParallelism } from 'node:os';
import { consulVersion, serverAddress, serverRpcPort, type NodeInfo } from './consul-json.js';

// The agent's own description of itself, as `/v1/agent/self` and `/v1/agent/members` answer
// it: a Consul server agent alone in its datacenter, its own Raft leader.

// Serf's ports: LAN gossip and WAN gossip; this server gossips on neither, but clients read
// them from Member.
const serfLanPort = 8301;
const serfWanPort = 8302;

/** What `/v1/agent/self` counts in `Stats.agent`, read from the catalog when asked. */
export interface AgentCounts {
  readonly services: number;
  readonly checks: number;
  readonly ttlChecks: number;
  /** Script checks (Consul's "check monitors"). */
  readonly scriptChecks: number;
}

/**
 * The local member, as Consul's serf.Member: in the LAN pool by the node name, in the WAN pool
 * (`wan`) as `<node>.<datacenter>`, the name a Consul server has there.
 * @example
 * memberJson(node, false)['Name']; // 'web-1'
 */
export function memberJson(node: NodeInfo, wan = false): Record<string, unknown> {
  return {
    Name: wan ? `${node.name}.${node.datacenter}` : node.name,
    Addr: node.address,
    Port: wan ? serfWanPort : serfLanPort,
    Tags: {
      bootstrap: '1',
      build: `${consulVersion}:trellis`,
      dc: node.datacenter,
      ft_fs: '1',
      ft_si: '1',
      id: node.id,
      port: String(serverRpcPort),
      raft_vsn: '3',
      role: 'consul',
      segment: '',
      vsn: '2',
      vsn_max: '3',
      vsn_min: '2',
      wan_join_port: String(serfWanPort),
    },
    // Serf's StatusAlive.
    Status: 1,
    ProtocolMin: 1,
    ProtocolMax: 5,
    ProtocolCur: 2,
    DelegateMin: 2,
    DelegateMax: 5,
    DelegateCur: 4,
  };
}

/**
 * `/v1/agent/self`: what clients read of it (`Config.Datacenter`, `Config.NodeName`,
 * `Config.NodeID`, `Config.Version`, `Member`, `Meta`, and `Stats` as Consul fills it, every
 * value a string: `consul.leader_addr`, `consul.server`, `consul.known_datacenters`, ...).
 * There is no `xDS` block: this server serves no xDS, and clients take its presence to mean
 * Envoy could connect.
 * @example
 * agentSelfJson(node, { services: 2, checks: 2, ttlChecks: 2, scriptChecks: 0 }, false);
 */
export function agentSelfJson(node: NodeInfo, counts: AgentCounts, aclEnabled: boolean): Record<string, unknown> {
  return {
    Config: {
      Datacenter: node.datacenter,
      PrimaryDatacenter: node.datacenter,
      NodeName: node.name,
      NodeID: node.id,
      Revision: 'trellis',
      Server: true,
      Version: consulVersion,
      BuildDate: '',
    },
    DebugConfig: {},
    Coord: { Vec: [0, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 },
    Member: memberJson(node),
    Stats: {
      agent: {
        check_monitors: String(counts.scriptChecks),
        check_ttls: String(counts.ttlChecks),
        checks: String(counts.checks),
        services: String(counts.services),
      },
      build: { prerelease: '', revision: 'trellis', version: consulVersion, version_metadata: '' },
      consul: {
        acl: aclEnabled ? 'enabled' : 'disabled',
        bootstrap: 'true',
        // One datacenter known: its own.
        known_datacenters: '1',
        leader: 'true',
        leader_addr: serverAddress(node),
        server: 'true',
      },
      runtime: {
        arch: goArch(process.arch),
        cpu_count: String(availableParallelism()),
        os: process.platform,
        version: process.version,
      },
    },
    Meta: { ...node.meta },
  };
}

// Go's names for the architectures (GOARCH), which Consul reports.
function goArch(arch: string): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' } as Record<string, string>)[arch] ?? arch;
}
