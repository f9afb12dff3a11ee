// Lets a plain `node` child process run our TypeScript sources: `./x.js` imports resolve to `./x.ts`
// (with --experimental-transform-types doing the rest), as ts-jest does for the tests themselves.
import { registerHooks } from 'node:module';

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (specifier.startsWith('.') && specifier.endsWith('.js')) {
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      }
      throw error;
    }
  },
});
