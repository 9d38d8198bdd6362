/**
 * Milliseconds on the host's monotonic clock, which every process reads
 * alike: a wall-clock timestamp (`performance.timeOrigin` is one, fixed
 * when a process starts) is off by any step the clock took between the
 * publisher's start and the subscriber's, which once made every latency of
 * a run read zero.
 */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6;
