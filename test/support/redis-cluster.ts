import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

/**
 * Real Redis Cluster and Sentinel set-ups (Debian's redis-server and redis-cli) on free loopback ports, owned
 * by one test file, in the style of redis-server.ts: nothing persisted, their files in a temporary directory,
 * every process killed (and waited for, within bounds) by stop().
 */

export interface RedisCluster {
  readonly ports: readonly number[];
  /** REDIS_CLUSTER_NODES for them: `127.0.0.1:P1,127.0.0.1:P2,…`. */
  readonly nodes: string;
  stop(): Promise<void>;
}

export interface RedisSentinel {
  /** The master the sentinel monitors. */
  readonly masterPort: number;
  readonly sentinelPort: number;
  /** REDIS_SENTINELS and REDIS_SENTINEL_NAME for it. */
  readonly sentinels: string;
  readonly name: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5000;

/** Three masters (by default), no replicas, every slot assigned, `cluster_state:ok` on every node. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const directory = await mkdtemp(join(tmpdir(), 'clipgate-redis-cluster-'));
  const children: ChildProcess[] = [];
  const stop = () => stopAll(children, directory);
  try {
    const ports: number[] = [];
    for (let index = 0; index < masters; index++) {
      const port = await freePort();
      // The bus port is chosen too: the default (port + 10000) may lie beyond 65535 or be taken.
      const busPort = await freePort();
      ports.push(port);
      children.push(
        await launch('redis-server', [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--protected-mode', 'no',
          '--cluster-enabled', 'yes',
          '--cluster-port', String(busPort),
          '--cluster-config-file', join(directory, `nodes-${port}.conf`),
          '--cluster-node-timeout', '2000',
          '--dir', directory,
          '--save', '',
          '--appendonly', 'no',
        ], port),
      );
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitForClusterOk(ports);
    return { ports, nodes: ports.map((port) => `127.0.0.1:${port}`).join(','), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** One master and one sentinel that monitors it (quorum 1) under the name `clipgate`. */
export async function startRedisSentinel(): Promise<RedisSentinel> {
  const directory = await mkdtemp(join(tmpdir(), 'clipgate-redis-sentinel-'));
  const children: ChildProcess[] = [];
  const stop = () => stopAll(children, directory);
  try {
    const [masterPort, sentinelPort] = [await freePort(), await freePort()];
    children.push(await launch('redis-server', ['--port', String(masterPort), '--bind', '127.0.0.1', '--protected-mode', 'no', '--dir', directory, '--save', '', '--appendonly', 'no'], masterPort));
    // Sentinel rewrites its configuration file, so it gets one of its own.
    const conf = join(directory, 'sentinel.conf');
    await writeFile(conf, [`port ${sentinelPort}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${directory}`, `sentinel monitor clipgate 127.0.0.1 ${masterPort} 1`, 'sentinel down-after-milliseconds clipgate 5000', ''].join('\n'));
    children.push(await launch('redis-server', [conf, '--sentinel'], sentinelPort));
    // Ready once the sentinel answers for its master.
    const probe = new Redis(sentinelPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await probe.connect();
      await until(async () => ((await probe.call('SENTINEL', 'get-master-addr-by-name', 'clipgate')) as string[] | null)?.[1] === String(masterPort), 'the sentinel does not know its master');
    } finally {
      probe.disconnect();
    }
    return { masterPort, sentinelPort, sentinels: `127.0.0.1:${sentinelPort}`, name: 'clipgate', stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function launch(command: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${command} did not start on ${port}: ${output}`)), START_TIMEOUT_MS);
      const settle = (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        // A sentinel says so with its own words.
        if (/Ready to accept connections|Sentinel ID is/.test(output)) settle();
      });
      child.once('error', (error) => settle(new Error(`cannot run ${command} (apt-get install redis-server): ${error.message}`)));
      child.once('exit', (code) => settle(new Error(`${command} exited with ${code}: ${output}`)));
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return child;
}

async function run(command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS * 2);
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}): ${output}`);
  } finally {
    clearTimeout(timer);
  }
}

async function waitForClusterOk(ports: readonly number[]): Promise<void> {
  const clients = ports.map((port) => new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 }));
  try {
    await until(async () => {
      const infos = await Promise.all(clients.map((client) => client.call('CLUSTER', 'INFO') as Promise<string>));
      return infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_slots_assigned:16384') && info.includes(`cluster_known_nodes:${ports.length}`));
    }, 'the cluster did not reach cluster_state:ok');
  } finally {
    for (const client of clients) client.disconnect();
  }
}

async function until(condition: () => Promise<boolean>, message: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS * 2;
  for (;;) {
    if (await condition().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopAll(children: readonly ChildProcess[], directory: string): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS))]);
    }),
  );
  await rm(directory, { recursive: true, force: true });
}
