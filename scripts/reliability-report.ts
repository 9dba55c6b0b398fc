/**
 * `npm run reliability:report [-- long|short]`: the figures of the reliability suite's last run of a profile
 * (test/reliability/.results/{profile}/*.json) as the Markdown tables of docs/reliability.md.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const profile = process.argv[2] === 'short' ? 'short' : 'long';
const folder = fileURLToPath(new URL(`../test/reliability/.results/${profile}/`, import.meta.url));
type Figures = Record<string, unknown> & { case: string; at: string };
const results: Figures[] = readdirSync(folder)
  .filter((name) => name.endsWith('.json'))
  .map((name) => JSON.parse(readFileSync(`${folder}${name}`, 'utf8')) as Figures);
const byCase = new Map(results.map((result) => [result.case, result]));

const outcomes = (counts: unknown): string =>
  Object.entries((counts ?? {}) as Record<string, number>)
    .sort(([, a], [, b]) => b - a)
    .map(([key, count]) => `${count} × ${key}`)
    .join('; ');
const lines: string[] = [];
const last = results.map((result) => result.at).sort().at(-1) ?? '?';
lines.push(`Profile \`${profile}\`, last run ${last.slice(0, 16).replace('T', ' ')} UTC.`, '');

const schemathesis = byCase.get('schemathesis');
if (schemathesis) {
  lines.push('### Schemathesis', '', '| generated cases | tasks that reached a worker | exit code | seconds |', '|---|---|---|---|');
  lines.push(`| ${String(schemathesis['generated'])} | ${String(schemathesis['workerJobs'])} | ${String(schemathesis['exitCode'])} | ${String(schemathesis['seconds'])} |`, '');
}

const abuse = byCase.get('abuse');
if (abuse) {
  lines.push('### Abuse cases', '', `${String(abuse['cases'])} cases: ${outcomes(abuse['outcomes'])}.`, '');
}

const faults = results.filter((result) => result.case.startsWith('fault: ')).sort((a, b) => a.case.localeCompare(b.case));
if (faults.length > 0) {
  lines.push('### Fault matrix', '', '| case | requests | outcomes | notes |', '|---|---|---|---|');
  for (const fault of faults) {
    const name = fault.case.slice('fault: '.length);
    let described: string;
    let notes = '';
    if ('beside' in fault) {
      described = `beside a good worker: ${outcomes(fault['beside'])}; alone: ${outcomes(fault['alone'])}`;
      const jobs = fault['jobsSentToFaultyWorker'] as { beside: number; alone: number };
      notes = `jobs sent to the faulty worker: ${jobs.beside} beside, ${jobs.alone} alone`;
    } else {
      described = outcomes(fault['outcomes']);
      if ('afterRecovery' in fault) described += `; once back: ${outcomes(fault['afterRecovery'])}`;
      const rss = fault['rssMiB'] as { before: number; during: number } | undefined;
      if (rss) notes = `slowest cold task ${String(fault['slowestColdMs'])} ms; served again after ${String(fault['recoveredAfterMs'])} ms; RSS ${rss.before} → ${rss.during} MiB`;
    }
    lines.push(`| ${name} | ${String(fault['requests'])} | ${described} | ${notes} |`);
  }
  lines.push('');
}

const sigterm = byCase.get('replica SIGTERM under load');
if (sigterm) {
  lines.push(
    '### Replica SIGTERM under load',
    '',
    `${String(sigterm['tasks'])} tasks, ${String(sigterm['sent'])} requests: ${String(sigterm['answered'])} answered, ${String(sigterm['onDrainingReplica'])} of them by the draining replica; ` +
      `${String(sigterm['shuttingDown'])} \`shuttingDown\` and ${String(sigterm['refusedConnections'])} refused connections retried; ${String(sigterm['broken'])} reset; exit code ${String(sigterm['drainingReplicaExitCode'])}.`,
    '',
  );
}

const soak = byCase.get('soak');
if (soak) {
  const rss = soak['rssMiB'] as Record<string, number>;
  const fds = soak['fds'] as Record<string, number>;
  lines.push(
    '### Soak',
    '',
    `${String(soak['seconds'])} s, ${String(soak['requests'])} requests (${String(soak['sockets'])} WebSockets): ${outcomes(soak['outcomes'])}.`,
    '',
    '| | start | early peak | late peak | idle after | late / early |',
    '|---|---|---|---|---|---|',
    `| RSS (MiB) | ${rss['start']} | ${rss['earlyPeak']} | ${rss['latePeak']} | ${rss['idle']} | ${rss['lateOverEarly']} |`,
    `| descriptors | ${fds['start']} | ${fds['earlyPeak']} | ${fds['latePeak']} | ${fds['idle']} | ${Math.round(((fds['latePeak'] ?? 0) / (fds['earlyPeak'] ?? 1)) * 100) / 100} |`,
    '',
  );
}
console.log(lines.join('\n'));
