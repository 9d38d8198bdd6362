/**
 * The progress line: rewritten in place on a terminal; elsewhere (CI, a
 * pipe) one line per phase, so that logs stay readable.
 */
let lastPhase = '';

export function progress(phase: string, detail = ''): void {
  if (process.stderr.isTTY) {
    process.stderr.write(`\r\x1b[K${phase}${detail ? `: ${detail}` : ''}`);
  } else if (phase !== lastPhase) {
    process.stderr.write(`${phase}\n`);
  }
  lastPhase = phase;
}

/** Ends the progress line before other output. */
export function progressDone(): void {
  if (process.stderr.isTTY && lastPhase) process.stderr.write('\r\x1b[K');
  lastPhase = '';
}
