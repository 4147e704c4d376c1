/**
 * What the test runner (scripts/test.sh) hands the integration tests. Tests read their settings
 * here only; a missing variable fails loudly instead of silently testing less.
 */
function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite through scripts/test.sh (npm test)`);
  return value;
}

export const testEnv = {
  /** Server URL without a database name; each test file gets its own database from the template. */
  get postgresServerUrl(): string {
    return required('TEST_POSTGRES_URL');
  },
  /** A migrated database that CREATE DATABASE ... TEMPLATE copies for each test file. */
  get templateDatabase(): string {
    return required('TEST_TEMPLATE_DATABASE');
  },
  /**
   * Start of the name of every database this run creates (drover_run_<run id>_): runs side by side
   * on one server each drop only their own, and the runner drops those of runs that are gone.
   */
  get databasePrefix(): string {
    const prefix = required('TEST_DATABASE_PREFIX');
    if (!/^[a-z0-9_]{1,40}$/.test(prefix)) throw new Error(`TEST_DATABASE_PREFIX '${prefix}' must be [a-z0-9_]{1,40}`);
    return prefix;
  },
  get redisUrl(): string {
    return required('REDIS_URL');
  },
  /** State directory of the booted nspawn fleet (inventory.json, ssh/id_ed25519). */
  get fleetState(): string {
    return required('DROVER_FLEET_STATE');
  },
};
