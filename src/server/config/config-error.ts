/** A bad config file or flag: the message says where (`file:line: key.path: problem`). */
export class ConfigError extends Error {}
