/**
 * Saturation: on connections already warm, the rate rises step by step until
 * p99 passes the limit or anything is lost. A step that only missed the p99
 * limit runs once more before it counts, because on a small machine one
 * collection pause can spoil a short step; a loss counts at once.
 */
import { faultsOf, type WindowResult } from './window.js';

export interface SaturationSettings {
  /** The first step's rate. */
  rate: number;
  stepS: number;
  factor: number;
  maxSteps: number;
  p99LimitMs: number;
}

/** Every attempt, in order; the last one failed unless the steps ran out first. */
export async function saturate(
  settings: SaturationSettings,
  measure: (rate: number, seconds: number, label: string) => Promise<WindowResult>,
): Promise<WindowResult[]> {
  const attempts: WindowResult[] = [];
  let rate = settings.rate;
  for (let i = 0; i < settings.maxSteps; i++) {
    let step = await measure(rate, settings.stepS, `saturation ${rate}/s`);
    attempts.push(step);
    if (faultsOf(step).length === 0 && step.latency.p99 > settings.p99LimitMs) {
      step = await measure(rate, settings.stepS, `saturation ${rate}/s, again`);
      attempts.push(step);
    }
    if (!holds(step, settings.p99LimitMs)) break;
    rate = Math.ceil(rate * settings.factor);
  }
  return attempts;
}

export function holds(step: WindowResult, p99LimitMs: number): boolean {
  return faultsOf(step).length === 0 && step.latency.p99 <= p99LimitMs;
}

/** The highest rate that held, and the attempt where the system gave out (if it did). */
export function saturationSummary(attempts: WindowResult[], p99LimitMs: number): { best?: WindowResult; breaking?: WindowResult } {
  const last = attempts.at(-1);
  const breaking = last && !holds(last, p99LimitMs) ? last : undefined;
  const best = attempts.filter((step) => holds(step, p99LimitMs)).sort((a, b) => b.rate - a.rate)[0];
  return { best, breaking };
}
