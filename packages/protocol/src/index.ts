export * from './unit-snapshot';
export * from './verbs';
export * from './label-syntax';
export * from './selector';
export * from './unit-glob';
export * from './states';
export * from './jobs';
export * from './audit-actions';
