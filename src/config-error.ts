/** A configuration mistake a person can fix (a flag, an environment variable); its message is one line. */
export class ConfigError extends Error {}
