import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { percentile } from './load.js';

/**
 * What a benchmark shows people besides its table: a progress bar while it runs (on a terminal; a line per
 * quarter elsewhere, so CI logs stay short) and an SVG chart of its latencies, written beside the results and
 * embedded in docs/benchmarks.md.
 */

export interface Progress {
  advance(done: number): void;
  finish(): void;
}

export function progressBar(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  let lastQuarter = -1;
  const width = 30;
  return {
    advance(done) {
      const share = Math.min(1, done / total);
      if (stream.isTTY) {
        const filled = Math.round(share * width);
        stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}%`);
      } else if (Math.floor(share * 4) > lastQuarter) {
        lastQuarter = Math.floor(share * 4);
        stream.write(`${label}: ${lastQuarter * 25}%\n`);
      }
    },
    finish() {
      if (stream.isTTY) stream.write('\n');
    },
  };
}

export interface LatencySeries {
  readonly label: string;
  readonly latenciesMs: readonly number[];
}

const PERCENTILES = [0, 10, 25, 50, 75, 90, 95, 99, 99.9];
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

/** Latency by percentile, one line per series (x: the percentiles above, evenly spaced; y: milliseconds). */
export function latencyChartSvg(title: string, series: readonly LatencySeries[]): string {
  const [width, height, left, right, top, bottom] = [640, 360, 56, 16, 36, 48];
  const curves = series.map((one) => {
    const sorted = [...one.latenciesMs].sort((a, b) => a - b);
    return { label: one.label, points: PERCENTILES.map((p) => percentile(sorted, p)) };
  });
  const maxMs = Math.max(1, ...curves.flatMap((curve) => curve.points)) * 1.05;
  const x = (index: number) => left + (index * (width - left - right)) / (PERCENTILES.length - 1);
  const y = (ms: number) => top + (height - top - bottom) * (1 - ms / maxMs);
  const ticks = Array.from({ length: 5 }, (_, index) => (maxMs * index) / 4);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    ...ticks.map((ms) => `<line x1="${left}" x2="${width - right}" y1="${y(ms).toFixed(1)}" y2="${y(ms).toFixed(1)}" stroke="#ddd"/><text x="${left - 6}" y="${(y(ms) + 4).toFixed(1)}" text-anchor="end">${ms.toFixed(1)}</text>`),
    ...PERCENTILES.map((p, index) => `<text x="${x(index).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">p${p}</text>`),
    `<text x="14" y="${top + (height - top - bottom) / 2}" transform="rotate(-90 14 ${top + (height - top - bottom) / 2})" text-anchor="middle">latency, ms</text>`,
    ...curves.map((curve, index) => {
      const colour = COLOURS[index % COLOURS.length]!;
      const path = curve.points.map((ms, point) => `${x(point).toFixed(1)},${y(ms).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${path}"/><rect x="${left + 8 + index * 200}" y="${height - 18}" width="12" height="4" fill="${colour}"/><text x="${left + 24 + index * 200}" y="${height - 12}">${escapeXml(curve.label)}</text>`;
    }),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

/** Writes bench/results/NAME.svg, the chart docs/benchmarks.md embeds, and returns its path. */
export function writeLatencyChart(name: string, title: string, series: readonly LatencySeries[]): string {
  const path = new URL(`./results/${name}.svg`, import.meta.url).pathname;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, latencyChartSvg(title, series));
  return path;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
