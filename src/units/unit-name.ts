/**
 * systemd unit names (systemd.unit(5)): at most 255 characters of [A-Za-z0-9:_.\-] plus '@' for
 * templates and instances, and a known type suffix. Checked before any name reaches a host.
 */
export const UNIT_TYPES = [
  'service',
  'socket',
  'device',
  'mount',
  'automount',
  'swap',
  'target',
  'path',
  'timer',
  'slice',
  'scope',
] as const;

const UNIT_NAME = new RegExp(`^[A-Za-z0-9:_.\\\\-]+(@[A-Za-z0-9:_.\\\\-]*)?\\.(${UNIT_TYPES.join('|')})$`);

export function unitNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 255) return 'must be 1-255 characters';
  // A leading '-' would read as an option to systemctl, whatever quoting is used.
  if (name.startsWith('-')) return 'must not start with "-"';
  if (!UNIT_NAME.test(name)) {
    return `must be a systemd unit name such as nginx.service (characters A-Za-z0-9:_.-\\@, type one of ${UNIT_TYPES.join(', ')})`;
  }
  return null;
}
