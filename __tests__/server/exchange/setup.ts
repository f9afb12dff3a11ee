/** Shared set-up for the exchange tests: a config trusting the local issuer, and a fresh token key. */
import { generateKeyPairSync } from 'node:crypto';
import { expect } from '@jest/globals';
import { parseConfig } from '../../../src/server/config/server-config.js';
import { createExchange, type Exchange, type ExchangeOptions } from '../../../src/server/exchange/index.js';
import { HttpError } from '../../../src/contracts/http-error.js';
import { exchangeErrorToHttp } from '../../../src/server/http/exchange-status.js';
import type { OidcIssuer } from '../../support/oidc-issuer.js';

/** YAML trusting `issuer` as `github`, followed by `rest` (e.g. a `slices:` block). */
export function configYaml(issuer: OidcIssuer, rest = ''): string {
  return `issuers:\n  - name: github\n    issuer: ${issuer.url}\n    allow_insecure_http: true\n${rest}`;
}

export function exchangeFor(issuer: OidcIssuer, rest = '', options: ExchangeOptions = {}): Exchange {
  return createExchange(parseConfig(configYaml(issuer, rest), 'test.yml'), newTokenKey(), options);
}

export function newTokenKey() {
  return generateKeyPairSync('ed25519').privateKey;
}

/** Awaits a rejection and checks it answers as an HttpError with `status` and a message matching `message`. */
export async function expectHttpError(
  promise: Promise<unknown>,
  status: number,
  message: RegExp,
): Promise<HttpError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => exchangeErrorToHttp(caught),
  );
  expect(error).toBeInstanceOf(HttpError);
  const httpError = error as HttpError;
  expect({ status: httpError.status, message: httpError.message }).toEqual({
    status,
    message: expect.stringMatching(message),
  });
  return httpError;
}
