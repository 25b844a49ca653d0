// SPDX-License-Identifier: Apache-2.0
// nodeccl-run as real processes: the environment each rank gets, prefixed whole lines, exit
// codes and stopping the other ranks when one fails, signal forwarding, and running under an
// (emulated) mpirun or srun.
import { beforeAll, describe, expect, it } from 'vitest';
import { isAlive, launch as launchCli, launcherScript, type LaunchOptions }
  from '../helpers/launcher';

const NODE = process.execPath;

let runJs = '';
beforeAll(() => {
  runJs = launcherScript('cli');
});

const launch = (args: string[], options?: LaunchOptions) => launchCli(runJs, args, options);

/** `node -e <script>` as the command of every rank. */
const nodeEval = (script: string) => [NODE, '-e', script];

/** `[r] text` lines of stdout as [rank, text] pairs; any other line fails the test. */
function prefixed(stdout: string): [number, string][] {
  return stdout.split('\n').filter((l) => l !== '').map((line) => {
    const m = /^\[(\d+)\] (.*)$/.exec(line);
    if (m === null) throw new Error(`unprefixed line: ${JSON.stringify(line)}`);
    return [Number(m[1]), m[2]];
  });
}

const PRINT_ENV = `console.log(JSON.stringify({
  RANK: process.env.RANK, WORLD_SIZE: process.env.WORLD_SIZE,
  LOCAL_RANK: process.env.LOCAL_RANK, LOCAL_WORLD_SIZE: process.env.LOCAL_WORLD_SIZE,
  MASTER_ADDR: process.env.MASTER_ADDR, MASTER_PORT: process.env.MASTER_PORT,
  NODECCL_LAUNCHER: process.env.NODECCL_LAUNCHER, argv: process.argv.slice(1) }))`;

describe('nodeccl-run -np', () => {
  it('starts N ranks with their environment, prefixing each line with the rank', async () => {
    const r = await launch(['-np', '3', ...nodeEval(PRINT_ENV), '--', '--epochs', '3']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = prefixed(r.stdout);
    expect(lines.map(([rank]) => rank).sort()).toEqual([0, 1, 2]);
    const envs = lines.map(([rank, text]) => ({ rank, env: JSON.parse(text) }));
    const port = envs[0].env.MASTER_PORT;
    expect(Number(port)).toBeGreaterThan(0);
    for (const { rank, env } of envs) {
      expect(env).toEqual({
        RANK: String(rank), WORLD_SIZE: '3', LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '3',
        MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, NODECCL_LAUNCHER: '1',
        // The command's own options reach it untouched.
        argv: ['--epochs', '3'],
      });
    }
  });

  it('takes --master-addr, --master-port and --no-prefix', async () => {
    const r = await launch(['--np', '2', '--master-addr', 'localhost', '--master-port', '4567',
      '--no-prefix', ...nodeEval(PRINT_ENV)]);
    expect(r.code).toBe(0);
    const envs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(envs.map((e) => e.RANK).sort()).toEqual(['0', '1']);
    for (const e of envs) {
      expect(e).toMatchObject({ MASTER_ADDR: 'localhost', MASTER_PORT: '4567' });
    }
  });

  it('writes whole lines only, and ends a last partial line', async () => {
    // Each rank writes 400 lines in odd-sized pieces, then a line without a newline.
    const script = `
      const r = process.env.RANK;
      let text = '';
      for (let i = 0; i < 400; i++) text += r + ':' + i + ':' + r.repeat(150) + '\\n';
      let at = 0;
      const step = () => {
        if (at >= text.length) { process.stdout.write('tail-' + r); return; }
        process.stdout.write(text.slice(at, at + 997)); at += 997; setImmediate(step);
      };
      step();`;
    const r = await launch(['-np', '3', ...nodeEval(script)]);
    expect(r.code).toBe(0);
    const lines = prefixed(r.stdout);
    expect(lines).toHaveLength(3 * 401);
    const next = [0, 0, 0];
    for (const [rank, text] of lines) {
      if (text.startsWith('tail-')) {
        expect(text).toBe(`tail-${rank}`);
        continue;
      }
      expect(text).toBe(`${rank}:${next[rank]}:${String(rank).repeat(150)}`);
      next[rank]++;
    }
    expect(next).toEqual([400, 400, 400]);
  });

  it('stops the other ranks when one fails, and exits with its code', async () => {
    // Rank 1 fails after the others are up; rank 0 ignores SIGTERM, so it needs the SIGKILL
    // that follows the (shortened) grace period.
    const script = `
      console.log('pid ' + process.pid);
      if (process.env.RANK === '1') setTimeout(() => process.exit(3), 400);
      if (process.env.RANK === '0') process.on('SIGTERM', () => console.log('ignored SIGTERM'));
      setInterval(() => {}, 1000);`;
    const r = await launch(['-np', '3', '--grace', '0.5', ...nodeEval(script)]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /nodeccl-run: rank 1 \(pid \d+\) exited with code 3; stopping the other 2 running/);
    const lines = prefixed(r.stdout);
    expect(lines).toContainEqual([0, 'ignored SIGTERM']);
    const pids = lines.filter(([, t]) => t.startsWith('pid ')).map(([, t]) => Number(t.slice(4)));
    expect(pids).toHaveLength(3);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(r.ms).toBeLessThan(5000);
  });

  it('reports a rank killed by a signal and exits with 128 + its number', async () => {
    const script = `
      if (process.env.RANK === '1') setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
      else setInterval(() => {}, 1000);`;
    const r = await launch(['-np', '2', ...nodeEval(script)]);
    expect(r.code).toBe(137);
    expect(r.stderr).toContain('rank 1');
    expect(r.stderr).toContain('was killed by SIGKILL');
  });

  it('forwards SIGINT and SIGTERM to every rank, then ends by that signal', async () => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const script = `
        process.on('${sig}', () => { console.log('got ${sig}'); process.exit(0); });
        console.log('ready');
        setInterval(() => {}, 1000);`;
      let sent = false;
      const r = await launch(['-np', '2', ...nodeEval(script)], {
        onStdout: (out, pid) => {
          if (!sent && out.split('ready').length === 3) {
            sent = true;
            process.kill(pid, sig);
          }
        },
      });
      expect(sent).toBe(true);
      const got = prefixed(r.stdout).filter(([, t]) => t === `got ${sig}`).map(([k]) => k);
      expect(got.sort()).toEqual([0, 1]);
      expect(r.signal).toBe(sig);
    }
  });

  it('exits 127 when the command does not exist', async () => {
    const r = await launch(['-np', '2', 'nodeccl-no-such-command']);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('could not start');
    expect(r.stderr).toContain('ENOENT');
  });

  it('explains usage errors', async () => {
    const noCommand = await launch(['-np', '2']);
    expect(noCommand.code).not.toBe(0);
    expect(noCommand.stderr).toContain("missing required argument 'command'");
    const zero = await launch(['-np', '0', NODE]);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toContain('must be an integer >= 1');
    const noNp = await launch(nodeEval('1'));
    expect(noNp.code).not.toBe(0);
    expect(noNp.stderr).toContain('-np <N> is required');
    const badPort = await launch(['-np', '1', '--master-port', '70000', NODE]);
    expect(badPort.stderr).toContain('1 to 65535');
    // A typo such as -np 100000 starts nothing (and says how to insist).
    const storm = await launch(['-np', '100000', ...nodeEval('1')]);
    expect(storm.code).not.toBe(0);
    expect(storm.stderr).toMatch(/-np 100000 would start 100000 processes .* --oversubscribe/);
  });
});

describe('nodeccl-run under mpirun or srun', () => {
  const ompi = { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2',
    OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2' };

  it('starts exactly one rank from the launcher variables', async () => {
    const r = await launch(nodeEval(PRINT_ENV), { env: ompi });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = prefixed(r.stdout);
    expect(lines).toHaveLength(1);
    expect(lines[0][0]).toBe(1);
    expect(JSON.parse(lines[0][1])).toMatchObject({
      RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', NODECCL_LAUNCHER: '1',
    });
  });

  it('accepts a matching -np and MASTER_ADDR/PORT, and refuses a different -np', async () => {
    const env = { ...ompi, MASTER_ADDR: 'head', MASTER_PORT: '3333' };
    const ok = await launch(['-np', '2', ...nodeEval(PRINT_ENV)], { env });
    expect(ok.code).toBe(0);
    expect(JSON.parse(prefixed(ok.stdout)[0][1])).toMatchObject({
      MASTER_ADDR: 'head', MASTER_PORT: '3333',
    });
    const bad = await launch(['-np', '3', ...nodeEval(PRINT_ENV)], { env });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('-np 3 disagrees with the 2 ranks started by openmpi ' +
      '(OMPI_COMM_WORLD_SIZE=2)');
  });

  it('reads an srun step, and propagates the exit code of its one rank', async () => {
    const env = { SLURM_STEP_ID: '0', SLURM_PROCID: '0', SLURM_NTASKS: '1',
      SLURM_LOCALID: '0', SLURM_NNODES: '1' };
    const r = await launch(nodeEval(`${PRINT_ENV}; process.exit(5)`), { env });
    expect(r.code).toBe(5);
    expect(JSON.parse(prefixed(r.stdout)[0][1])).toMatchObject({ RANK: '0', WORLD_SIZE: '1' });
  });

  it('reports invalid launcher variables', async () => {
    const r = await launch(nodeEval('1'), { env: { ...ompi, OMPI_COMM_WORLD_RANK: 'x' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('OMPI_COMM_WORLD_RANK="x"');
  });
});
