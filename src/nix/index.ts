export * from './nix32.js';
export * from './hash.js';
export * from './store-path.js';
export * from './narinfo.js';
export * from './signing.js';
export * from './nar.js';
export * from './nar-hasher.js';
export * from './nar-structure.js';
