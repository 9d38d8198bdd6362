import { pino, type Logger as PinoLogger } from 'pino';
import { ConfigError } from './config-error.js';

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * A pino logger (JSON lines on stdout) at the level LOG_LEVEL names, `info`
 * by default; `debug` adds a line per subscription opened, resumed,
 * detached, expired or left. Pass it as `logger` to `ServerEvents`.
 */
export function createLogger(env: NodeJS.ProcessEnv = process.env): PinoLogger {
  const level = (env.LOG_LEVEL ?? 'info').toLowerCase();
  if (!levels.includes(level)) throw new ConfigError(`unknown LOG_LEVEL '${env.LOG_LEVEL}': use one of ${levels.join(', ')}`);
  return pino({ level, base: { pid: process.pid } });
}
