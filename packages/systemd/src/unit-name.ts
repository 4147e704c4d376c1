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

/** What systemd reads as a unit name as it is (unit_name_is_valid with UNIT_NAME_ANY, systemd 252). */
const SYSTEMD_UNIT_NAME = new RegExp(`^(?!@)[A-Za-z0-9:_.\\\\@-]+\\.(${UNIT_TYPES.join('|')})$`);

/**
 * The unit systemctl acts on for `name`: `systemctl restart nginx` restarts nginx.service, because
 * systemctl (unit_name_mangle) appends `.service` to any name systemd would not take as it is, even
 * one with another dot such as `a.b`. drover reads names the same way so that the name it checks
 * against a token's unit glob and records is the one systemd acts on. systemctl would also escape
 * characters a unit name cannot hold, and turn paths into .mount/.device names; drover rejects
 * those instead (see unitNameProblem).
 */
export function normaliseUnitName(name: string): string {
  if (name === '' || (name.length <= 255 && SYSTEMD_UNIT_NAME.test(name))) return name;
  return `${name}.service`;
}

export function unitNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 255) return 'must be 1-255 characters';
  // A leading '-' would read as an option to systemctl, whatever quoting is used.
  if (name.startsWith('-')) return 'must not start with "-"';
  if (!UNIT_NAME.test(name)) {
    return `must be a systemd unit name such as nginx.service (characters A-Za-z0-9:_.-\\@, type one of ${UNIT_TYPES.join(', ')})`;
  }
  return null;
}
