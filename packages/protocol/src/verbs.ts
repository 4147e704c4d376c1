/** The systemctl verbs drover runs, spelled as systemctl spells them. */
export const VERBS = [
  'status',
  'start',
  'stop',
  'restart',
  'try-restart',
  'reload',
  'reload-or-restart',
  'enable',
  'disable',
  'mask',
  'unmask',
  'daemon-reload',
] as const;

export type Verb = (typeof VERBS)[number];

/** Verbs that act on the service manager itself, so a unit is optional. */
export const HOST_LEVEL_VERBS: readonly Verb[] = ['daemon-reload'];

/** Every verb that changes something on the host (only 'status' just reads). */
export const MUTATING_VERBS: readonly Verb[] = VERBS.filter((verb) => verb !== 'status');
