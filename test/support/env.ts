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
  get redisUrl(): string {
    return required('REDIS_URL');
  },
  /** State directory of the booted nspawn fleet (inventory.json, ssh/id_ed25519). */
  get fleetState(): string {
    return required('DROVER_FLEET_STATE');
  },
};
