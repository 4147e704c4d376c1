import type { Schemas } from '../../src/client';

let sequence = 0;

/** A valid host for the inventory API; unique name and address per call unless overridden. */
export function buildHost(overrides: Partial<Schemas['CreateHost']> = {}): Schemas['CreateHost'] {
  sequence += 1;
  return {
    name: `host-${String(sequence).padStart(5, '0')}`,
    address: `10.99.${Math.floor(sequence / 250)}.${(sequence % 250) + 1}`,
    port: 22,
    transport: 'ssh',
    sshUser: 'root',
    hostKeyFingerprint: null,
    labels: { role: 'web' },
    ...overrides,
  };
}

export function buildHosts(count: number, overrides: (index: number) => Partial<Schemas['CreateHost']> = () => ({})) {
  return Array.from({ length: count }, (_unused, index) => buildHost(overrides(index)));
}
