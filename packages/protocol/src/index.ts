export * from './unit-snapshot';
export * from './verbs';
export * from './unit-action';
