import { BlockList, isIP, isIPv4 } from 'node:net';

/** Which destinations a webhook may reach, from config (WEBHOOK_ALLOW_*). */
export interface TargetPolicy {
  allowLoopback: boolean;
  allowPrivateNetworks: boolean;
}

function blockList(ranges: readonly (readonly [string, number])[]): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of ranges) list.addSubnet(network, prefix, isIPv4(network) ? 'ipv4' : 'ipv6');
  return list;
}

/**
 * Never reachable: link-local (169.254.0.0/16 holds the cloud metadata services, fe80::/10),
 * "this network", IETF assignments, multicast, reserved and broadcast, ::/96 (unspecified and the
 * deprecated IPv4-compatible addresses; ::1 is loopback and checked first),
 * and the metadata addresses that sit inside otherwise private ranges (AWS's fd00:ec2::254,
 * Alibaba's 100.100.100.200).
 */
const FORBIDDEN = blockList([
  ['0.0.0.0', 8],
  ['169.254.0.0', 16],
  ['192.0.0.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
  ['100.100.100.200', 32],
  ['::', 96],
  ['fe80::', 10],
  ['ff00::', 8],
  ['fd00:ec2::254', 128],
]);
const LOOPBACK = blockList([
  ['127.0.0.0', 8],
  ['::1', 128],
]);
const PRIVATE = blockList([
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10],
  ['fc00::', 7],
]);

/**
 * An IPv4 address written as IPv6 as the IPv4 address it reaches: IPv4-mapped (::ffff:a.b.c.d,
 * ::ffff:7f00:1) and NAT64 (64:ff9b::a.b.c.d, which a NAT64 gateway forwards to a.b.c.d).
 */
function unmapped(address: string): string {
  const lower = address.toLowerCase();
  const match = /^(?:::ffff:|64:ff9b::)(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/.exec(lower);
  if (!match) return address;
  if (match[1]) return match[1];
  const high = parseInt(match[2] ?? '0', 16);
  const low = parseInt(match[3] ?? '0', 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/** Why a webhook may not connect to this IP address, or null when it may. */
export function addressProblem(rawAddress: string, policy: TargetPolicy): string | null {
  const address = unmapped(rawAddress);
  const family = isIP(address);
  if (family === 0) return `'${rawAddress}' is not an IP address`;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (LOOPBACK.check(address, type)) {
    return policy.allowLoopback ? null : `${rawAddress} is a loopback address (WEBHOOK_ALLOW_LOOPBACK is off)`;
  }
  if (FORBIDDEN.check(address, type)) return `${rawAddress} is a link-local, metadata or reserved address`;
  if (PRIVATE.check(address, type) && !policy.allowPrivateNetworks) {
    return `${rawAddress} is a private address (WEBHOOK_ALLOW_PRIVATE_NETWORKS is off)`;
  }
  return null;
}

/** The URL's host as an IP address when it is one (IPv6 without brackets), else null. */
export function literalAddress(url: URL): string | null {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return isIP(host) === 0 ? null : host;
}

/**
 * What is wrong with a webhook URL as written, or null: http or https only, no user name or
 * password (they would be shown in listings and logs; put a token in the path instead), and no
 * host the policy refuses by its name or literal address. Addresses a name resolves to are
 * checked again at every attempt (see WebhookSender), so DNS cannot point it elsewhere later.
 */
export function webhookUrlProblem(text: string, policy: TargetPolicy): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  if (url.hash !== '') return 'must not have a #fragment';
  const literal = literalAddress(url);
  if (literal !== null) return addressProblem(literal, policy);
  const name = url.hostname.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) {
    return policy.allowLoopback ? null : `${url.hostname} is a loopback name (WEBHOOK_ALLOW_LOOPBACK is off)`;
  }
  return null;
}
