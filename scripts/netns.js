// SPDX-License-Identifier: Apache-2.0
// Several "hosts" on this machine for tests and benches (types in netns.d.ts): one network
// namespace per host, each with one veth link to a bridge in the root namespace, so every host
// reaches every other over a link that can be shaped (tbf: bandwidth), made lossy (iptables:
// random drops) or cut.
// Needs root and `ip`; makeHosts() returns the reason instead when hosts cannot be made here.
//
// Addresses are 10.<a>.<b>.<i+1>/24 with <a>.<b> taken from the pid, so that two suites running
// at once do not collide. `tc netem` (delay, loss) is used only where the kernel has it: some
// kernels (this project's CI among them) lack the module, so loss is made with iptables'
// `statistic` match instead and delay is reported as unavailable.
'use strict';
const { execFileSync } = require('node:child_process');


function run(argv) {
  return execFileSync(argv[0], argv.slice(1), { stdio: 'pipe', encoding: 'utf8' });
}

function firstLine(e) {
  const err = e;
  const text = (err.stderr && err.stderr.trim()) || err.message || String(e);
  return text.split('\n').filter((l) => l.trim() !== '')[0] ?? text;
}

/** Whether a command exists on PATH. */
function haveCommand(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `n` hosts joined by a bridge; returns them, or a string saying why they cannot be made
 * here (not root, no `ip`, namespaces not permitted). Call remove() when done.
 */
function makeHosts(n, label = 'h') {
  if ((process.getuid && process.getuid()) !== 0) return 'not root (network namespaces need root)';
  if (!haveCommand('ip')) return 'the ip command is missing (Debian package iproute2)';
  const tag = String(process.pid % 10000);
  const a = 100 + (process.pid % 100);
  const b = Math.floor(process.pid / 100) % 250;
  const bridge = `ncbr${label}${tag}`.slice(0, 15);
  const names = Array.from({ length: n }, (_, i) => `nccl-${label}${tag}-${i}`);
  const outer = Array.from({ length: n }, (_, i) => `nc${label}${tag}o${i}`.slice(0, 15));
  const addrs = Array.from({ length: n }, (_, i) => `10.${a}.${b}.${i + 1}`);
  const inNs = (i, argv) => ['ip', 'netns', 'exec', names[i], ...argv];
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    for (const ns of names) {
      try { run(['ip', 'netns', 'del', ns]); } catch { /* never made */ }
    }
    try { run(['ip', 'link', 'del', bridge]); } catch { /* never made */ }
  };
  try {
    run(['ip', 'link', 'add', bridge, 'type', 'bridge']);
    run(['ip', 'link', 'set', bridge, 'up']);
    for (let i = 0; i < n; i++) {
      run(['ip', 'netns', 'add', names[i]]);
      run(['ip', 'link', 'add', outer[i], 'type', 'veth', 'peer', 'name', 'eth0', 'netns',
        names[i]]);
      run(['ip', 'link', 'set', outer[i], 'master', bridge]);
      run(['ip', 'link', 'set', outer[i], 'up']);
      run(inNs(i, ['ip', 'addr', 'add', `${addrs[i]}/24`, 'dev', 'eth0']));
      run(inNs(i, ['ip', 'link', 'set', 'eth0', 'up']));
      run(inNs(i, ['ip', 'link', 'set', 'lo', 'up']));
    }
  } catch (e) {
    remove();
    return `cannot create network namespaces here: ${firstLine(e)}`;
  }
  return {
    names,
    addrs,
    exec: inNs,
    limit(i, mbit) {
      // A token bucket of 64 KiB (enough for one TSO burst) and 50 ms of queue.
      run(inNs(i, ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate', `${mbit}mbit`,
        'burst', '64kb', 'latency', '50ms']));
    },
    loss(i, percent) {
      if (!haveCommand('iptables')) {
        throw new Error('loss needs iptables (Debian package iptables)');
      }
      run(inNs(i, ['iptables', '-A', 'OUTPUT', '-o', 'eth0', '-m', 'statistic', '--mode',
        'random', '--probability', String(percent / 100), '-j', 'DROP']));
    },
    dropped(i) {
      if (!haveCommand('iptables')) return 0;
      const out = run(inNs(i, ['iptables', '-L', 'OUTPUT', '-v', '-n', '-x']));
      let n = 0;
      for (const line of out.split('\n')) {
        if (/DROP/.test(line) && /statistic/.test(line)) n += Number(line.trim().split(/\s+/)[0]);
      }
      return n;
    },
    delay(i, ms) {
      try {
        run(inNs(i, ['tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', `${ms}ms`]));
        return null;
      } catch (e) {
        return `tc netem is not available in this kernel (${firstLine(e)})`;
      }
    },
    cut(i) {
      run(inNs(i, ['ip', 'link', 'set', 'eth0', 'down']));
    },
    remove,
  };
}

module.exports = { haveCommand, makeHosts };
