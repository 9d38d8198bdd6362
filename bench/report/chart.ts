/**
 * The latency chart the README embeds: one group of bars per system and
 * scenario (p50, p90, p99, p99.9) on a linear axis from zero, so that bar
 * lengths compare as the numbers do. Plain SVG text, so that it diffs and
 * renders on GitHub without a plotting dependency.
 */
import { systems, type SystemId } from '../systems.js';
import type { BenchResults } from './table.js';

interface Group {
  label: string;
  values: number[];
}

const SERIES = [
  { name: 'p50', color: '#4c78a8' },
  { name: 'p90', color: '#72b7b2' },
  { name: 'p99', color: '#f58518' },
  { name: 'p99.9', color: '#e45756' },
];
const WIDTH = 920;
const LEFT = 300;
const RIGHT = 30;
const TOP = 70;
const BAR = 9;
const GROUP_GAP = 16;

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function groups(results: BenchResults): Group[] {
  const out: Group[] = [];
  const add = (runs: BenchResults['fanout'], suffix: string) => {
    for (const [id, outcome] of Object.entries(runs)) {
      if (!outcome.ok) continue;
      const { p50, p90, p99, p999 } = outcome.value.window.latency;
      out.push({ label: `${systems[id as SystemId].label}, ${suffix}`, values: [p50, p90, p99, p999] });
    }
  };
  add(results.fanout, `${results.options.servers} servers`);
  add(results.hop, '1 server');
  return out;
}

/** A round axis end and tick step (1, 2 or 5 times a power of ten) for values up to `max`. */
function axis(max: number): { end: number; step: number } {
  const rough = max / 6;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough)!;
  return { end: Math.ceil(max / step) * step, step };
}

export function latencyChart(results: BenchResults): string {
  const data = groups(results);
  const all = data.flatMap((group) => group.values).filter((value) => Number.isFinite(value));
  const { end, step } = axis(Math.max(...all, 1));
  const plotWidth = WIDTH - LEFT - RIGHT - 30;
  const x = (value: number) => LEFT + (value / end) * plotWidth;
  const groupHeight = SERIES.length * BAR + GROUP_GAP;
  const plotHeight = data.length * groupHeight;
  const height = TOP + plotHeight + 50;
  const m = results.machine;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold">Publish-to-subscriber latency in ms (shorter is better)</text>`,
    `<text x="${LEFT}" y="40" fill="#555">${escape(`${results.options.subscribers} subscribers, ${results.options.rate} msg/s; ${m.cores} cores, Node ${m.node}; ${results.startedAt.slice(0, 10)}`)}</text>`,
  ];
  SERIES.forEach((series, i) => {
    const lx = LEFT + i * 80;
    parts.push(`<rect x="${lx}" y="50" width="12" height="10" fill="${series.color}"/><text x="${lx + 16}" y="59">${series.name}</text>`);
  });
  for (let tick = 0; tick <= end + step / 2; tick += step) {
    const tx = x(tick).toFixed(1);
    parts.push(
      `<line x1="${tx}" y1="${TOP - 4}" x2="${tx}" y2="${TOP + plotHeight}" stroke="#ddd"/>`,
      `<text x="${tx}" y="${TOP + plotHeight + 16}" text-anchor="middle" fill="#333">${Number(tick.toPrecision(6))}</text>`,
    );
  }
  data.forEach((group, g) => {
    const gy = TOP + g * groupHeight;
    parts.push(`<text x="${LEFT - 8}" y="${gy + (SERIES.length * BAR) / 2 + 4}" text-anchor="end">${escape(group.label)}</text>`);
    group.values.forEach((value, i) => {
      if (!Number.isFinite(value)) return;
      const y = gy + i * BAR;
      const end = x(value);
      parts.push(
        `<rect x="${LEFT}" y="${y}" width="${Math.max(1, end - LEFT).toFixed(1)}" height="${BAR - 1}" fill="${SERIES[i]!.color}"><title>${SERIES[i]!.name} ${value} ms</title></rect>`,
        `<text x="${(end + 4).toFixed(1)}" y="${y + BAR - 1}" font-size="9" fill="#333">${value.toFixed(1)}</text>`,
      );
    });
  });
  parts.push(`<text x="${LEFT + plotWidth / 2}" y="${TOP + plotHeight + 36}" text-anchor="middle" fill="#333">milliseconds</text>`, '</svg>');
  return `${parts.join('\n')}\n`;
}
