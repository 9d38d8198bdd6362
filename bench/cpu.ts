/**
 * CPU time, so that a reader can see who was busy: the servers, the broker,
 * or the load generator itself. Linux only (/proc); elsewhere other
 * processes read as zero and the table says so with a dash.
 */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** User plus system CPU seconds of another process, or undefined where /proc cannot tell. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** This process's CPU seconds, all threads included. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** CPU seconds of several processes together (undefined if none could be read). */
export function totalCpuSeconds(pids: Array<number | undefined>): number | undefined {
  const each = pids.map(processCpuSeconds).filter((value): value is number => value !== undefined);
  return each.length ? each.reduce((a, b) => a + b, 0) : undefined;
}

/** Cores busy on average between two readings `seconds` apart (undefined if either could not be read). */
export function coresUsed(before: number | undefined, after: number | undefined, seconds: number): number | undefined {
  return before === undefined || after === undefined ? undefined : (after - before) / seconds;
}
