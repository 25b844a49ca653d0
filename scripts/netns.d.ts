// SPDX-License-Identifier: Apache-2.0
// Types of scripts/netns.js: several "hosts" made of network namespaces, for tests and benches.
export interface NetHosts {
  /** Namespace names; they double as the host names given to `ip netns exec`. */
  readonly names: string[];
  /** IPv4 address of each host on the bridge. */
  readonly addrs: string[];
  /** argv that runs `argv` inside host i. */
  exec(i: number, argv: readonly string[]): string[];
  /** Limits host i's outgoing bandwidth to `mbit` Mbit/s (tbf on its link). */
  limit(i: number, mbit: number): void;
  /** Drops `percent` % of host i's outgoing packets at random (iptables statistic). */
  loss(i: number, percent: number): void;
  /** Packets dropped so far by loss() on host i. */
  dropped(i: number): number;
  /** Adds `ms` of delay to host i's outgoing packets; returns why not where netem is missing. */
  delay(i: number, ms: number): string | null;
  /** Takes host i's link down (its peers see silence, not a closed connection). */
  cut(i: number): void;
  /** Deletes every namespace and the bridge. Idempotent. */
  remove(): void;
}

/** Whether a command exists on PATH. */
export function haveCommand(name: string): boolean;

/**
 * Makes `n` hosts joined by a bridge; returns them, or a string saying why they cannot be made
 * here (not root, no `ip`, namespaces not permitted). Call remove() when done.
 */
export function makeHosts(n: number, label?: string): NetHosts | string;
