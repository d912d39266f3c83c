// The simulated Apps and Books service lives in ./apps-and-books/; this path stays its public entry.
export * from './apps-and-books/index.js';
