/**
 * `npm run bench:soak [-- --seconds 180 --concurrency 16]`: a real gateway process under a steady mixed load
 * on loopback (REST and WebSocket, warm and cold embeddings, batches, invalid tasks), bounded in time, its
 * resident memory and open descriptors sampled every 5 s. Printed side by side with the first settled sample
 * as the baseline: a late/early ratio near 1.00 is memory that levels off.
 */
import { parseArgs } from 'node:util';
import { runSoak, trendOf } from '../test/reliability/soak-load.js';
import { superviseChildren } from './load.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '180' }, concurrency: { type: 'string', default: '16' } } });
const seconds = Math.min(3600, Math.max(10, Number(values.seconds)));
const concurrency = Math.min(256, Math.max(1, Number(values.concurrency)));
superviseChildren('soak', (seconds + 120) * 1000);

console.log(`soak: ${seconds} s, ${concurrency} clients, loopback only`);
const report = await runSoak({ durationMs: seconds * 1000, concurrency, sampleEveryMs: 5000 });
console.log('\n  seconds  requests   RSS MiB   fds');
for (const sample of [...report.samples, report.idle]) {
  console.log(`  ${sample.seconds.toFixed(1).padStart(7)}  ${String(sample.requests).padStart(8)}  ${sample.rssMiB.toFixed(1).padStart(8)}  ${String(sample.fds).padStart(4)}`);
}
const memory = trendOf(report.samples, 'rssMiB');
const descriptors = trendOf(report.samples, 'fds');
const first = report.samples[0]!;
console.log(`\nrequests ${report.requests} (${report.sockets} WebSockets); outcomes ${JSON.stringify(report.outcomes)}`);
console.log(`RSS: start ${first.rssMiB} MiB, early peak ${memory.early} MiB, late peak ${memory.late} MiB — late/early ${memory.ratio.toFixed(2)}×; idle ${report.idle.rssMiB} MiB`);
console.log(`descriptors: start ${first.fds}, early peak ${descriptors.early}, late peak ${descriptors.late} — late/early ${descriptors.ratio.toFixed(2)}×; idle ${report.idle.fds}`);
if (report.breaches.length > 0 || report.socketFailures.length > 0) {
  console.log(`FAILURES:\n  ${[...report.breaches, ...report.socketFailures].slice(0, 20).join('\n  ')}`);
  process.exitCode = 1;
}
process.exit();
