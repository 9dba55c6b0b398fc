import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * package.json's start command split into words (`node <flags> dist/server.js`): how operators run the
 * gateway. The image's CMD must equal it, benchmarks run it, and test gateways take its node flags.
 */
export function startCommand(): string[] {
  const manifest = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { scripts: { start: string } };
  const words = manifest.scripts.start.split(/\s+/);
  if (words[0] !== 'node') throw new Error(`package.json's start script must run node directly; it runs: ${manifest.scripts.start}`);
  return words;
}

/** The start command's node flags alone, for a gateway started from src/ through tsx. */
export function startNodeFlags(): string[] {
  return startCommand().filter((word) => word.startsWith('--'));
}
