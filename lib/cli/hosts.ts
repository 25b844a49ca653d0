// SPDX-License-Identifier: Apache-2.0
// Host lists for nodeccl-run: parses `-H a:2,b` and Open MPI hostfiles into hosts with slot
// counts, lays ranks out over them, and builds the remote-start command from an --rsh template
// (shell-like word splitting in, POSIX single-quoting out). Pure functions, tested without hosts.
import * as fs from 'node:fs';
import * as os from 'node:os';

/** One host of a job and how many ranks it may run. */
export interface HostSlots {
  host: string;
  slots: number;
}

/** The part of the job one host runs: ranks firstRank..firstRank+count-1. */
export interface NodePlan {
  host: string;
  nodeRank: number;
  firstRank: number;
  count: number;
}

/** A user error in a host list, hostfile or template; the message names the culprit. */
export class HostListError extends Error {}

// `host`, `host:N`, `[v6addr]` or `[v6addr]:N`. Slots are checked by the caller.
function splitEntry(entry: string, where: string): { host: string; slots: string | undefined } {
  const m = /^\[([^\]]+)\](?::(.*))?$/.exec(entry) ?? /^([^:[\]\s]+)(?::(.*))?$/.exec(entry);
  if (m === null || m[1] === '') {
    throw new HostListError(`${where}: malformed host entry ${JSON.stringify(entry)}; write ` +
      'host, host:N (N slots) or [IPv6]:N');
  }
  return { host: m[1], slots: m[2] };
}

function slotCount(raw: string, entry: string, where: string): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new HostListError(`${where}: malformed slot count in ${JSON.stringify(entry)}; the ` +
      'slots are a whole number, e.g. node1:4');
  }
  if (n === 0) {
    throw new HostListError(`${where}: host ${JSON.stringify(entry)} has 0 slots; give it at ` +
      'least 1 or leave it out');
  }
  return n;
}

// A host named twice gets the sum of its slots, at its first place (as Open MPI does), so that
// its ranks have one LOCAL_RANK numbering.
function merge(list: HostSlots[]): HostSlots[] {
  const byHost = new Map<string, HostSlots>();
  for (const h of list) {
    const seen = byHost.get(h.host);
    if (seen === undefined) byHost.set(h.host, { ...h });
    else seen.slots += h.slots;
  }
  return [...byHost.values()];
}

/** Parses `-H a:2,b:2,c` (no count: 1 slot). */
export function parseHostList(spec: string): HostSlots[] {
  const entries = spec.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) throw new HostListError('-H: the host list is empty');
  return merge(entries.map((entry) => {
    if (entry === '') {
      throw new HostListError(`-H: empty entry in ${JSON.stringify(spec)}; separate hosts ` +
        'with single commas, e.g. -H a:2,b:2');
    }
    const { host, slots } = splitEntry(entry, '-H');
    return { host, slots: slots === undefined ? 1 : slotCount(slots, entry, '-H') };
  }));
}

/** Parses one hostfile line (comment already removed): `host [slots=N] [max_slots=M]`. */
function parseHostfileLine(line: string, where: string): HostSlots {
  const [first, ...rest] = line.split(/\s+/);
  const { host, slots: colon } = splitEntry(first, where);
  let slots = colon === undefined ? 1 : slotCount(colon, first, where);
  for (const word of rest) {
    const kv = /^(slots|max_slots|max-slots)=(.*)$/.exec(word);
    if (kv === null) {
      throw new HostListError(`${where}: unknown word ${JSON.stringify(word)}; a line is ` +
        '`host slots=N` or `host:N`');
    }
    // max_slots only caps oversubscription in Open MPI; we never oversubscribe.
    if (kv[1] === 'slots') slots = slotCount(kv[2], word, where);
  }
  return { host, slots };
}

/** Parses an Open MPI hostfile's text: `host slots=N` or `host:N` lines, `#` comments. */
export function parseHostfileText(text: string, file: string): HostSlots[] {
  const hosts: HostSlots[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line !== '') hosts.push(parseHostfileLine(line, `${file}:${i + 1}`));
  });
  if (hosts.length === 0) throw new HostListError(`hostfile ${file} lists no hosts`);
  return merge(hosts);
}

/** Reads and parses a hostfile; an unreadable file is reported with its path and errno. */
export function readHostfile(file: string): HostSlots[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '');
    throw new HostListError(`cannot read hostfile ${file}: ${err.code ?? 'error'} (${why})`);
  }
  return parseHostfileText(text, file);
}

/**
 * Numbers ranks host by host: the first host's slots get ranks 0.., then the next host's.
 * With `np`, only the first np slots are used (hosts left without a rank are dropped).
 */
export function layOut(hosts: readonly HostSlots[], np: number | undefined): NodePlan[] {
  const total = hosts.reduce((s, h) => s + h.slots, 0);
  const want = np ?? total;
  if (want > total) {
    throw new HostListError(`-np ${want} exceeds the ${total} slot(s) of the host list ` +
      `(${hosts.map((h) => `${h.host}:${h.slots}`).join(',')}); add slots or lower -np`);
  }
  const plans: NodePlan[] = [];
  let next = 0;
  for (const h of hosts) {
    const count = Math.min(h.slots, want - next);
    if (count <= 0) break;
    plans.push({ host: h.host, nodeRank: plans.length, firstRank: next, count });
    next += count;
  }
  return plans;
}

/** Whether `host` names this machine, so that its launcher can be started without rsh. */
export function isLocalHost(host: string): boolean {
  const h = host.toLowerCase();
  const me = os.hostname().toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === me ||
    h === me.split('.')[0];
}

/** Whether `host` is a loopback-style name that other hosts cannot reach us by. */
export function isLoopbackName(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Whether `addr` is an address of one of this machine's interfaces (or a loopback name). */
export function isThisMachine(addr: string): boolean {
  if (isLocalHost(addr)) return true;
  return Object.values(os.networkInterfaces()).some((list) =>
    (list ?? []).some((i) => i.address === addr));
}

// ---- shell words ------------------------------------------------------------------------------

/**
 * Splits a template into words as a POSIX shell would, without expansions: whitespace
 * separates words, '...' is literal, "..." honours \" \\ \$ \`, and \x outside quotes is x.
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new HostListError(`--rsh: unterminated ' in ${JSON.stringify(text)}`);
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let s = '';
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\' && '"\\$`'.includes(text[i + 1] ?? '')) i++;
        s += text[i];
      }
      if (i >= text.length) {
        throw new HostListError(`--rsh: unterminated " in ${JSON.stringify(text)}`);
      }
      word = (word ?? '') + s;
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i];
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** One word for a POSIX shell: bare when it is plainly safe, else in single quotes. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_./=:@%+,-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The argv that runs `commandLine` (one shell command line) on `host` through the template.
 * `{host}` is replaced inside any word; a word holding `{cmd}` gets the command line in its
 * place. A template with neither placeholder gets ` {host} {cmd}` appended (`--rsh 'ssh -p 22'`),
 * one with only `{host}` gets ` {cmd}`.
 */
export function rshArgv(template: string, host: string, commandLine: string): string[] {
  let words = splitWords(template);
  if (words.length === 0) throw new HostListError('--rsh: the template is empty');
  const has = (p: string) => words.some((w) => w.includes(p));
  if (!has('{cmd}')) words = has('{host}') ? [...words, '{cmd}'] : [...words, '{host}', '{cmd}'];
  return words.map((w) => w.split('{host}').join(host).split('{cmd}').join(commandLine));
}
