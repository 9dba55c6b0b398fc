import { promises as dnsPromises, type LookupAddress } from 'node:dns';
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

/**
 * Where a webhook may be sent (SSRF policy). The URL comes from an API client, so without these checks
 * the gateway would POST on the client's behalf to its own loopback, the private network, or the cloud
 * metadata service.
 */

export interface WebhookTargetPolicy {
  readonly requireHttps: boolean;
  /**
   * Hostnames (exact, case-insensitive), IP literals or CIDRs allowed even where they are private or
   * loopback: an operator's internal receiver, or 127.0.0.1 in tests. An IP or CIDR entry matches a URL
   * whose host is that IP literal, never a host name resolving into it: otherwise any domain pointed at
   * an allowed address (DNS rebinding) would inherit the allowance.
   */
  readonly allowedHosts: readonly string[];
}

export type WebhookTargetCheck =
  | { readonly ok: true; readonly url: URL }
  | {
      readonly ok: false;
      readonly reason: string;
      /** The host name did not resolve: unlike a refused address, a later attempt may succeed. */
      readonly unresolved?: boolean;
    };

/** The shape of `dns.promises.lookup` with `{ all: true }`; injected by tests. */
export type WebhookLookup = (hostname: string, options: { readonly all: true }) => Promise<readonly LookupAddress[]>;

const systemLookup: WebhookLookup = (hostname) => dnsPromises.lookup(hostname, { all: true });

type Range = readonly [network: string, prefix: number];

/** Each kind of range with the words a refusal uses for it; the first that matches names the reason. */
const forbiddenKinds: readonly { readonly kind: string; readonly v4: readonly Range[]; readonly v6: readonly Range[] }[] = [
  { kind: 'an unspecified address', v4: [['0.0.0.0', 8]], v6: [['::', 128]] },
  { kind: 'a loopback address', v4: [['127.0.0.0', 8]], v6: [['::1', 128]] },
  {
    kind: 'a private address',
    v4: [
      ['10.0.0.0', 8],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
    ],
    // Unique local: includes AWS's IPv6 metadata endpoint fd00:ec2::254.
    v6: [['fc00::', 7]],
  },
  { kind: 'a shared (carrier-grade NAT) address', v4: [['100.64.0.0', 10]], v6: [] },
  { kind: 'a link-local address (cloud metadata lives there)', v4: [['169.254.0.0', 16]], v6: [['fe80::', 10]] },
  { kind: 'an IETF protocol address', v4: [['192.0.0.0', 24]], v6: [] },
  {
    kind: 'a documentation address',
    v4: [
      ['192.0.2.0', 24],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
    ],
    v6: [['2001:db8::', 32]],
  },
  { kind: 'a benchmarking address', v4: [['198.18.0.0', 15]], v6: [] },
  { kind: 'a multicast address', v4: [['224.0.0.0', 4]], v6: [['ff00::', 8]] },
  { kind: 'a reserved address', v4: [['240.0.0.0', 4]], v6: [] },
  // Deprecated IPv4-compatible ::a.b.c.d; checked after :: and ::1, which it contains.
  { kind: 'a deprecated IPv4-compatible address', v4: [], v6: [['::', 96]] },
];

const forbiddenLists = forbiddenKinds.map(({ kind, v4, v6 }) => {
  const list = new BlockList();
  for (const [network, prefix] of v4) list.addSubnet(network, prefix, 'ipv4');
  for (const [network, prefix] of v6) list.addSubnet(network, prefix, 'ipv6');
  return { kind, list };
});

/**
 * IPv6 ranges whose address carries an IPv4 one that decides where the packet really goes: IPv4-mapped
 * (the socket connects over IPv4), NAT64 and 6to4 (a gateway forwards to the IPv4 address). Each with the
 * index of the 16-bit word where the IPv4 address starts.
 */
const embeddingRanges: readonly { readonly word: number; readonly list: BlockList }[] = (
  [
    [['::ffff:0:0', 96], 6],
    [['64:ff9b::', 96], 6],
    [['2002::', 16], 1],
  ] as const
).map(([[network, prefix], word]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, 'ipv6');
  return { word, list };
});

const ipv4Mapped = new BlockList();
ipv4Mapped.addSubnet('::ffff:0:0', 96, 'ipv6');

/**
 * Why `address` must not be connected to, or undefined where it may (public, or allowed by the policy).
 * The reason reads after the address: `127.0.0.1, a loopback address`.
 */
export function forbiddenAddressReason(address: string, family: 4 | 6, policy: WebhookTargetPolicy): string | undefined {
  const bare = stripZone(address);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (family === 4 ? !isIPv4(bare) : !isIPv6(bare)) return `not an IPv${family} address`;
  if (allowedAddress(bare, type, policy)) return undefined;
  return forbiddenKind(bare, type);
}

/** The ranges alone; the allowlist is not consulted, so a NAT64 form of an allowed address stays refused. */
function forbiddenKind(address: string, type: 'ipv4' | 'ipv6'): string | undefined {
  if (type === 'ipv6') {
    const embedded = embeddedIPv4(address);
    if (embedded !== undefined) {
      const kind = forbiddenKind(embedded, 'ipv4');
      return kind === undefined ? undefined : `${kind} (embedded as ${embedded})`;
    }
  }
  return forbiddenLists.find(({ list }) => list.check(address, type))?.kind;
}

/** The checks that need no DNS: scheme, userinfo, and the address where the host is an IP literal. */
export function checkWebhookUrl(url: string, policy: WebhookTargetPolicy): WebhookTargetCheck {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: 'webhookURL is not a URL' };
  }
  const { protocol } = parsed;
  if (policy.requireHttps && protocol !== 'https:') return { ok: false, reason: `webhookURL must use https, not ${protocol.slice(0, -1)}` };
  if (protocol !== 'http:' && protocol !== 'https:') return { ok: false, reason: `webhookURL must use http or https, not ${protocol.slice(0, -1)}` };
  // Credentials in a URL end up in logs, and are a classic way to disguise the real host.
  if (parsed.username !== '' || parsed.password !== '') return { ok: false, reason: 'webhookURL must not contain a user name or password' };
  const literal = ipLiteral(parsed.hostname);
  if (literal !== undefined) {
    // URL() has already normalised 2130706433, 0x7f.1 and the like to dotted IPv4.
    const reason = forbiddenAddressReason(literal.address, literal.family, policy);
    if (reason !== undefined) return { ok: false, reason: `webhookURL host ${literal.address} is ${reason}` };
  }
  return { ok: true, url: parsed };
}

/** checkWebhookUrl, then every address a host name resolves to: one forbidden address is enough to refuse. */
export async function checkWebhookTarget(url: string, policy: WebhookTargetPolicy, lookup: WebhookLookup = systemLookup): Promise<WebhookTargetCheck> {
  const checked = checkWebhookUrl(url, policy);
  if (!checked.ok || ipLiteral(checked.url.hostname) !== undefined) return checked;
  const resolved = await resolveWebhookHost(checked.url.hostname, policy, lookup);
  return resolved.ok ? checked : resolved;
}

export type WebhookHostResolution =
  | { readonly ok: true; readonly addresses: readonly LookupAddress[] }
  | Extract<WebhookTargetCheck, { ok: false }>;

/**
 * Resolves a host name (not an IP literal) and judges every address, unless the name itself is allowed.
 * Shared by checkWebhookTarget and the connect-time lookup of the delivery, which must agree.
 */
export async function resolveWebhookHost(hostname: string, policy: WebhookTargetPolicy, lookup: WebhookLookup = systemLookup): Promise<WebhookHostResolution> {
  let addresses: readonly LookupAddress[];
  try {
    addresses = await lookup(hostname, { all: true });
  } catch (error) {
    return { ok: false, reason: `webhookURL host "${hostname}" could not be resolved (${errorCode(error)})`, unresolved: true };
  }
  if (addresses.length === 0) return { ok: false, reason: `webhookURL host "${hostname}" resolves to no address`, unresolved: true };
  if (allowedHostname(hostname, policy)) return { ok: true, addresses };
  for (const { address } of addresses) {
    // The family is read from the address itself: an injected lookup may get it wrong.
    const bare = stripZone(address);
    const family = isIP(bare);
    // The ranges alone: the allowlist's addresses are for IP-literal URLs (see WebhookTargetPolicy).
    const reason = family === 4 || family === 6 ? forbiddenKind(bare, family === 4 ? 'ipv4' : 'ipv6') : 'not an IP address';
    if (reason !== undefined) return { ok: false, reason: `webhookURL host "${hostname}" resolves to ${address}, ${reason}` };
  }
  return { ok: true, addresses };
}

/** Whether the policy names this host name itself (not an address it resolves to). */
export function allowedHostname(hostname: string, policy: WebhookTargetPolicy): boolean {
  const name = normaliseHostname(hostname);
  return compiled(policy).hostnames.has(name);
}

interface CompiledAllowList {
  readonly hostnames: ReadonlySet<string>;
  readonly addresses: BlockList;
}

// Keyed by the array, so a policy is parsed once however often it is checked.
const compiledPolicies = new WeakMap<readonly string[], CompiledAllowList>();

function compiled(policy: WebhookTargetPolicy): CompiledAllowList {
  const known = compiledPolicies.get(policy.allowedHosts);
  if (known) return known;
  const hostnames = new Set<string>();
  const addresses = new BlockList();
  for (const entry of policy.allowedHosts) {
    const text = entry.trim();
    const slash = text.indexOf('/');
    if (slash >= 0) {
      const network = unbracket(text.slice(0, slash));
      const prefix = Number(text.slice(slash + 1));
      const family = isIP(network);
      const max = family === 4 ? 32 : 128;
      // A typo in the allowlist is an operator's mistake: loud, never silently "allow nothing".
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max || text.slice(slash + 1) === '') {
        throw new TypeError(`webhook allowedHosts entry "${entry}" is not a hostname, IP address or CIDR`);
      }
      addresses.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6');
      continue;
    }
    const address = unbracket(text);
    const family = isIP(address);
    if (family === 4 || family === 6) addresses.addAddress(address, family === 4 ? 'ipv4' : 'ipv6');
    else hostnames.add(normaliseHostname(text));
  }
  const result = { hostnames, addresses };
  compiledPolicies.set(policy.allowedHosts, result);
  return result;
}

function allowedAddress(address: string, type: 'ipv4' | 'ipv6', policy: WebhookTargetPolicy): boolean {
  const { addresses } = compiled(policy);
  if (addresses.check(address, type)) return true;
  // ::ffff:127.0.0.1 is the same host as 127.0.0.1; NAT64 and 6to4 are not, they go through a gateway.
  const mapped = type === 'ipv6' && ipv4Mapped.check(address, 'ipv6') ? embeddedIPv4(address) : undefined;
  return mapped !== undefined && addresses.check(mapped, 'ipv4');
}

function embeddedIPv4(address: string): string | undefined {
  const range = embeddingRanges.find(({ list }) => list.check(address, 'ipv6'));
  if (range === undefined) return undefined;
  const words = ipv6Words(address);
  const high = words[range.word] ?? 0;
  const low = words[range.word + 1] ?? 0;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The eight 16-bit words of a valid IPv6 address, a trailing dotted IPv4 part included. */
function ipv6Words(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const left = parse(head);
  if (rest === undefined) return left;
  const right = parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function ipLiteral(hostname: string): { address: string; family: 4 | 6 } | undefined {
  if (hostname.startsWith('[')) return { address: unbracket(hostname), family: 6 };
  return isIPv4(hostname) ? { address: hostname, family: 4 } : undefined;
}

function unbracket(text: string): string {
  return text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
}

function stripZone(address: string): string {
  const percent = address.indexOf('%');
  return percent < 0 ? address : address.slice(0, percent);
}

/** `Example.COM.` and `example.com` are the same host. */
function normaliseHostname(hostname: string): string {
  const lower = hostname.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.message : String(error);
}
