import { AppConfig, ConfigError, parseConfig } from './config.schema';

/** For entrypoints only: parse the environment or stop the process with one clear line. */
export function loadConfigOrExit(): AppConfig {
  try {
    return parseConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`drover: ${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
}
