export * from './unit-snapshot';
export * from './verbs';
