import type { NewOperation } from '../../src/operations/operations.repository';

/** An operation as OperationsRepository.create takes it: a restart of nginx, requested by `requestedBy`. */
export function buildOperation(requestedBy: string, overrides: Partial<NewOperation> = {}): NewOperation {
  return {
    verb: 'restart',
    unit: 'nginx.service',
    selector: null,
    concurrency: 1,
    onConflict: 'wait',
    daemonReload: 'auto',
    commandTimeoutMs: 60_000,
    trustOnFirstUse: false,
    requestedByTokenId: null,
    requestedBy,
    requestId: null,
    ...overrides,
  };
}
