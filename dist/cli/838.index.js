export const id = 838;
export const ids = [838];
export const modules = {

/***/ 9457:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

__webpack_require__.r(__webpack_exports__);
/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   UNSIGNED_PAYLOAD: () => (/* binding */ UNSIGNED_PAYLOAD),
/* harmony export */   createS3Client: () => (/* binding */ createS3Client),
/* harmony export */   guarded: () => (/* binding */ guarded),
/* harmony export */   httpStatusOf: () => (/* binding */ httpStatusOf),
/* harmony export */   isNotFound: () => (/* binding */ isNotFound),
/* harmony export */   isPreconditionFailed: () => (/* binding */ isPreconditionFailed),
/* harmony export */   isS3Unavailable: () => (/* binding */ isS3Unavailable)
/* harmony export */ });
/* harmony import */ var _aws_sdk_client_s3__WEBPACK_IMPORTED_MODULE_3__ = __webpack_require__(6265);
/* harmony import */ var node_http__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(7067);
/* harmony import */ var node_http__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_http__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_https__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(4708);
/* harmony import */ var node_https__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_https__WEBPACK_IMPORTED_MODULE_1__);
/* harmony import */ var _unavailable_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(8402);
/**
 * The S3 client Sluice uses, and what its errors mean. Credentials come from the SDK's standard
 * chain (environment, profile, instance role), never from Sluice's config. Timeouts are short and
 * retries few, so a store that is down turns into a prompt 503 rather than a hung request.
 */




function createS3Client(location) {
    const agentOptions = { keepAlive: true, maxSockets: 128 };
    const client = new _aws_sdk_client_s3__WEBPACK_IMPORTED_MODULE_3__/* .S3Client */ .YxF({
        region: location.region,
        ...(location.endpoint ? { endpoint: location.endpoint } : {}),
        forcePathStyle: location.forcePathStyle,
        // Flexible checksums send streamed bodies as aws-chunked with trailers, which Ceph RGW and
        // other S3-compatible stores refuse; Sluice checks every byte itself anyway.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 2,
        requestHandler: {
            connectionTimeout: 2000,
            requestTimeout: 60_000,
            httpAgent: new node_http__WEBPACK_IMPORTED_MODULE_0__.Agent(agentOptions),
            httpsAgent: new node_https__WEBPACK_IMPORTED_MODULE_1__.Agent(agentOptions),
        },
    });
    signHeadersOnly(client);
    return client;
}
/** SigV4's name for a body left out of the signature. */
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/**
 * Byte bodies (parts, whole objects) are signed as UNSIGNED-PAYLOAD: SigV4 would otherwise hash
 * every byte with SHA-256 (7% of the server's CPU in a push) only to prove what Sluice already
 * verified; the part's CRC32 travels with it instead (docs/operations.md, "Integrity").
 */
function signHeadersOnly(client) {
    client.middlewareStack.add((next) => async (args) => {
        const request = args.request;
        if (request.body instanceof Uint8Array && request.headers)
            request.headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
        return next(args);
    }, { step: 'build', name: 'sluiceUnsignedPayload' });
}
function httpStatusOf(error) {
    return error?.$metadata?.httpStatusCode;
}
function isNotFound(error) {
    const name = error?.name;
    return httpStatusOf(error) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}
function isPreconditionFailed(error) {
    const status = httpStatusOf(error);
    // 409 ConditionalRequestConflict: AWS's answer when a concurrent conditional write raced this one.
    return status === 412 || status === 409 || error.name === 'PreconditionFailed';
}
/** The store could not be reached or said it is overloaded: worth a 503 and a retry later. */
function isS3Unavailable(error) {
    const status = httpStatusOf(error);
    if (status !== undefined)
        return status >= 500;
    // No HTTP answer at all: refused, reset, timed out, DNS. (Duck-typed: errors from Node's sockets
    // may come from another realm, where `instanceof Error` is false.)
    return (typeof error === 'object' && error !== null && error.name !== 'CredentialsProviderError');
}
/** Awaits an S3 call; an unreachable or failing store becomes a StorageUnavailableError (503). */
async function guarded(call) {
    try {
        return await call;
    }
    catch (error) {
        if (isS3Unavailable(error))
            throw new _unavailable_js__WEBPACK_IMPORTED_MODULE_2__/* .StorageUnavailableError */ .y7('the object store', error);
        throw error;
    }
}


/***/ })

};
