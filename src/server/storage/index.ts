export * from './blob-store.js';
export * from './fs-blob-store.js';
export * from './metadata-store.js';
export * from './sqlite-metadata-store.js';
