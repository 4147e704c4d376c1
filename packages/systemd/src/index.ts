export * from './commands';
export * from './daemon-reload-interlock';
export * from './discovery';
export * from './start-limit';
export * from './unit-name';
export * from './unit-names';
export * from './unit-snapshot';
export * from './verify';
