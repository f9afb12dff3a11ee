#!/usr/bin/env node
import { createRequire as __WEBPACK_EXTERNAL_createRequire } from "module";
/******/ var __webpack_modules__ = ({

/***/ 9750:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.ContextAPI = void 0;
const NoopContextManager_1 = __nccwpck_require__(9522);
const global_utils_1 = __nccwpck_require__(9923);
const diag_1 = __nccwpck_require__(1230);
const API_NAME = 'context';
const NOOP_CONTEXT_MANAGER = new NoopContextManager_1.NoopContextManager();
/**
 * Singleton object which represents the entry point to the OpenTelemetry Context API
 *
 * @since 1.0.0
 */
class ContextAPI {
    /** Empty private constructor prevents end users from constructing a new instance of the API */
    constructor() { }
    /** Get the singleton instance of the Context API */
    static getInstance() {
        if (!this._instance) {
            this._instance = new ContextAPI();
        }
        return this._instance;
    }
    /**
     * Set the current context manager.
     *
     * @returns true if the context manager was successfully registered, else false
     */
    setGlobalContextManager(contextManager) {
        return (0, global_utils_1.registerGlobal)(API_NAME, contextManager, diag_1.DiagAPI.instance());
    }
    /**
     * Get the currently active context
     */
    active() {
        return this._getContextManager().active();
    }
    /**
     * Execute a function with an active context
     *
     * @param context context to be active during function execution
     * @param fn function to execute in a context
     * @param thisArg optional receiver to be used for calling fn
     * @param args optional arguments forwarded to fn
     */
    with(context, fn, thisArg, ...args) {
        return this._getContextManager().with(context, fn, thisArg, ...args);
    }
    /**
     * Bind a context to a target function or event emitter
     *
     * @param context context to bind to the event emitter or function. Defaults to the currently active context
     * @param target function or event emitter to bind
     */
    bind(context, target) {
        return this._getContextManager().bind(context, target);
    }
    _getContextManager() {
        return (0, global_utils_1.getGlobal)(API_NAME) || NOOP_CONTEXT_MANAGER;
    }
    /** Disable and remove the global context manager */
    disable() {
        this._getContextManager().disable();
        (0, global_utils_1.unregisterGlobal)(API_NAME, diag_1.DiagAPI.instance());
    }
}
exports.ContextAPI = ContextAPI;
//# sourceMappingURL=context.js.map

/***/ }),

/***/ 1230:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.DiagAPI = void 0;
const ComponentLogger_1 = __nccwpck_require__(7723);
const logLevelLogger_1 = __nccwpck_require__(3514);
const types_1 = __nccwpck_require__(2573);
const global_utils_1 = __nccwpck_require__(9923);
const API_NAME = 'diag';
/**
 * Singleton object which represents the entry point to the OpenTelemetry internal
 * diagnostic API
 *
 * @since 1.0.0
 */
class DiagAPI {
    /** Get the singleton instance of the DiagAPI API */
    static instance() {
        if (!this._instance) {
            this._instance = new DiagAPI();
        }
        return this._instance;
    }
    /**
     * Private internal constructor
     * @private
     */
    constructor() {
        function _logProxy(funcName) {
            return function (...args) {
                const logger = (0, global_utils_1.getGlobal)('diag');
                // shortcut if logger not set
                if (!logger)
                    return;
                return logger[funcName](...args);
            };
        }
        // Using self local variable for minification purposes as 'this' cannot be minified
        const self = this;
        // DiagAPI specific functions
        const setLogger = (logger, optionsOrLogLevel = { logLevel: types_1.DiagLogLevel.INFO }) => {
            var _a, _b, _c;
            if (logger === self) {
                // There isn't much we can do here.
                // Logging to the console might break the user application.
                // Try to log to self. If a logger was previously registered it will receive the log.
                const err = new Error('Cannot use diag as the logger for itself. Please use a DiagLogger implementation like ConsoleDiagLogger or a custom implementation');
                self.error((_a = err.stack) !== null && _a !== void 0 ? _a : err.message);
                return false;
            }
            if (typeof optionsOrLogLevel === 'number') {
                optionsOrLogLevel = {
                    logLevel: optionsOrLogLevel,
                };
            }
            const oldLogger = (0, global_utils_1.getGlobal)('diag');
            const newLogger = (0, logLevelLogger_1.createLogLevelDiagLogger)((_b = optionsOrLogLevel.logLevel) !== null && _b !== void 0 ? _b : types_1.DiagLogLevel.INFO, logger);
            // There already is an logger registered. We'll let it know before overwriting it.
            if (oldLogger && !optionsOrLogLevel.suppressOverrideMessage) {
                const stack = (_c = new Error().stack) !== null && _c !== void 0 ? _c : '<failed to generate stacktrace>';
                oldLogger.warn(`Current logger will be overwritten from ${stack}`);
                newLogger.warn(`Current logger will overwrite one already registered from ${stack}`);
            }
            return (0, global_utils_1.registerGlobal)('diag', newLogger, self, true);
        };
        self.setLogger = setLogger;
        self.disable = () => {
            (0, global_utils_1.unregisterGlobal)(API_NAME, self);
        };
        self.createComponentLogger = (options) => {
            return new ComponentLogger_1.DiagComponentLogger(options);
        };
        self.verbose = _logProxy('verbose');
        self.debug = _logProxy('debug');
        self.info = _logProxy('info');
        self.warn = _logProxy('warn');
        self.error = _logProxy('error');
    }
}
exports.DiagAPI = DiagAPI;
//# sourceMappingURL=diag.js.map

/***/ }),

/***/ 8692:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.MetricsAPI = void 0;
const NoopMeterProvider_1 = __nccwpck_require__(2896);
const global_utils_1 = __nccwpck_require__(9923);
const diag_1 = __nccwpck_require__(1230);
const API_NAME = 'metrics';
/**
 * Singleton object which represents the entry point to the OpenTelemetry Metrics API
 */
class MetricsAPI {
    /** Empty private constructor prevents end users from constructing a new instance of the API */
    constructor() { }
    /** Get the singleton instance of the Metrics API */
    static getInstance() {
        if (!this._instance) {
            this._instance = new MetricsAPI();
        }
        return this._instance;
    }
    /**
     * Set the current global meter provider.
     * Returns true if the meter provider was successfully registered, else false.
     */
    setGlobalMeterProvider(provider) {
        return (0, global_utils_1.registerGlobal)(API_NAME, provider, diag_1.DiagAPI.instance());
    }
    /**
     * Returns the global meter provider.
     */
    getMeterProvider() {
        return (0, global_utils_1.getGlobal)(API_NAME) || NoopMeterProvider_1.NOOP_METER_PROVIDER;
    }
    /**
     * Returns a meter from the global meter provider.
     */
    getMeter(name, version, options) {
        return this.getMeterProvider().getMeter(name, version, options);
    }
    /** Remove the global meter provider */
    disable() {
        (0, global_utils_1.unregisterGlobal)(API_NAME, diag_1.DiagAPI.instance());
    }
}
exports.MetricsAPI = MetricsAPI;
//# sourceMappingURL=metrics.js.map

/***/ }),

/***/ 7:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.PropagationAPI = void 0;
const global_utils_1 = __nccwpck_require__(9923);
const NoopTextMapPropagator_1 = __nccwpck_require__(4353);
const TextMapPropagator_1 = __nccwpck_require__(7865);
const context_helpers_1 = __nccwpck_require__(52);
const utils_1 = __nccwpck_require__(8558);
const diag_1 = __nccwpck_require__(1230);
const API_NAME = 'propagation';
const NOOP_TEXT_MAP_PROPAGATOR = new NoopTextMapPropagator_1.NoopTextMapPropagator();
/**
 * Singleton object which represents the entry point to the OpenTelemetry Propagation API
 *
 * @since 1.0.0
 */
class PropagationAPI {
    /** Empty private constructor prevents end users from constructing a new instance of the API */
    constructor() {
        this.createBaggage = utils_1.createBaggage;
        this.getBaggage = context_helpers_1.getBaggage;
        this.getActiveBaggage = context_helpers_1.getActiveBaggage;
        this.setBaggage = context_helpers_1.setBaggage;
        this.deleteBaggage = context_helpers_1.deleteBaggage;
    }
    /** Get the singleton instance of the Propagator API */
    static getInstance() {
        if (!this._instance) {
            this._instance = new PropagationAPI();
        }
        return this._instance;
    }
    /**
     * Set the current propagator.
     *
     * @returns true if the propagator was successfully registered, else false
     */
    setGlobalPropagator(propagator) {
        return (0, global_utils_1.registerGlobal)(API_NAME, propagator, diag_1.DiagAPI.instance());
    }
    /**
     * Inject context into a carrier to be propagated inter-process
     *
     * @param context Context carrying tracing data to inject
     * @param carrier carrier to inject context into
     * @param setter Function used to set values on the carrier
     */
    inject(context, carrier, setter = TextMapPropagator_1.defaultTextMapSetter) {
        return this._getGlobalPropagator().inject(context, carrier, setter);
    }
    /**
     * Extract context from a carrier
     *
     * @param context Context which the newly created context will inherit from
     * @param carrier Carrier to extract context from
     * @param getter Function used to extract keys from a carrier
     */
    extract(context, carrier, getter = TextMapPropagator_1.defaultTextMapGetter) {
        return this._getGlobalPropagator().extract(context, carrier, getter);
    }
    /**
     * Return a list of all fields which may be used by the propagator.
     */
    fields() {
        return this._getGlobalPropagator().fields();
    }
    /** Remove the global propagator */
    disable() {
        (0, global_utils_1.unregisterGlobal)(API_NAME, diag_1.DiagAPI.instance());
    }
    _getGlobalPropagator() {
        return (0, global_utils_1.getGlobal)(API_NAME) || NOOP_TEXT_MAP_PROPAGATOR;
    }
}
exports.PropagationAPI = PropagationAPI;
//# sourceMappingURL=propagation.js.map

/***/ }),

/***/ 4508:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.TraceAPI = void 0;
const global_utils_1 = __nccwpck_require__(9923);
const ProxyTracerProvider_1 = __nccwpck_require__(312);
const spancontext_utils_1 = __nccwpck_require__(639);
const context_utils_1 = __nccwpck_require__(2771);
const diag_1 = __nccwpck_require__(1230);
const API_NAME = 'trace';
/**
 * Singleton object which represents the entry point to the OpenTelemetry Tracing API
 *
 * @since 1.0.0
 */
class TraceAPI {
    /** Empty private constructor prevents end users from constructing a new instance of the API */
    constructor() {
        this._proxyTracerProvider = new ProxyTracerProvider_1.ProxyTracerProvider();
        this.wrapSpanContext = spancontext_utils_1.wrapSpanContext;
        this.isSpanContextValid = spancontext_utils_1.isSpanContextValid;
        this.deleteSpan = context_utils_1.deleteSpan;
        this.getSpan = context_utils_1.getSpan;
        this.getActiveSpan = context_utils_1.getActiveSpan;
        this.getSpanContext = context_utils_1.getSpanContext;
        this.setSpan = context_utils_1.setSpan;
        this.setSpanContext = context_utils_1.setSpanContext;
    }
    /** Get the singleton instance of the Trace API */
    static getInstance() {
        if (!this._instance) {
            this._instance = new TraceAPI();
        }
        return this._instance;
    }
    /**
     * Set the current global tracer.
     *
     * @returns true if the tracer provider was successfully registered, else false
     */
    setGlobalTracerProvider(provider) {
        const success = (0, global_utils_1.registerGlobal)(API_NAME, this._proxyTracerProvider, diag_1.DiagAPI.instance());
        if (success) {
            this._proxyTracerProvider.setDelegate(provider);
        }
        return success;
    }
    /**
     * Returns the global tracer provider.
     */
    getTracerProvider() {
        return (0, global_utils_1.getGlobal)(API_NAME) || this._proxyTracerProvider;
    }
    /**
     * Returns a tracer from the global tracer provider.
     */
    getTracer(name, version) {
        return this.getTracerProvider().getTracer(name, version);
    }
    /** Remove the global tracer provider */
    disable() {
        (0, global_utils_1.unregisterGlobal)(API_NAME, diag_1.DiagAPI.instance());
        this._proxyTracerProvider = new ProxyTracerProvider_1.ProxyTracerProvider();
    }
}
exports.TraceAPI = TraceAPI;
//# sourceMappingURL=trace.js.map

/***/ }),

/***/ 52:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.deleteBaggage = exports.setBaggage = exports.getActiveBaggage = exports.getBaggage = void 0;
const context_1 = __nccwpck_require__(9750);
const context_2 = __nccwpck_require__(7977);
/**
 * Baggage key
 */
const BAGGAGE_KEY = (0, context_2.createContextKey)('OpenTelemetry Baggage Key');
/**
 * Retrieve the current baggage from the given context
 *
 * @param {Context} Context that manage all context values
 * @returns {Baggage} Extracted baggage from the context
 */
function getBaggage(context) {
    return context.getValue(BAGGAGE_KEY) || undefined;
}
exports.getBaggage = getBaggage;
/**
 * Retrieve the current baggage from the active/current context
 *
 * @returns {Baggage} Extracted baggage from the context
 */
function getActiveBaggage() {
    return getBaggage(context_1.ContextAPI.getInstance().active());
}
exports.getActiveBaggage = getActiveBaggage;
/**
 * Store a baggage in the given context
 *
 * @param {Context} Context that manage all context values
 * @param {Baggage} baggage that will be set in the actual context
 */
function setBaggage(context, baggage) {
    return context.setValue(BAGGAGE_KEY, baggage);
}
exports.setBaggage = setBaggage;
/**
 * Delete the baggage stored in the given context
 *
 * @param {Context} Context that manage all context values
 */
function deleteBaggage(context) {
    return context.deleteValue(BAGGAGE_KEY);
}
exports.deleteBaggage = deleteBaggage;
//# sourceMappingURL=context-helpers.js.map

/***/ }),

/***/ 3274:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.BaggageImpl = void 0;
class BaggageImpl {
    constructor(entries) {
        this._entries = entries ? new Map(entries) : new Map();
    }
    getEntry(key) {
        const entry = this._entries.get(key);
        if (!entry) {
            return undefined;
        }
        return Object.assign({}, entry);
    }
    getAllEntries() {
        return Array.from(this._entries.entries());
    }
    setEntry(key, entry) {
        const newBaggage = new BaggageImpl(this._entries);
        newBaggage._entries.set(key, entry);
        return newBaggage;
    }
    removeEntry(key) {
        const newBaggage = new BaggageImpl(this._entries);
        newBaggage._entries.delete(key);
        return newBaggage;
    }
    removeEntries(...keys) {
        const newBaggage = new BaggageImpl(this._entries);
        for (const key of keys) {
            newBaggage._entries.delete(key);
        }
        return newBaggage;
    }
    clear() {
        return new BaggageImpl();
    }
}
exports.BaggageImpl = BaggageImpl;
//# sourceMappingURL=baggage-impl.js.map

/***/ }),

/***/ 3997:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.baggageEntryMetadataSymbol = void 0;
/**
 * Symbol used to make BaggageEntryMetadata an opaque type
 */
exports.baggageEntryMetadataSymbol = Symbol('BaggageEntryMetadata');
//# sourceMappingURL=symbol.js.map

/***/ }),

/***/ 8558:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.baggageEntryMetadataFromString = exports.createBaggage = void 0;
const diag_1 = __nccwpck_require__(1230);
const baggage_impl_1 = __nccwpck_require__(3274);
const symbol_1 = __nccwpck_require__(3997);
const diag = diag_1.DiagAPI.instance();
/**
 * Create a new Baggage with optional entries
 *
 * @param entries An array of baggage entries the new baggage should contain
 */
function createBaggage(entries = {}) {
    return new baggage_impl_1.BaggageImpl(new Map(Object.entries(entries)));
}
exports.createBaggage = createBaggage;
/**
 * Create a serializable BaggageEntryMetadata object from a string.
 *
 * @param str string metadata. Format is currently not defined by the spec and has no special meaning.
 *
 * @since 1.0.0
 */
function baggageEntryMetadataFromString(str) {
    if (typeof str !== 'string') {
        diag.error(`Cannot create baggage metadata from unknown type: ${typeof str}`);
        str = '';
    }
    return {
        __TYPE__: symbol_1.baggageEntryMetadataSymbol,
        toString() {
            return str;
        },
    };
}
exports.baggageEntryMetadataFromString = baggageEntryMetadataFromString;
//# sourceMappingURL=utils.js.map

/***/ }),

/***/ 244:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.context = void 0;
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const context_1 = __nccwpck_require__(9750);
/**
 * Entrypoint for context API
 * @since 1.0.0
 */
exports.context = context_1.ContextAPI.getInstance();
//# sourceMappingURL=context-api.js.map

/***/ }),

/***/ 9522:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NoopContextManager = void 0;
const context_1 = __nccwpck_require__(7977);
class NoopContextManager {
    active() {
        return context_1.ROOT_CONTEXT;
    }
    with(_context, fn, thisArg, ...args) {
        return fn.call(thisArg, ...args);
    }
    bind(_context, target) {
        return target;
    }
    enable() {
        return this;
    }
    disable() {
        return this;
    }
}
exports.NoopContextManager = NoopContextManager;
//# sourceMappingURL=NoopContextManager.js.map

/***/ }),

/***/ 7977:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.ROOT_CONTEXT = exports.createContextKey = void 0;
/**
 * Get a key to uniquely identify a context value
 *
 * @since 1.0.0
 */
function createContextKey(description) {
    // The specification states that for the same input, multiple calls should
    // return different keys. Due to the nature of the JS dependency management
    // system, this creates problems where multiple versions of some package
    // could hold different keys for the same property.
    //
    // Therefore, we use Symbol.for which returns the same key for the same input.
    return Symbol.for(description);
}
exports.createContextKey = createContextKey;
class BaseContext {
    /**
     * Construct a new context which inherits values from an optional parent context.
     *
     * @param parentContext a context from which to inherit values
     */
    constructor(parentContext) {
        // for minification
        const self = this;
        self._currentContext = parentContext ? new Map(parentContext) : new Map();
        self.getValue = (key) => self._currentContext.get(key);
        self.setValue = (key, value) => {
            const context = new BaseContext(self._currentContext);
            context._currentContext.set(key, value);
            return context;
        };
        self.deleteValue = (key) => {
            const context = new BaseContext(self._currentContext);
            context._currentContext.delete(key);
            return context;
        };
    }
}
/**
 * The root context is used as the default parent context when there is no active context
 *
 * @since 1.0.0
 */
exports.ROOT_CONTEXT = new BaseContext();
//# sourceMappingURL=context.js.map

/***/ }),

/***/ 1414:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.diag = void 0;
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const diag_1 = __nccwpck_require__(1230);
/**
 * Entrypoint for Diag API.
 * Defines Diagnostic handler used for internal diagnostic logging operations.
 * The default provides a Noop DiagLogger implementation which may be changed via the
 * diag.setLogger(logger: DiagLogger) function.
 *
 * @since 1.0.0
 */
exports.diag = diag_1.DiagAPI.instance();
//# sourceMappingURL=diag-api.js.map

/***/ }),

/***/ 7723:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.DiagComponentLogger = void 0;
const global_utils_1 = __nccwpck_require__(9923);
/**
 * Component Logger which is meant to be used as part of any component which
 * will add automatically additional namespace in front of the log message.
 * It will then forward all message to global diag logger
 * @example
 * const cLogger = diag.createComponentLogger({ namespace: '@opentelemetry/instrumentation-http' });
 * cLogger.debug('test');
 * // @opentelemetry/instrumentation-http test
 */
class DiagComponentLogger {
    constructor(props) {
        this._namespace = props.namespace || 'DiagComponentLogger';
    }
    debug(...args) {
        return logProxy('debug', this._namespace, args);
    }
    error(...args) {
        return logProxy('error', this._namespace, args);
    }
    info(...args) {
        return logProxy('info', this._namespace, args);
    }
    warn(...args) {
        return logProxy('warn', this._namespace, args);
    }
    verbose(...args) {
        return logProxy('verbose', this._namespace, args);
    }
}
exports.DiagComponentLogger = DiagComponentLogger;
function logProxy(funcName, namespace, args) {
    const logger = (0, global_utils_1.getGlobal)('diag');
    // shortcut if logger not set
    if (!logger) {
        return;
    }
    return logger[funcName](namespace, ...args);
}
//# sourceMappingURL=ComponentLogger.js.map

/***/ }),

/***/ 6769:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.DiagConsoleLogger = exports._originalConsoleMethods = void 0;
const consoleMap = [
    { n: 'error', c: 'error' },
    { n: 'warn', c: 'warn' },
    { n: 'info', c: 'info' },
    { n: 'debug', c: 'debug' },
    { n: 'verbose', c: 'trace' },
];
// Save original console methods at module load time, before any instrumentation
// can wrap them. This ensures DiagConsoleLogger calls the unwrapped originals.
// Exported for testing only \u2014 not part of the public API.
exports._originalConsoleMethods = {};
if (typeof console !== 'undefined') {
    const keys = [
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'log',
    ];
    for (const key of keys) {
        // eslint-disable-next-line no-console
        if (typeof console[key] === 'function') {
            // eslint-disable-next-line no-console
            exports._originalConsoleMethods[key] = console[key];
        }
    }
}
/**
 * A simple Immutable Console based diagnostic logger which will output any messages to the Console.
 * If you want to limit the amount of logging to a specific level or lower use the
 * {@link createLogLevelDiagLogger}
 *
 * @since 1.0.0
 */
class DiagConsoleLogger {
    constructor() {
        function _consoleFunc(funcName) {
            return function (...args) {
                // Prefer original (pre-instrumentation) methods saved at module load time.
                let theFunc = exports._originalConsoleMethods[funcName];
                // Some environments only expose the console when the F12 developer console is open
                if (typeof theFunc !== 'function') {
                    theFunc = exports._originalConsoleMethods['log'];
                }
                // Fall back in case console was not available at module load time but became available later.
                if (typeof theFunc !== 'function' && console) {
                    // eslint-disable-next-line no-console
                    theFunc = console[funcName];
                    if (typeof theFunc !== 'function') {
                        // eslint-disable-next-line no-console
                        theFunc = console.log;
                    }
                }
                if (typeof theFunc === 'function') {
                    return theFunc.apply(console, args);
                }
            };
        }
        for (let i = 0; i < consoleMap.length; i++) {
            this[consoleMap[i].n] = _consoleFunc(consoleMap[i].c);
        }
    }
}
exports.DiagConsoleLogger = DiagConsoleLogger;
//# sourceMappingURL=consoleLogger.js.map

/***/ }),

/***/ 3514:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.createLogLevelDiagLogger = void 0;
const types_1 = __nccwpck_require__(2573);
function createLogLevelDiagLogger(maxLevel, logger) {
    if (maxLevel < types_1.DiagLogLevel.NONE) {
        maxLevel = types_1.DiagLogLevel.NONE;
    }
    else if (maxLevel > types_1.DiagLogLevel.ALL) {
        maxLevel = types_1.DiagLogLevel.ALL;
    }
    // In case the logger is null or undefined
    logger = logger || {};
    function _filterFunc(funcName, theLevel) {
        const theFunc = logger[funcName];
        if (typeof theFunc === 'function' && maxLevel >= theLevel) {
            return theFunc.bind(logger);
        }
        return function () { };
    }
    return {
        error: _filterFunc('error', types_1.DiagLogLevel.ERROR),
        warn: _filterFunc('warn', types_1.DiagLogLevel.WARN),
        info: _filterFunc('info', types_1.DiagLogLevel.INFO),
        debug: _filterFunc('debug', types_1.DiagLogLevel.DEBUG),
        verbose: _filterFunc('verbose', types_1.DiagLogLevel.VERBOSE),
    };
}
exports.createLogLevelDiagLogger = createLogLevelDiagLogger;
//# sourceMappingURL=logLevelLogger.js.map

/***/ }),

/***/ 2573:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.DiagLogLevel = void 0;
/**
 * Defines the available internal logging levels for the diagnostic logger, the numeric values
 * of the levels are defined to match the original values from the initial LogLevel to avoid
 * compatibility/migration issues for any implementation that assume the numeric ordering.
 */
var DiagLogLevel;
(function (DiagLogLevel) {
    /** Diagnostic Logging level setting to disable all logging (except and forced logs) */
    DiagLogLevel[DiagLogLevel["NONE"] = 0] = "NONE";
    /** Identifies an error scenario */
    DiagLogLevel[DiagLogLevel["ERROR"] = 30] = "ERROR";
    /** Identifies a warning scenario */
    DiagLogLevel[DiagLogLevel["WARN"] = 50] = "WARN";
    /** General informational log message */
    DiagLogLevel[DiagLogLevel["INFO"] = 60] = "INFO";
    /** General debug log message */
    DiagLogLevel[DiagLogLevel["DEBUG"] = 70] = "DEBUG";
    /**
     * Detailed trace level logging should only be used for development, should only be set
     * in a development environment.
     */
    DiagLogLevel[DiagLogLevel["VERBOSE"] = 80] = "VERBOSE";
    /** Used to set the logging level to include all logging */
    DiagLogLevel[DiagLogLevel["ALL"] = 9999] = "ALL";
})(DiagLogLevel = exports.DiagLogLevel || (exports.DiagLogLevel = {}));
//# sourceMappingURL=types.js.map

/***/ }),

/***/ 3914:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.trace = exports.propagation = exports.metrics = exports.diag = exports.context = exports.INVALID_SPAN_CONTEXT = exports.INVALID_TRACEID = exports.INVALID_SPANID = exports.isValidSpanId = exports.isValidTraceId = exports.isSpanContextValid = exports.createTraceState = exports.TraceFlags = exports.SpanStatusCode = exports.SpanKind = exports.SamplingDecision = exports.ProxyTracerProvider = exports.ProxyTracer = exports.defaultTextMapSetter = exports.defaultTextMapGetter = exports.ValueType = exports.createNoopMeter = exports.DiagLogLevel = exports.DiagConsoleLogger = exports.ROOT_CONTEXT = exports.createContextKey = exports.baggageEntryMetadataFromString = void 0;
var utils_1 = __nccwpck_require__(8558);
Object.defineProperty(exports, "baggageEntryMetadataFromString", ({ enumerable: true, get: function () { return utils_1.baggageEntryMetadataFromString; } }));
// Context APIs
var context_1 = __nccwpck_require__(7977);
Object.defineProperty(exports, "createContextKey", ({ enumerable: true, get: function () { return context_1.createContextKey; } }));
Object.defineProperty(exports, "ROOT_CONTEXT", ({ enumerable: true, get: function () { return context_1.ROOT_CONTEXT; } }));
// Diag APIs
var consoleLogger_1 = __nccwpck_require__(6769);
Object.defineProperty(exports, "DiagConsoleLogger", ({ enumerable: true, get: function () { return consoleLogger_1.DiagConsoleLogger; } }));
var types_1 = __nccwpck_require__(2573);
Object.defineProperty(exports, "DiagLogLevel", ({ enumerable: true, get: function () { return types_1.DiagLogLevel; } }));
// Metrics APIs
var NoopMeter_1 = __nccwpck_require__(7017);
Object.defineProperty(exports, "createNoopMeter", ({ enumerable: true, get: function () { return NoopMeter_1.createNoopMeter; } }));
var Metric_1 = __nccwpck_require__(3814);
Object.defineProperty(exports, "ValueType", ({ enumerable: true, get: function () { return Metric_1.ValueType; } }));
// Propagation APIs
var TextMapPropagator_1 = __nccwpck_require__(7865);
Object.defineProperty(exports, "defaultTextMapGetter", ({ enumerable: true, get: function () { return TextMapPropagator_1.defaultTextMapGetter; } }));
Object.defineProperty(exports, "defaultTextMapSetter", ({ enumerable: true, get: function () { return TextMapPropagator_1.defaultTextMapSetter; } }));
var ProxyTracer_1 = __nccwpck_require__(4833);
Object.defineProperty(exports, "ProxyTracer", ({ enumerable: true, get: function () { return ProxyTracer_1.ProxyTracer; } }));
// TODO: Remove ProxyTracerProvider export in the next major version.
var ProxyTracerProvider_1 = __nccwpck_require__(312);
Object.defineProperty(exports, "ProxyTracerProvider", ({ enumerable: true, get: function () { return ProxyTracerProvider_1.ProxyTracerProvider; } }));
var SamplingResult_1 = __nccwpck_require__(434);
Object.defineProperty(exports, "SamplingDecision", ({ enumerable: true, get: function () { return SamplingResult_1.SamplingDecision; } }));
var span_kind_1 = __nccwpck_require__(2347);
Object.defineProperty(exports, "SpanKind", ({ enumerable: true, get: function () { return span_kind_1.SpanKind; } }));
var status_1 = __nccwpck_require__(1524);
Object.defineProperty(exports, "SpanStatusCode", ({ enumerable: true, get: function () { return status_1.SpanStatusCode; } }));
var trace_flags_1 = __nccwpck_require__(7221);
Object.defineProperty(exports, "TraceFlags", ({ enumerable: true, get: function () { return trace_flags_1.TraceFlags; } }));
var utils_2 = __nccwpck_require__(969);
Object.defineProperty(exports, "createTraceState", ({ enumerable: true, get: function () { return utils_2.createTraceState; } }));
var spancontext_utils_1 = __nccwpck_require__(639);
Object.defineProperty(exports, "isSpanContextValid", ({ enumerable: true, get: function () { return spancontext_utils_1.isSpanContextValid; } }));
Object.defineProperty(exports, "isValidTraceId", ({ enumerable: true, get: function () { return spancontext_utils_1.isValidTraceId; } }));
Object.defineProperty(exports, "isValidSpanId", ({ enumerable: true, get: function () { return spancontext_utils_1.isValidSpanId; } }));
var invalid_span_constants_1 = __nccwpck_require__(7088);
Object.defineProperty(exports, "INVALID_SPANID", ({ enumerable: true, get: function () { return invalid_span_constants_1.INVALID_SPANID; } }));
Object.defineProperty(exports, "INVALID_TRACEID", ({ enumerable: true, get: function () { return invalid_span_constants_1.INVALID_TRACEID; } }));
Object.defineProperty(exports, "INVALID_SPAN_CONTEXT", ({ enumerable: true, get: function () { return invalid_span_constants_1.INVALID_SPAN_CONTEXT; } }));
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const context_api_1 = __nccwpck_require__(244);
Object.defineProperty(exports, "context", ({ enumerable: true, get: function () { return context_api_1.context; } }));
const diag_api_1 = __nccwpck_require__(1414);
Object.defineProperty(exports, "diag", ({ enumerable: true, get: function () { return diag_api_1.diag; } }));
const metrics_api_1 = __nccwpck_require__(2053);
Object.defineProperty(exports, "metrics", ({ enumerable: true, get: function () { return metrics_api_1.metrics; } }));
const propagation_api_1 = __nccwpck_require__(6389);
Object.defineProperty(exports, "propagation", ({ enumerable: true, get: function () { return propagation_api_1.propagation; } }));
const trace_api_1 = __nccwpck_require__(6542);
Object.defineProperty(exports, "trace", ({ enumerable: true, get: function () { return trace_api_1.trace; } }));
// Default export.
exports["default"] = {
    context: context_api_1.context,
    diag: diag_api_1.diag,
    metrics: metrics_api_1.metrics,
    propagation: propagation_api_1.propagation,
    trace: trace_api_1.trace,
};
//# sourceMappingURL=index.js.map

/***/ }),

/***/ 9923:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.unregisterGlobal = exports.getGlobal = exports.registerGlobal = void 0;
const version_1 = __nccwpck_require__(9390);
const semver_1 = __nccwpck_require__(5088);
const major = version_1.VERSION.split('.')[0];
const GLOBAL_OPENTELEMETRY_API_KEY = Symbol.for(`opentelemetry.js.api.${major}`);
const _global = (typeof globalThis === 'object'
    ? globalThis
    : typeof self === 'object'
        ? self
        : typeof window === 'object'
            ? window
            : typeof global === 'object'
                ? global
                : {});
function registerGlobal(type, instance, diag, allowOverride = false) {
    var _a;
    const api = (_global[GLOBAL_OPENTELEMETRY_API_KEY] = (_a = _global[GLOBAL_OPENTELEMETRY_API_KEY]) !== null && _a !== void 0 ? _a : {
        version: version_1.VERSION,
    });
    if (!allowOverride && api[type]) {
        // already registered an API of this type
        const err = new Error(`@opentelemetry/api: Attempted duplicate registration of API: ${type}`);
        diag.error(err.stack || err.message);
        return false;
    }
    if (api.version !== version_1.VERSION) {
        // All registered APIs must be of the same version exactly
        const err = new Error(`@opentelemetry/api: Registration of version v${api.version} for ${type} does not match previously registered API v${version_1.VERSION}`);
        diag.error(err.stack || err.message);
        return false;
    }
    api[type] = instance;
    diag.debug(`@opentelemetry/api: Registered a global for ${type} v${version_1.VERSION}.`);
    return true;
}
exports.registerGlobal = registerGlobal;
function getGlobal(type) {
    var _a, _b;
    const globalVersion = (_a = _global[GLOBAL_OPENTELEMETRY_API_KEY]) === null || _a === void 0 ? void 0 : _a.version;
    if (!globalVersion || !(0, semver_1.isCompatible)(globalVersion)) {
        return;
    }
    return (_b = _global[GLOBAL_OPENTELEMETRY_API_KEY]) === null || _b === void 0 ? void 0 : _b[type];
}
exports.getGlobal = getGlobal;
function unregisterGlobal(type, diag) {
    diag.debug(`@opentelemetry/api: Unregistering a global for ${type} v${version_1.VERSION}.`);
    const api = _global[GLOBAL_OPENTELEMETRY_API_KEY];
    if (api) {
        delete api[type];
    }
}
exports.unregisterGlobal = unregisterGlobal;
//# sourceMappingURL=global-utils.js.map

/***/ }),

/***/ 5088:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.isCompatible = exports._makeCompatibilityCheck = void 0;
const version_1 = __nccwpck_require__(9390);
const re = /^(\d+)\.(\d+)\.(\d+)(-(.+))?$/;
/**
 * Create a function to test an API version to see if it is compatible with the provided ownVersion.
 *
 * The returned function has the following semantics:
 * - Exact match is always compatible
 * - Major versions must match exactly
 *    - 1.x package cannot use global 2.x package
 *    - 2.x package cannot use global 1.x package
 * - The minor version of the API module requesting access to the global API must be less than or equal to the minor version of this API
 *    - 1.3 package may use 1.4 global because the later global contains all functions 1.3 expects
 *    - 1.4 package may NOT use 1.3 global because it may try to call functions which don't exist on 1.3
 * - If the major version is 0, the minor version is treated as the major and the patch is treated as the minor
 * - Patch and build tag differences are not considered at this time
 *
 * @param ownVersion version which should be checked against
 */
function _makeCompatibilityCheck(ownVersion) {
    const acceptedVersions = new Set([ownVersion]);
    const rejectedVersions = new Set();
    const myVersionMatch = ownVersion.match(re);
    if (!myVersionMatch) {
        // we cannot guarantee compatibility so we always return noop
        return () => false;
    }
    const ownVersionParsed = {
        major: +myVersionMatch[1],
        minor: +myVersionMatch[2],
        patch: +myVersionMatch[3],
        prerelease: myVersionMatch[4],
    };
    // if ownVersion has a prerelease tag, versions must match exactly
    if (ownVersionParsed.prerelease != null) {
        return function isExactmatch(globalVersion) {
            return globalVersion === ownVersion;
        };
    }
    function _reject(v) {
        rejectedVersions.add(v);
        return false;
    }
    function _accept(v) {
        acceptedVersions.add(v);
        return true;
    }
    return function isCompatible(globalVersion) {
        if (acceptedVersions.has(globalVersion)) {
            return true;
        }
        if (rejectedVersions.has(globalVersion)) {
            return false;
        }
        const globalVersionMatch = globalVersion.match(re);
        if (!globalVersionMatch) {
            // cannot parse other version
            // we cannot guarantee compatibility so we always noop
            return _reject(globalVersion);
        }
        const globalVersionParsed = {
            major: +globalVersionMatch[1],
            minor: +globalVersionMatch[2],
            patch: +globalVersionMatch[3],
            prerelease: globalVersionMatch[4],
        };
        // if globalVersion has a prerelease tag, versions must match exactly
        if (globalVersionParsed.prerelease != null) {
            return _reject(globalVersion);
        }
        // major versions must match
        if (ownVersionParsed.major !== globalVersionParsed.major) {
            return _reject(globalVersion);
        }
        if (ownVersionParsed.major === 0) {
            if (ownVersionParsed.minor === globalVersionParsed.minor &&
                ownVersionParsed.patch <= globalVersionParsed.patch) {
                return _accept(globalVersion);
            }
            return _reject(globalVersion);
        }
        if (ownVersionParsed.minor <= globalVersionParsed.minor) {
            return _accept(globalVersion);
        }
        return _reject(globalVersion);
    };
}
exports._makeCompatibilityCheck = _makeCompatibilityCheck;
/**
 * Test an API version to see if it is compatible with this API.
 *
 * - Exact match is always compatible
 * - Major versions must match exactly
 *    - 1.x package cannot use global 2.x package
 *    - 2.x package cannot use global 1.x package
 * - The minor version of the API module requesting access to the global API must be less than or equal to the minor version of this API
 *    - 1.3 package may use 1.4 global because the later global contains all functions 1.3 expects
 *    - 1.4 package may NOT use 1.3 global because it may try to call functions which don't exist on 1.3
 * - If the major version is 0, the minor version is treated as the major and the patch is treated as the minor
 * - Patch and build tag differences are not considered at this time
 *
 * @param version version of the API requesting an instance of the global API
 */
exports.isCompatible = _makeCompatibilityCheck(version_1.VERSION);
//# sourceMappingURL=semver.js.map

/***/ }),

/***/ 2053:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.metrics = void 0;
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const metrics_1 = __nccwpck_require__(8692);
/**
 * Entrypoint for metrics API
 *
 * @since 1.3.0
 */
exports.metrics = metrics_1.MetricsAPI.getInstance();
//# sourceMappingURL=metrics-api.js.map

/***/ }),

/***/ 3814:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.ValueType = void 0;
/**
 * The Type of value. It describes how the data is reported.
 *
 * @since 1.3.0
 */
var ValueType;
(function (ValueType) {
    ValueType[ValueType["INT"] = 0] = "INT";
    ValueType[ValueType["DOUBLE"] = 1] = "DOUBLE";
})(ValueType = exports.ValueType || (exports.ValueType = {}));
//# sourceMappingURL=Metric.js.map

/***/ }),

/***/ 7017:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.createNoopMeter = exports.NOOP_OBSERVABLE_UP_DOWN_COUNTER_METRIC = exports.NOOP_OBSERVABLE_GAUGE_METRIC = exports.NOOP_OBSERVABLE_COUNTER_METRIC = exports.NOOP_UP_DOWN_COUNTER_METRIC = exports.NOOP_HISTOGRAM_METRIC = exports.NOOP_GAUGE_METRIC = exports.NOOP_COUNTER_METRIC = exports.NOOP_METER = exports.NoopObservableUpDownCounterMetric = exports.NoopObservableGaugeMetric = exports.NoopObservableCounterMetric = exports.NoopObservableMetric = exports.NoopHistogramMetric = exports.NoopGaugeMetric = exports.NoopUpDownCounterMetric = exports.NoopCounterMetric = exports.NoopMetric = exports.NoopMeter = void 0;
/**
 * NoopMeter is a noop implementation of the {@link Meter} interface. It reuses
 * constant NoopMetrics for all of its methods.
 */
class NoopMeter {
    constructor() { }
    /**
     * @see {@link Meter.createGauge}
     */
    createGauge(_name, _options) {
        return exports.NOOP_GAUGE_METRIC;
    }
    /**
     * @see {@link Meter.createHistogram}
     */
    createHistogram(_name, _options) {
        return exports.NOOP_HISTOGRAM_METRIC;
    }
    /**
     * @see {@link Meter.createCounter}
     */
    createCounter(_name, _options) {
        return exports.NOOP_COUNTER_METRIC;
    }
    /**
     * @see {@link Meter.createUpDownCounter}
     */
    createUpDownCounter(_name, _options) {
        return exports.NOOP_UP_DOWN_COUNTER_METRIC;
    }
    /**
     * @see {@link Meter.createObservableGauge}
     */
    createObservableGauge(_name, _options) {
        return exports.NOOP_OBSERVABLE_GAUGE_METRIC;
    }
    /**
     * @see {@link Meter.createObservableCounter}
     */
    createObservableCounter(_name, _options) {
        return exports.NOOP_OBSERVABLE_COUNTER_METRIC;
    }
    /**
     * @see {@link Meter.createObservableUpDownCounter}
     */
    createObservableUpDownCounter(_name, _options) {
        return exports.NOOP_OBSERVABLE_UP_DOWN_COUNTER_METRIC;
    }
    /**
     * @see {@link Meter.addBatchObservableCallback}
     */
    addBatchObservableCallback(_callback, _observables) { }
    /**
     * @see {@link Meter.removeBatchObservableCallback}
     */
    removeBatchObservableCallback(_callback) { }
}
exports.NoopMeter = NoopMeter;
class NoopMetric {
}
exports.NoopMetric = NoopMetric;
class NoopCounterMetric extends NoopMetric {
    add(_value, _attributes) { }
}
exports.NoopCounterMetric = NoopCounterMetric;
class NoopUpDownCounterMetric extends NoopMetric {
    add(_value, _attributes) { }
}
exports.NoopUpDownCounterMetric = NoopUpDownCounterMetric;
class NoopGaugeMetric extends NoopMetric {
    record(_value, _attributes) { }
}
exports.NoopGaugeMetric = NoopGaugeMetric;
class NoopHistogramMetric extends NoopMetric {
    record(_value, _attributes) { }
}
exports.NoopHistogramMetric = NoopHistogramMetric;
class NoopObservableMetric {
    addCallback(_callback) { }
    removeCallback(_callback) { }
}
exports.NoopObservableMetric = NoopObservableMetric;
class NoopObservableCounterMetric extends NoopObservableMetric {
}
exports.NoopObservableCounterMetric = NoopObservableCounterMetric;
class NoopObservableGaugeMetric extends NoopObservableMetric {
}
exports.NoopObservableGaugeMetric = NoopObservableGaugeMetric;
class NoopObservableUpDownCounterMetric extends NoopObservableMetric {
}
exports.NoopObservableUpDownCounterMetric = NoopObservableUpDownCounterMetric;
exports.NOOP_METER = new NoopMeter();
// Synchronous instruments
exports.NOOP_COUNTER_METRIC = new NoopCounterMetric();
exports.NOOP_GAUGE_METRIC = new NoopGaugeMetric();
exports.NOOP_HISTOGRAM_METRIC = new NoopHistogramMetric();
exports.NOOP_UP_DOWN_COUNTER_METRIC = new NoopUpDownCounterMetric();
// Asynchronous instruments
exports.NOOP_OBSERVABLE_COUNTER_METRIC = new NoopObservableCounterMetric();
exports.NOOP_OBSERVABLE_GAUGE_METRIC = new NoopObservableGaugeMetric();
exports.NOOP_OBSERVABLE_UP_DOWN_COUNTER_METRIC = new NoopObservableUpDownCounterMetric();
/**
 * Create a no-op Meter
 *
 * @since 1.3.0
 */
function createNoopMeter() {
    return exports.NOOP_METER;
}
exports.createNoopMeter = createNoopMeter;
//# sourceMappingURL=NoopMeter.js.map

/***/ }),

/***/ 2896:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NOOP_METER_PROVIDER = exports.NoopMeterProvider = void 0;
const NoopMeter_1 = __nccwpck_require__(7017);
/**
 * An implementation of the {@link MeterProvider} which returns an impotent Meter
 * for all calls to `getMeter`
 */
class NoopMeterProvider {
    getMeter(_name, _version, _options) {
        return NoopMeter_1.NOOP_METER;
    }
}
exports.NoopMeterProvider = NoopMeterProvider;
exports.NOOP_METER_PROVIDER = new NoopMeterProvider();
//# sourceMappingURL=NoopMeterProvider.js.map

/***/ }),

/***/ 6389:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.propagation = void 0;
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const propagation_1 = __nccwpck_require__(7);
/**
 * Entrypoint for propagation API
 *
 * @since 1.0.0
 */
exports.propagation = propagation_1.PropagationAPI.getInstance();
//# sourceMappingURL=propagation-api.js.map

/***/ }),

/***/ 4353:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NoopTextMapPropagator = void 0;
/**
 * No-op implementations of {@link TextMapPropagator}.
 */
class NoopTextMapPropagator {
    /** Noop inject function does nothing */
    inject(_context, _carrier) { }
    /** Noop extract function does nothing and returns the input context */
    extract(context, _carrier) {
        return context;
    }
    fields() {
        return [];
    }
}
exports.NoopTextMapPropagator = NoopTextMapPropagator;
//# sourceMappingURL=NoopTextMapPropagator.js.map

/***/ }),

/***/ 7865:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.defaultTextMapSetter = exports.defaultTextMapGetter = void 0;
/**
 * @since 1.0.0
 */
exports.defaultTextMapGetter = {
    get(carrier, key) {
        if (carrier == null) {
            return undefined;
        }
        return carrier[key];
    },
    keys(carrier) {
        if (carrier == null) {
            return [];
        }
        return Object.keys(carrier);
    },
};
/**
 * @since 1.0.0
 */
exports.defaultTextMapSetter = {
    set(carrier, key, value) {
        if (carrier == null) {
            return;
        }
        carrier[key] = value;
    },
};
//# sourceMappingURL=TextMapPropagator.js.map

/***/ }),

/***/ 6542:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.trace = void 0;
// Split module-level variable definition into separate files to allow
// tree-shaking on each api instance.
const trace_1 = __nccwpck_require__(4508);
/**
 * Entrypoint for trace API
 *
 * @since 1.0.0
 */
exports.trace = trace_1.TraceAPI.getInstance();
//# sourceMappingURL=trace-api.js.map

/***/ }),

/***/ 7168:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NonRecordingSpan = void 0;
const invalid_span_constants_1 = __nccwpck_require__(7088);
/**
 * The NonRecordingSpan is the default {@link Span} that is used when no Span
 * implementation is available. All operations are no-op including context
 * propagation.
 */
class NonRecordingSpan {
    constructor(spanContext = invalid_span_constants_1.INVALID_SPAN_CONTEXT) {
        this._spanContext = spanContext;
    }
    // Returns a SpanContext.
    spanContext() {
        return this._spanContext;
    }
    // By default does nothing
    setAttribute(_key, _value) {
        return this;
    }
    // By default does nothing
    setAttributes(_attributes) {
        return this;
    }
    // By default does nothing
    addEvent(_name, _attributes) {
        return this;
    }
    addLink(_link) {
        return this;
    }
    addLinks(_links) {
        return this;
    }
    // By default does nothing
    setStatus(_status) {
        return this;
    }
    // By default does nothing
    updateName(_name) {
        return this;
    }
    // By default does nothing
    end(_endTime) { }
    // isRecording always returns false for NonRecordingSpan.
    isRecording() {
        return false;
    }
    // By default does nothing
    recordException(_exception, _time) { }
}
exports.NonRecordingSpan = NonRecordingSpan;
//# sourceMappingURL=NonRecordingSpan.js.map

/***/ }),

/***/ 9051:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NoopTracer = void 0;
const context_1 = __nccwpck_require__(9750);
const context_utils_1 = __nccwpck_require__(2771);
const NonRecordingSpan_1 = __nccwpck_require__(7168);
const spancontext_utils_1 = __nccwpck_require__(639);
const contextApi = context_1.ContextAPI.getInstance();
/**
 * No-op implementations of {@link Tracer}.
 */
class NoopTracer {
    // startSpan starts a noop span.
    startSpan(name, options, context = contextApi.active()) {
        const root = Boolean(options === null || options === void 0 ? void 0 : options.root);
        if (root) {
            return new NonRecordingSpan_1.NonRecordingSpan();
        }
        const parentFromContext = context && (0, context_utils_1.getSpanContext)(context);
        if (isSpanContext(parentFromContext) &&
            (0, spancontext_utils_1.isSpanContextValid)(parentFromContext)) {
            return new NonRecordingSpan_1.NonRecordingSpan(parentFromContext);
        }
        else {
            return new NonRecordingSpan_1.NonRecordingSpan();
        }
    }
    startActiveSpan(name, arg2, arg3, arg4) {
        let opts;
        let ctx;
        let fn;
        if (arguments.length < 2) {
            return;
        }
        else if (arguments.length === 2) {
            fn = arg2;
        }
        else if (arguments.length === 3) {
            opts = arg2;
            fn = arg3;
        }
        else {
            opts = arg2;
            ctx = arg3;
            fn = arg4;
        }
        const parentContext = ctx !== null && ctx !== void 0 ? ctx : contextApi.active();
        const span = this.startSpan(name, opts, parentContext);
        const contextWithSpanSet = (0, context_utils_1.setSpan)(parentContext, span);
        return contextApi.with(contextWithSpanSet, fn, undefined, span);
    }
}
exports.NoopTracer = NoopTracer;
function isSpanContext(spanContext) {
    return (spanContext !== null &&
        typeof spanContext === 'object' &&
        'spanId' in spanContext &&
        typeof spanContext['spanId'] === 'string' &&
        'traceId' in spanContext &&
        typeof spanContext['traceId'] === 'string' &&
        'traceFlags' in spanContext &&
        typeof spanContext['traceFlags'] === 'number');
}
//# sourceMappingURL=NoopTracer.js.map

/***/ }),

/***/ 4602:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.NoopTracerProvider = void 0;
const NoopTracer_1 = __nccwpck_require__(9051);
/**
 * An implementation of the {@link TracerProvider} which returns an impotent
 * Tracer for all calls to `getTracer`.
 *
 * All operations are no-op.
 */
class NoopTracerProvider {
    getTracer(_name, _version, _options) {
        return new NoopTracer_1.NoopTracer();
    }
}
exports.NoopTracerProvider = NoopTracerProvider;
//# sourceMappingURL=NoopTracerProvider.js.map

/***/ }),

/***/ 4833:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.ProxyTracer = void 0;
const NoopTracer_1 = __nccwpck_require__(9051);
const NOOP_TRACER = new NoopTracer_1.NoopTracer();
/**
 * Proxy tracer provided by the proxy tracer provider
 *
 * @since 1.0.0
 */
class ProxyTracer {
    constructor(provider, name, version, options) {
        this._provider = provider;
        this.name = name;
        this.version = version;
        this.options = options;
    }
    startSpan(name, options, context) {
        return this._getTracer().startSpan(name, options, context);
    }
    startActiveSpan(_name, _options, _context, _fn) {
        const tracer = this._getTracer();
        return Reflect.apply(tracer.startActiveSpan, tracer, arguments);
    }
    /**
     * Try to get a tracer from the proxy tracer provider.
     * If the proxy tracer provider has no delegate, return a noop tracer.
     */
    _getTracer() {
        if (this._delegate) {
            return this._delegate;
        }
        const tracer = this._provider.getDelegateTracer(this.name, this.version, this.options);
        if (!tracer) {
            return NOOP_TRACER;
        }
        this._delegate = tracer;
        return this._delegate;
    }
}
exports.ProxyTracer = ProxyTracer;
//# sourceMappingURL=ProxyTracer.js.map

/***/ }),

/***/ 312:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.ProxyTracerProvider = void 0;
const ProxyTracer_1 = __nccwpck_require__(4833);
const NoopTracerProvider_1 = __nccwpck_require__(4602);
const NOOP_TRACER_PROVIDER = new NoopTracerProvider_1.NoopTracerProvider();
/**
 * Tracer provider which provides {@link ProxyTracer}s.
 *
 * Before a delegate is set, tracers provided are NoOp.
 *   When a delegate is set, traces are provided from the delegate.
 *   When a delegate is set after tracers have already been provided,
 *   all tracers already provided will use the provided delegate implementation.
 *
 * @deprecated This will be removed in the next major version.
 * @since 1.0.0
 */
class ProxyTracerProvider {
    /**
     * Get a {@link ProxyTracer}
     */
    getTracer(name, version, options) {
        var _a;
        return ((_a = this.getDelegateTracer(name, version, options)) !== null && _a !== void 0 ? _a : new ProxyTracer_1.ProxyTracer(this, name, version, options));
    }
    getDelegate() {
        var _a;
        return (_a = this._delegate) !== null && _a !== void 0 ? _a : NOOP_TRACER_PROVIDER;
    }
    /**
     * Set the delegate tracer provider
     */
    setDelegate(delegate) {
        this._delegate = delegate;
    }
    getDelegateTracer(name, version, options) {
        var _a;
        return (_a = this._delegate) === null || _a === void 0 ? void 0 : _a.getTracer(name, version, options);
    }
}
exports.ProxyTracerProvider = ProxyTracerProvider;
//# sourceMappingURL=ProxyTracerProvider.js.map

/***/ }),

/***/ 434:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.SamplingDecision = void 0;
/**
 * @deprecated use the one declared in @opentelemetry/sdk-trace-base instead.
 * A sampling decision that determines how a {@link Span} will be recorded
 * and collected.
 *
 * @since 1.0.0
 */
var SamplingDecision;
(function (SamplingDecision) {
    /**
     * `Span.isRecording() === false`, span will not be recorded and all events
     * and attributes will be dropped.
     */
    SamplingDecision[SamplingDecision["NOT_RECORD"] = 0] = "NOT_RECORD";
    /**
     * `Span.isRecording() === true`, but `Sampled` flag in {@link TraceFlags}
     * MUST NOT be set.
     */
    SamplingDecision[SamplingDecision["RECORD"] = 1] = "RECORD";
    /**
     * `Span.isRecording() === true` AND `Sampled` flag in {@link TraceFlags}
     * MUST be set.
     */
    SamplingDecision[SamplingDecision["RECORD_AND_SAMPLED"] = 2] = "RECORD_AND_SAMPLED";
})(SamplingDecision = exports.SamplingDecision || (exports.SamplingDecision = {}));
//# sourceMappingURL=SamplingResult.js.map

/***/ }),

/***/ 2771:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.getSpanContext = exports.setSpanContext = exports.deleteSpan = exports.setSpan = exports.getActiveSpan = exports.getSpan = void 0;
const context_1 = __nccwpck_require__(7977);
const NonRecordingSpan_1 = __nccwpck_require__(7168);
const context_2 = __nccwpck_require__(9750);
/**
 * span key
 */
const SPAN_KEY = (0, context_1.createContextKey)('OpenTelemetry Context Key SPAN');
/**
 * Return the span if one exists
 *
 * @param context context to get span from
 */
function getSpan(context) {
    return context.getValue(SPAN_KEY) || undefined;
}
exports.getSpan = getSpan;
/**
 * Gets the span from the current context, if one exists.
 */
function getActiveSpan() {
    return getSpan(context_2.ContextAPI.getInstance().active());
}
exports.getActiveSpan = getActiveSpan;
/**
 * Set the span on a context
 *
 * @param context context to use as parent
 * @param span span to set active
 */
function setSpan(context, span) {
    return context.setValue(SPAN_KEY, span);
}
exports.setSpan = setSpan;
/**
 * Remove current span stored in the context
 *
 * @param context context to delete span from
 */
function deleteSpan(context) {
    return context.deleteValue(SPAN_KEY);
}
exports.deleteSpan = deleteSpan;
/**
 * Wrap span context in a NoopSpan and set as span in a new
 * context
 *
 * @param context context to set active span on
 * @param spanContext span context to be wrapped
 */
function setSpanContext(context, spanContext) {
    return setSpan(context, new NonRecordingSpan_1.NonRecordingSpan(spanContext));
}
exports.setSpanContext = setSpanContext;
/**
 * Get the span context of the span if it exists.
 *
 * @param context context to get values from
 */
function getSpanContext(context) {
    var _a;
    return (_a = getSpan(context)) === null || _a === void 0 ? void 0 : _a.spanContext();
}
exports.getSpanContext = getSpanContext;
//# sourceMappingURL=context-utils.js.map

/***/ }),

/***/ 7903:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.TraceStateImpl = void 0;
const tracestate_validators_1 = __nccwpck_require__(5618);
const MAX_TRACE_STATE_ITEMS = 32;
const MAX_TRACE_STATE_LEN = 512;
const LIST_MEMBERS_SEPARATOR = ',';
const LIST_MEMBER_KEY_VALUE_SPLITTER = '=';
/**
 * TraceState must be a class and not a simple object type because of the spec
 * requirement (https://www.w3.org/TR/trace-context/#tracestate-field).
 *
 * Here is the list of allowed mutations:
 * - New key-value pair should be added into the beginning of the list
 * - The value of any key can be updated. Modified keys MUST be moved to the
 * beginning of the list.
 */
class TraceStateImpl {
    constructor(rawTraceState) {
        this._internalState = new Map();
        if (rawTraceState)
            this._parse(rawTraceState);
    }
    set(key, value) {
        // TODO: Benchmark the different approaches(map vs list) and
        // use the faster one.
        const traceState = this._clone();
        if (traceState._internalState.has(key)) {
            traceState._internalState.delete(key);
        }
        traceState._internalState.set(key, value);
        return traceState;
    }
    unset(key) {
        const traceState = this._clone();
        traceState._internalState.delete(key);
        return traceState;
    }
    get(key) {
        return this._internalState.get(key);
    }
    serialize() {
        return (Array.from(this._internalState.keys())
            // Use reduceRight() because keys are stored in reverse insertion order.
            .reduceRight((agg, key) => {
            agg.push(key + LIST_MEMBER_KEY_VALUE_SPLITTER + this.get(key));
            return agg;
        }, [])
            .join(LIST_MEMBERS_SEPARATOR));
    }
    _parse(rawTraceState) {
        if (rawTraceState.length > MAX_TRACE_STATE_LEN)
            return;
        this._internalState = rawTraceState
            .split(LIST_MEMBERS_SEPARATOR)
            // Use reduceRight() so new keys (.set(...)) will be placed at the beginning
            .reduceRight((agg, part) => {
            const listMember = part.trim(); // Optional Whitespace (OWS) handling
            const i = listMember.indexOf(LIST_MEMBER_KEY_VALUE_SPLITTER);
            if (i !== -1) {
                const key = listMember.slice(0, i);
                const value = listMember.slice(i + 1, part.length);
                if ((0, tracestate_validators_1.validateKey)(key) && (0, tracestate_validators_1.validateValue)(value)) {
                    agg.set(key, value);
                }
                else {
                    // TODO: Consider to add warning log
                }
            }
            return agg;
        }, new Map());
        // Because of the reverse() requirement, trunc must be done after map is created
        if (this._internalState.size > MAX_TRACE_STATE_ITEMS) {
            this._internalState = new Map(Array.from(this._internalState.entries())
                .reverse() // Use reverse same as original tracestate parse chain
                .slice(0, MAX_TRACE_STATE_ITEMS));
        }
    }
    // @ts-expect-error TS6133 Accessed in tests only.
    _keys() {
        return Array.from(this._internalState.keys()).reverse();
    }
    _clone() {
        const traceState = new TraceStateImpl();
        traceState._internalState = new Map(this._internalState);
        return traceState;
    }
}
exports.TraceStateImpl = TraceStateImpl;
//# sourceMappingURL=tracestate-impl.js.map

/***/ }),

/***/ 5618:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.validateValue = exports.validateKey = void 0;
const VALID_KEY_CHAR_RANGE = '[_0-9a-z-*/]';
const VALID_KEY = `[a-z]${VALID_KEY_CHAR_RANGE}{0,255}`;
const VALID_VENDOR_KEY = `[a-z0-9]${VALID_KEY_CHAR_RANGE}{0,240}@[a-z]${VALID_KEY_CHAR_RANGE}{0,13}`;
const VALID_KEY_REGEX = new RegExp(`^(?:${VALID_KEY}|${VALID_VENDOR_KEY})$`);
const VALID_VALUE_BASE_REGEX = /^[ -~]{0,255}[!-~]$/;
const INVALID_VALUE_COMMA_EQUAL_REGEX = /,|=/;
/**
 * Key is opaque string up to 256 characters printable. It MUST begin with a
 * lowercase letter, and can only contain lowercase letters a-z, digits 0-9,
 * underscores _, dashes -, asterisks *, and forward slashes /.
 * For multi-tenant vendor scenarios, an at sign (@) can be used to prefix the
 * vendor name. Vendors SHOULD set the tenant ID at the beginning of the key.
 * see https://www.w3.org/TR/trace-context/#key
 */
function validateKey(key) {
    return VALID_KEY_REGEX.test(key);
}
exports.validateKey = validateKey;
/**
 * Value is opaque string up to 256 characters printable ASCII RFC0020
 * characters (i.e., the range 0x20 to 0x7E) except comma , and =.
 */
function validateValue(value) {
    return (VALID_VALUE_BASE_REGEX.test(value) &&
        !INVALID_VALUE_COMMA_EQUAL_REGEX.test(value));
}
exports.validateValue = validateValue;
//# sourceMappingURL=tracestate-validators.js.map

/***/ }),

/***/ 969:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.createTraceState = void 0;
const tracestate_impl_1 = __nccwpck_require__(7903);
/**
 * @since 1.1.0
 */
function createTraceState(rawTraceState) {
    return new tracestate_impl_1.TraceStateImpl(rawTraceState);
}
exports.createTraceState = createTraceState;
//# sourceMappingURL=utils.js.map

/***/ }),

/***/ 7088:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.INVALID_SPAN_CONTEXT = exports.INVALID_TRACEID = exports.INVALID_SPANID = void 0;
const trace_flags_1 = __nccwpck_require__(7221);
/**
 * @since 1.0.0
 */
exports.INVALID_SPANID = '0000000000000000';
/**
 * @since 1.0.0
 */
exports.INVALID_TRACEID = '00000000000000000000000000000000';
/**
 * @since 1.0.0
 */
exports.INVALID_SPAN_CONTEXT = {
    traceId: exports.INVALID_TRACEID,
    spanId: exports.INVALID_SPANID,
    traceFlags: trace_flags_1.TraceFlags.NONE,
};
//# sourceMappingURL=invalid-span-constants.js.map

/***/ }),

/***/ 2347:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.SpanKind = void 0;
/**
 * @since 1.0.0
 */
var SpanKind;
(function (SpanKind) {
    /** Default value. Indicates that the span is used internally. */
    SpanKind[SpanKind["INTERNAL"] = 0] = "INTERNAL";
    /**
     * Indicates that the span covers server-side handling of an RPC or other
     * remote request.
     */
    SpanKind[SpanKind["SERVER"] = 1] = "SERVER";
    /**
     * Indicates that the span covers the client-side wrapper around an RPC or
     * other remote request.
     */
    SpanKind[SpanKind["CLIENT"] = 2] = "CLIENT";
    /**
     * Indicates that the span describes producer sending a message to a
     * broker. Unlike client and server, there is no direct critical path latency
     * relationship between producer and consumer spans.
     */
    SpanKind[SpanKind["PRODUCER"] = 3] = "PRODUCER";
    /**
     * Indicates that the span describes consumer receiving a message from a
     * broker. Unlike client and server, there is no direct critical path latency
     * relationship between producer and consumer spans.
     */
    SpanKind[SpanKind["CONSUMER"] = 4] = "CONSUMER";
})(SpanKind = exports.SpanKind || (exports.SpanKind = {}));
//# sourceMappingURL=span_kind.js.map

/***/ }),

/***/ 639:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {


Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.wrapSpanContext = exports.isSpanContextValid = exports.isValidSpanId = exports.isValidTraceId = void 0;
/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
const invalid_span_constants_1 = __nccwpck_require__(7088);
const NonRecordingSpan_1 = __nccwpck_require__(7168);
// Valid characters (0-9, a-f, A-F) are marked as 1.
const isHex = new Uint8Array([
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,
]);
function isValidHex(id, length) {
    // As of 1.9.0 the id was allowed to be a non-string value,
    // even though it was not possible in the types.
    if (typeof id !== 'string' || id.length !== length)
        return false;
    let r = 0;
    for (let i = 0; i < id.length; i += 4) {
        r +=
            (isHex[id.charCodeAt(i)] | 0) +
                (isHex[id.charCodeAt(i + 1)] | 0) +
                (isHex[id.charCodeAt(i + 2)] | 0) +
                (isHex[id.charCodeAt(i + 3)] | 0);
    }
    return r === length;
}
/**
 * @since 1.0.0
 */
function isValidTraceId(traceId) {
    return isValidHex(traceId, 32) && traceId !== invalid_span_constants_1.INVALID_TRACEID;
}
exports.isValidTraceId = isValidTraceId;
/**
 * @since 1.0.0
 */
function isValidSpanId(spanId) {
    return isValidHex(spanId, 16) && spanId !== invalid_span_constants_1.INVALID_SPANID;
}
exports.isValidSpanId = isValidSpanId;
/**
 * Returns true if this {@link SpanContext} is valid.
 * @return true if this {@link SpanContext} is valid.
 *
 * @since 1.0.0
 */
function isSpanContextValid(spanContext) {
    return (isValidTraceId(spanContext.traceId) && isValidSpanId(spanContext.spanId));
}
exports.isSpanContextValid = isSpanContextValid;
/**
 * Wrap the given {@link SpanContext} in a new non-recording {@link Span}
 *
 * @param spanContext span context to be wrapped
 * @returns a new non-recording {@link Span} with the provided context
 */
function wrapSpanContext(spanContext) {
    return new NonRecordingSpan_1.NonRecordingSpan(spanContext);
}
exports.wrapSpanContext = wrapSpanContext;
//# sourceMappingURL=spancontext-utils.js.map

/***/ }),

/***/ 1524:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.SpanStatusCode = void 0;
/**
 * An enumeration of status codes.
 *
 * @since 1.0.0
 */
var SpanStatusCode;
(function (SpanStatusCode) {
    /**
     * The default status.
     */
    SpanStatusCode[SpanStatusCode["UNSET"] = 0] = "UNSET";
    /**
     * The operation has been validated by an Application developer or
     * Operator to have completed successfully.
     */
    SpanStatusCode[SpanStatusCode["OK"] = 1] = "OK";
    /**
     * The operation contains an error.
     */
    SpanStatusCode[SpanStatusCode["ERROR"] = 2] = "ERROR";
})(SpanStatusCode = exports.SpanStatusCode || (exports.SpanStatusCode = {}));
//# sourceMappingURL=status.js.map

/***/ }),

/***/ 7221:
/***/ ((__unused_webpack_module, exports) => {


Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.TraceFlags = void 0;
/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
/**
 * @since 1.0.0
 */
var TraceFlags;
(function (TraceFlags) {
    /** Represents no flag set. */
    TraceFlags[TraceFlags["NONE"] = 0] = "NONE";
    /** Bit to represent whether trace is sampled in trace flags. */
    TraceFlags[TraceFlags["SAMPLED"] = 1] = "SAMPLED";
})(TraceFlags = exports.TraceFlags || (exports.TraceFlags = {}));
//# sourceMappingURL=trace_flags.js.map

/***/ }),

/***/ 9390:
/***/ ((__unused_webpack_module, exports) => {


/*
 * Copyright The OpenTelemetry Authors
 * SPDX-License-Identifier: Apache-2.0
 */
Object.defineProperty(exports, "__esModule", ({ value: true }));
exports.VERSION = void 0;
// this is autogenerated file, see scripts/version-update.js
exports.VERSION = '1.9.1';
//# sourceMappingURL=version.js.map

/***/ }),

/***/ 7769:
/***/ ((module) => {



function deepClone (obj) {
  if (obj === null || typeof obj !== 'object') {
    return obj
  }

  if (obj instanceof Date) {
    return new Date(obj.getTime())
  }

  if (obj instanceof Array) {
    const cloned = []
    for (let i = 0; i < obj.length; i++) {
      cloned[i] = deepClone(obj[i])
    }
    return cloned
  }

  if (typeof obj === 'object') {
    const cloned = Object.create(Object.getPrototypeOf(obj))
    for (const key in obj) {
      if (Object.prototype.hasOwnProperty.call(obj, key)) {
        cloned[key] = deepClone(obj[key])
      }
    }
    return cloned
  }

  return obj
}

function parsePath (path) {
  const parts = []
  let current = ''
  let inBrackets = false
  let inQuotes = false
  let quoteChar = ''

  for (let i = 0; i < path.length; i++) {
    const char = path[i]

    if (!inBrackets && char === '.') {
      if (current) {
        parts.push(current)
        current = ''
      }
    } else if (char === '[') {
      if (current) {
        parts.push(current)
        current = ''
      }
      inBrackets = true
    } else if (char === ']' && inBrackets) {
      // Always push the current value when closing brackets, even if it's an empty string
      parts.push(current)
      current = ''
      inBrackets = false
      inQuotes = false
    } else if ((char === '"' || char === "'") && inBrackets) {
      if (!inQuotes) {
        inQuotes = true
        quoteChar = char
      } else if (char === quoteChar) {
        inQuotes = false
        quoteChar = ''
      } else {
        current += char
      }
    } else {
      current += char
    }
  }

  if (current) {
    parts.push(current)
  }

  return parts
}

function setValue (obj, parts, value) {
  let current = obj

  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i]
    // Type safety: Check if current is an object before using 'in' operator
    if (typeof current !== 'object' || current === null || !(key in current)) {
      return false // Path doesn't exist, don't create it
    }
    if (typeof current[key] !== 'object' || current[key] === null) {
      return false // Path doesn't exist properly
    }
    current = current[key]
  }

  const lastKey = parts[parts.length - 1]
  if (lastKey === '*') {
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        current[i] = value
      }
    } else if (typeof current === 'object' && current !== null) {
      for (const key in current) {
        if (Object.prototype.hasOwnProperty.call(current, key)) {
          current[key] = value
        }
      }
    }
  } else {
    // Type safety: Check if current is an object before using 'in' operator
    if (typeof current === 'object' && current !== null && lastKey in current && Object.prototype.hasOwnProperty.call(current, lastKey)) {
      current[lastKey] = value
    }
  }
  return true
}

function removeKey (obj, parts) {
  let current = obj

  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i]
    // Type safety: Check if current is an object before using 'in' operator
    if (typeof current !== 'object' || current === null || !(key in current)) {
      return false // Path doesn't exist, don't create it
    }
    if (typeof current[key] !== 'object' || current[key] === null) {
      return false // Path doesn't exist properly
    }
    current = current[key]
  }

  const lastKey = parts[parts.length - 1]
  if (lastKey === '*') {
    if (Array.isArray(current)) {
      // For arrays, we can't really "remove" all items as that would change indices
      // Instead, we set them to undefined which will be omitted by JSON.stringify
      for (let i = 0; i < current.length; i++) {
        current[i] = undefined
      }
    } else if (typeof current === 'object' && current !== null) {
      for (const key in current) {
        if (Object.prototype.hasOwnProperty.call(current, key)) {
          delete current[key]
        }
      }
    }
  } else {
    // Type safety: Check if current is an object before using 'in' operator
    if (typeof current === 'object' && current !== null && lastKey in current && Object.prototype.hasOwnProperty.call(current, lastKey)) {
      delete current[lastKey]
    }
  }
  return true
}

// Sentinel object to distinguish between undefined value and non-existent path
const PATH_NOT_FOUND = Symbol('PATH_NOT_FOUND')

function getValueIfExists (obj, parts) {
  let current = obj

  for (const part of parts) {
    if (current === null || current === undefined) {
      return PATH_NOT_FOUND
    }
    // Type safety: Check if current is an object before property access
    if (typeof current !== 'object' || current === null) {
      return PATH_NOT_FOUND
    }
    // Check if the property exists before accessing it
    if (!(part in current)) {
      return PATH_NOT_FOUND
    }
    current = current[part]
  }

  return current
}

function getValue (obj, parts) {
  let current = obj

  for (const part of parts) {
    if (current === null || current === undefined) {
      return undefined
    }
    // Type safety: Check if current is an object before property access
    if (typeof current !== 'object' || current === null) {
      return undefined
    }
    current = current[part]
  }

  return current
}

function redactPaths (obj, paths, censor, remove = false) {
  for (const path of paths) {
    const parts = parsePath(path)

    if (parts.includes('*')) {
      redactWildcardPath(obj, parts, censor, path, remove)
    } else {
      if (remove) {
        removeKey(obj, parts)
      } else {
        // Get value only if path exists - single traversal
        const value = getValueIfExists(obj, parts)
        if (value === PATH_NOT_FOUND) {
          continue
        }

        const actualCensor = typeof censor === 'function'
          ? censor(value, parts)
          : censor
        setValue(obj, parts, actualCensor)
      }
    }
  }
}

function redactWildcardPath (obj, parts, censor, originalPath, remove = false) {
  const wildcardIndex = parts.indexOf('*')

  if (wildcardIndex === parts.length - 1) {
    const parentParts = parts.slice(0, -1)
    let current = obj

    for (const part of parentParts) {
      if (current === null || current === undefined) return
      // Type safety: Check if current is an object before property access
      if (typeof current !== 'object' || current === null) return
      current = current[part]
    }

    if (Array.isArray(current)) {
      if (remove) {
        // For arrays, set all items to undefined which will be omitted by JSON.stringify
        for (let i = 0; i < current.length; i++) {
          current[i] = undefined
        }
      } else {
        for (let i = 0; i < current.length; i++) {
          const indexPath = [...parentParts, i.toString()]
          const actualCensor = typeof censor === 'function'
            ? censor(current[i], indexPath)
            : censor
          current[i] = actualCensor
        }
      }
    } else if (typeof current === 'object' && current !== null) {
      if (remove) {
        // Collect keys to delete to avoid issues with deleting during iteration
        const keysToDelete = []
        for (const key in current) {
          if (Object.prototype.hasOwnProperty.call(current, key)) {
            keysToDelete.push(key)
          }
        }
        for (const key of keysToDelete) {
          delete current[key]
        }
      } else {
        for (const key in current) {
          const keyPath = [...parentParts, key]
          const actualCensor = typeof censor === 'function'
            ? censor(current[key], keyPath)
            : censor
          current[key] = actualCensor
        }
      }
    }
  } else {
    redactIntermediateWildcard(obj, parts, censor, wildcardIndex, originalPath, remove)
  }
}

function redactIntermediateWildcard (obj, parts, censor, wildcardIndex, originalPath, remove = false) {
  const beforeWildcard = parts.slice(0, wildcardIndex)
  const afterWildcard = parts.slice(wildcardIndex + 1)
  const pathArray = [] // Cached array to avoid allocations

  function traverse (current, pathLength) {
    if (pathLength === beforeWildcard.length) {
      if (Array.isArray(current)) {
        for (let i = 0; i < current.length; i++) {
          pathArray[pathLength] = i.toString()
          traverse(current[i], pathLength + 1)
        }
      } else if (typeof current === 'object' && current !== null) {
        for (const key in current) {
          pathArray[pathLength] = key
          traverse(current[key], pathLength + 1)
        }
      }
    } else if (pathLength < beforeWildcard.length) {
      const nextKey = beforeWildcard[pathLength]
      // Type safety: Check if current is an object before using 'in' operator
      if (current && typeof current === 'object' && current !== null && nextKey in current) {
        pathArray[pathLength] = nextKey
        traverse(current[nextKey], pathLength + 1)
      }
    } else {
      // Check if afterWildcard contains more wildcards
      if (afterWildcard.includes('*')) {
        // Recursively handle remaining wildcards
        // Wrap censor to prepend current path context
        const wrappedCensor = typeof censor === 'function'
          ? (value, path) => {
              const fullPath = [...pathArray.slice(0, pathLength), ...path]
              return censor(value, fullPath)
            }
          : censor
        redactWildcardPath(current, afterWildcard, wrappedCensor, originalPath, remove)
      } else {
        // No more wildcards, apply the redaction directly
        if (remove) {
          removeKey(current, afterWildcard)
        } else {
          const actualCensor = typeof censor === 'function'
            ? censor(getValue(current, afterWildcard), [...pathArray.slice(0, pathLength), ...afterWildcard])
            : censor
          setValue(current, afterWildcard, actualCensor)
        }
      }
    }
  }

  if (beforeWildcard.length === 0) {
    traverse(obj, 0)
  } else {
    let current = obj
    for (let i = 0; i < beforeWildcard.length; i++) {
      const part = beforeWildcard[i]
      if (current === null || current === undefined) return
      // Type safety: Check if current is an object before property access
      if (typeof current !== 'object' || current === null) return
      current = current[part]
      pathArray[i] = part
    }
    if (current !== null && current !== undefined) {
      traverse(current, beforeWildcard.length)
    }
  }
}

function buildPathStructure (pathsToClone) {
  if (pathsToClone.length === 0) {
    return null // No paths to redact
  }

  // Parse all paths and organize by depth
  const pathStructure = new Map()
  for (const path of pathsToClone) {
    const parts = parsePath(path)
    let current = pathStructure
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]
      if (!current.has(part)) {
        current.set(part, new Map())
      }
      current = current.get(part)
    }
  }
  return pathStructure
}

function selectiveClone (obj, pathStructure) {
  if (!pathStructure) {
    return obj // No paths to redact, return original
  }

  function cloneSelectively (source, pathMap, depth = 0) {
    if (!pathMap || pathMap.size === 0) {
      return source // No more paths to clone, return reference
    }

    if (source === null || typeof source !== 'object') {
      return source
    }

    if (source instanceof Date) {
      return new Date(source.getTime())
    }

    if (Array.isArray(source)) {
      const cloned = []
      for (let i = 0; i < source.length; i++) {
        const indexStr = i.toString()
        if (pathMap.has(indexStr) || pathMap.has('*')) {
          cloned[i] = cloneSelectively(source[i], pathMap.get(indexStr) || pathMap.get('*'))
        } else {
          cloned[i] = source[i] // Share reference for non-redacted items
        }
      }
      return cloned
    }

    // Handle objects
    const cloned = Object.create(Object.getPrototypeOf(source))
    for (const key in source) {
      if (Object.prototype.hasOwnProperty.call(source, key)) {
        if (pathMap.has(key) || pathMap.has('*')) {
          cloned[key] = cloneSelectively(source[key], pathMap.get(key) || pathMap.get('*'))
        } else {
          cloned[key] = source[key] // Share reference for non-redacted properties
        }
      }
    }
    return cloned
  }

  return cloneSelectively(obj, pathStructure)
}

function validatePath (path) {
  if (typeof path !== 'string') {
    throw new Error('Paths must be (non-empty) strings')
  }

  if (path === '') {
    throw new Error('Invalid redaction path ()')
  }

  // Check for double dots
  if (path.includes('..')) {
    throw new Error(`Invalid redaction path (${path})`)
  }

  // Check for comma-separated paths (invalid syntax)
  if (path.includes(',')) {
    throw new Error(`Invalid redaction path (${path})`)
  }

  // Check for unmatched brackets
  let bracketCount = 0
  let inQuotes = false
  let quoteChar = ''

  for (let i = 0; i < path.length; i++) {
    const char = path[i]

    if ((char === '"' || char === "'") && bracketCount > 0) {
      if (!inQuotes) {
        inQuotes = true
        quoteChar = char
      } else if (char === quoteChar) {
        inQuotes = false
        quoteChar = ''
      }
    } else if (char === '[' && !inQuotes) {
      bracketCount++
    } else if (char === ']' && !inQuotes) {
      bracketCount--
      if (bracketCount < 0) {
        throw new Error(`Invalid redaction path (${path})`)
      }
    }
  }

  if (bracketCount !== 0) {
    throw new Error(`Invalid redaction path (${path})`)
  }
}

function validatePaths (paths) {
  if (!Array.isArray(paths)) {
    throw new TypeError('paths must be an array')
  }

  for (const path of paths) {
    validatePath(path)
  }
}

function slowRedact (options = {}) {
  const {
    paths = [],
    censor = '[REDACTED]',
    serialize = JSON.stringify,
    strict = true,
    remove = false
  } = options

  // Validate paths upfront to match fast-redact behavior
  validatePaths(paths)

  // Build path structure once during setup, not on every call
  const pathStructure = buildPathStructure(paths)

  return function redact (obj) {
    if (strict && (obj === null || typeof obj !== 'object')) {
      if (obj === null || obj === undefined) {
        return serialize ? serialize(obj) : obj
      }
      if (typeof obj !== 'object') {
        return serialize ? serialize(obj) : obj
      }
    }

    // Only clone paths that need redaction
    const cloned = selectiveClone(obj, pathStructure)
    const original = obj // Keep reference to original for restore

    let actualCensor = censor
    if (typeof censor === 'function') {
      actualCensor = censor
    }

    redactPaths(cloned, paths, actualCensor, remove)

    if (serialize === false) {
      cloned.restore = function () {
        return deepClone(original) // Full clone only when restore is called
      }
      return cloned
    }

    if (typeof serialize === 'function') {
      return serialize(cloned)
    }

    return JSON.stringify(cloned)
  }
}

module.exports = slowRedact


/***/ }),

/***/ 479:
/***/ ((module) => {



/* global SharedArrayBuffer, Atomics */

if (typeof SharedArrayBuffer !== 'undefined' && typeof Atomics !== 'undefined') {
  const nil = new Int32Array(new SharedArrayBuffer(4))

  function sleep (ms) {
    // also filters out NaN, non-number types, including empty strings, but allows bigints
    const valid = ms > 0 && ms < Infinity 
    if (valid === false) {
      if (typeof ms !== 'number' && typeof ms !== 'bigint') {
        throw TypeError('sleep: ms must be a number')
      }
      throw RangeError('sleep: ms must be a number that is greater than 0 but less than Infinity')
    }

    Atomics.wait(nil, 0, 0, Number(ms))
  }
  module.exports = sleep
} else {

  function sleep (ms) {
    // also filters out NaN, non-number types, including empty strings, but allows bigints
    const valid = ms > 0 && ms < Infinity 
    if (valid === false) {
      if (typeof ms !== 'number' && typeof ms !== 'bigint') {
        throw TypeError('sleep: ms must be a number')
      }
      throw RangeError('sleep: ms must be a number that is greater than 0 but less than Infinity')
    }
    const target = Date.now() + Number(ms)
    while (target > Date.now()){}
  }

  module.exports = sleep

}


/***/ }),

/***/ 7750:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

module.exports = {
    RBTree: __nccwpck_require__(5004),
    BinTree: __nccwpck_require__(2663)
};


/***/ }),

/***/ 2663:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


var TreeBase = __nccwpck_require__(253);

function Node(data) {
    this.data = data;
    this.left = null;
    this.right = null;
}

Node.prototype.get_child = function(dir) {
    return dir ? this.right : this.left;
};

Node.prototype.set_child = function(dir, val) {
    if(dir) {
        this.right = val;
    }
    else {
        this.left = val;
    }
};

function BinTree(comparator) {
    this._root = null;
    this._comparator = comparator;
    this.size = 0;
}

BinTree.prototype = new TreeBase();

// returns true if inserted, false if duplicate
BinTree.prototype.insert = function(data) {
    if(this._root === null) {
        // empty tree
        this._root = new Node(data);
        this.size++;
        return true;
    }

    var dir = 0;

    // setup
    var p = null; // parent
    var node = this._root;

    // search down
    while(true) {
        if(node === null) {
            // insert new node at the bottom
            node = new Node(data);
            p.set_child(dir, node);
            ret = true;
            this.size++;
            return true;
        }

        // stop if found
        if(this._comparator(node.data, data) === 0) {
            return false;
        }

        dir = this._comparator(node.data, data) < 0;

        // update helpers
        p = node;
        node = node.get_child(dir);
    }
};

// returns true if removed, false if not found
BinTree.prototype.remove = function(data) {
    if(this._root === null) {
        return false;
    }

    var head = new Node(undefined); // fake tree root
    var node = head;
    node.right = this._root;
    var p = null; // parent
    var found = null; // found item
    var dir = 1;

    while(node.get_child(dir) !== null) {
        p = node;
        node = node.get_child(dir);
        var cmp = this._comparator(data, node.data);
        dir = cmp > 0;

        if(cmp === 0) {
            found = node;
        }
    }

    if(found !== null) {
        found.data = node.data;
        p.set_child(p.right === node, node.get_child(node.left === null));

        this._root = head.right;
        this.size--;
        return true;
    }
    else {
        return false;
    }
};

module.exports = BinTree;



/***/ }),

/***/ 5004:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


var TreeBase = __nccwpck_require__(253);

function Node(data) {
    this.data = data;
    this.left = null;
    this.right = null;
    this.red = true;
}

Node.prototype.get_child = function(dir) {
    return dir ? this.right : this.left;
};

Node.prototype.set_child = function(dir, val) {
    if(dir) {
        this.right = val;
    }
    else {
        this.left = val;
    }
};

function RBTree(comparator) {
    this._root = null;
    this._comparator = comparator;
    this.size = 0;
}

RBTree.prototype = new TreeBase();

// returns true if inserted, false if duplicate
RBTree.prototype.insert = function(data) {
    var ret = false;

    if(this._root === null) {
        // empty tree
        this._root = new Node(data);
        ret = true;
        this.size++;
    }
    else {
        var head = new Node(undefined); // fake tree root

        var dir = 0;
        var last = 0;

        // setup
        var gp = null; // grandparent
        var ggp = head; // grand-grand-parent
        var p = null; // parent
        var node = this._root;
        ggp.right = this._root;

        // search down
        while(true) {
            if(node === null) {
                // insert new node at the bottom
                node = new Node(data);
                p.set_child(dir, node);
                ret = true;
                this.size++;
            }
            else if(is_red(node.left) && is_red(node.right)) {
                // color flip
                node.red = true;
                node.left.red = false;
                node.right.red = false;
            }

            // fix red violation
            if(is_red(node) && is_red(p)) {
                var dir2 = ggp.right === gp;

                if(node === p.get_child(last)) {
                    ggp.set_child(dir2, single_rotate(gp, !last));
                }
                else {
                    ggp.set_child(dir2, double_rotate(gp, !last));
                }
            }

            var cmp = this._comparator(node.data, data);

            // stop if found
            if(cmp === 0) {
                break;
            }

            last = dir;
            dir = cmp < 0;

            // update helpers
            if(gp !== null) {
                ggp = gp;
            }
            gp = p;
            p = node;
            node = node.get_child(dir);
        }

        // update root
        this._root = head.right;
    }

    // make root black
    this._root.red = false;

    return ret;
};

// returns true if removed, false if not found
RBTree.prototype.remove = function(data) {
    if(this._root === null) {
        return false;
    }

    var head = new Node(undefined); // fake tree root
    var node = head;
    node.right = this._root;
    var p = null; // parent
    var gp = null; // grand parent
    var found = null; // found item
    var dir = 1;

    while(node.get_child(dir) !== null) {
        var last = dir;

        // update helpers
        gp = p;
        p = node;
        node = node.get_child(dir);

        var cmp = this._comparator(data, node.data);

        dir = cmp > 0;

        // save found node
        if(cmp === 0) {
            found = node;
        }

        // push the red node down
        if(!is_red(node) && !is_red(node.get_child(dir))) {
            if(is_red(node.get_child(!dir))) {
                var sr = single_rotate(node, dir);
                p.set_child(last, sr);
                p = sr;
            }
            else if(!is_red(node.get_child(!dir))) {
                var sibling = p.get_child(!last);
                if(sibling !== null) {
                    if(!is_red(sibling.get_child(!last)) && !is_red(sibling.get_child(last))) {
                        // color flip
                        p.red = false;
                        sibling.red = true;
                        node.red = true;
                    }
                    else {
                        var dir2 = gp.right === p;

                        if(is_red(sibling.get_child(last))) {
                            gp.set_child(dir2, double_rotate(p, last));
                        }
                        else if(is_red(sibling.get_child(!last))) {
                            gp.set_child(dir2, single_rotate(p, last));
                        }

                        // ensure correct coloring
                        var gpc = gp.get_child(dir2);
                        gpc.red = true;
                        node.red = true;
                        gpc.left.red = false;
                        gpc.right.red = false;
                    }
                }
            }
        }
    }

    // replace and remove if found
    if(found !== null) {
        found.data = node.data;
        p.set_child(p.right === node, node.get_child(node.left === null));
        this.size--;
    }

    // update root and make it black
    this._root = head.right;
    if(this._root !== null) {
        this._root.red = false;
    }

    return found !== null;
};

function is_red(node) {
    return node !== null && node.red;
}

function single_rotate(root, dir) {
    var save = root.get_child(!dir);

    root.set_child(!dir, save.get_child(dir));
    save.set_child(dir, root);

    root.red = true;
    save.red = false;

    return save;
}

function double_rotate(root, dir) {
    root.set_child(!dir, single_rotate(root.get_child(!dir), !dir));
    return single_rotate(root, dir);
}

module.exports = RBTree;


/***/ }),

/***/ 253:
/***/ ((module) => {


function TreeBase() {}

// removes all nodes from the tree
TreeBase.prototype.clear = function() {
    this._root = null;
    this.size = 0;
};

// returns node data if found, null otherwise
TreeBase.prototype.find = function(data) {
    var res = this._root;

    while(res !== null) {
        var c = this._comparator(data, res.data);
        if(c === 0) {
            return res.data;
        }
        else {
            res = res.get_child(c > 0);
        }
    }

    return null;
};

// returns iterator to node if found, null otherwise
TreeBase.prototype.findIter = function(data) {
    var res = this._root;
    var iter = this.iterator();

    while(res !== null) {
        var c = this._comparator(data, res.data);
        if(c === 0) {
            iter._cursor = res;
            return iter;
        }
        else {
            iter._ancestors.push(res);
            res = res.get_child(c > 0);
        }
    }

    return null;
};

// Returns an iterator to the tree node at or immediately after the item
TreeBase.prototype.lowerBound = function(item) {
    var cur = this._root;
    var iter = this.iterator();
    var cmp = this._comparator;

    while(cur !== null) {
        var c = cmp(item, cur.data);
        if(c === 0) {
            iter._cursor = cur;
            return iter;
        }
        iter._ancestors.push(cur);
        cur = cur.get_child(c > 0);
    }

    for(var i=iter._ancestors.length - 1; i >= 0; --i) {
        cur = iter._ancestors[i];
        if(cmp(item, cur.data) < 0) {
            iter._cursor = cur;
            iter._ancestors.length = i;
            return iter;
        }
    }

    iter._ancestors.length = 0;
    return iter;
};

// Returns an iterator to the tree node immediately after the item
TreeBase.prototype.upperBound = function(item) {
    var iter = this.lowerBound(item);
    var cmp = this._comparator;

    while(iter.data() !== null && cmp(iter.data(), item) === 0) {
        iter.next();
    }

    return iter;
};

// returns null if tree is empty
TreeBase.prototype.min = function() {
    var res = this._root;
    if(res === null) {
        return null;
    }

    while(res.left !== null) {
        res = res.left;
    }

    return res.data;
};

// returns null if tree is empty
TreeBase.prototype.max = function() {
    var res = this._root;
    if(res === null) {
        return null;
    }

    while(res.right !== null) {
        res = res.right;
    }

    return res.data;
};

// returns a null iterator
// call next() or prev() to point to an element
TreeBase.prototype.iterator = function() {
    return new Iterator(this);
};

// calls cb on each node's data, in order
TreeBase.prototype.each = function(cb) {
    var it=this.iterator(), data;
    while((data = it.next()) !== null) {
        if(cb(data) === false) {
            return;
        }
    }
};

// calls cb on each node's data, in reverse order
TreeBase.prototype.reach = function(cb) {
    var it=this.iterator(), data;
    while((data = it.prev()) !== null) {
        if(cb(data) === false) {
            return;
        }
    }
};


function Iterator(tree) {
    this._tree = tree;
    this._ancestors = [];
    this._cursor = null;
}

Iterator.prototype.data = function() {
    return this._cursor !== null ? this._cursor.data : null;
};

// if null-iterator, returns first node
// otherwise, returns next node
Iterator.prototype.next = function() {
    if(this._cursor === null) {
        var root = this._tree._root;
        if(root !== null) {
            this._minNode(root);
        }
    }
    else {
        if(this._cursor.right === null) {
            // no greater node in subtree, go up to parent
            // if coming from a right child, continue up the stack
            var save;
            do {
                save = this._cursor;
                if(this._ancestors.length) {
                    this._cursor = this._ancestors.pop();
                }
                else {
                    this._cursor = null;
                    break;
                }
            } while(this._cursor.right === save);
        }
        else {
            // get the next node from the subtree
            this._ancestors.push(this._cursor);
            this._minNode(this._cursor.right);
        }
    }
    return this._cursor !== null ? this._cursor.data : null;
};

// if null-iterator, returns last node
// otherwise, returns previous node
Iterator.prototype.prev = function() {
    if(this._cursor === null) {
        var root = this._tree._root;
        if(root !== null) {
            this._maxNode(root);
        }
    }
    else {
        if(this._cursor.left === null) {
            var save;
            do {
                save = this._cursor;
                if(this._ancestors.length) {
                    this._cursor = this._ancestors.pop();
                }
                else {
                    this._cursor = null;
                    break;
                }
            } while(this._cursor.left === save);
        }
        else {
            this._ancestors.push(this._cursor);
            this._maxNode(this._cursor.left);
        }
    }
    return this._cursor !== null ? this._cursor.data : null;
};

Iterator.prototype._minNode = function(start) {
    while(start.left !== null) {
        this._ancestors.push(start);
        start = start.left;
    }
    this._cursor = start;
};

Iterator.prototype._maxNode = function(start) {
    while(start.right !== null) {
        this._ancestors.push(start);
        start = start.right;
    }
    this._cursor = start;
};

module.exports = TreeBase;



/***/ }),

/***/ 9761:
/***/ ((module) => {



const refs = {
  exit: [],
  beforeExit: []
}
const functions = {
  exit: onExit,
  beforeExit: onBeforeExit
}

let registry

function ensureRegistry () {
  if (registry === undefined) {
    registry = new FinalizationRegistry(clear)
  }
}

function install (event) {
  if (refs[event].length > 0) {
    return
  }

  process.on(event, functions[event])
}

function uninstall (event) {
  if (refs[event].length > 0) {
    return
  }
  process.removeListener(event, functions[event])
  if (refs.exit.length === 0 && refs.beforeExit.length === 0) {
    registry = undefined
  }
}

function onExit () {
  callRefs('exit')
}

function onBeforeExit () {
  callRefs('beforeExit')
}

function callRefs (event) {
  for (const ref of refs[event]) {
    const obj = ref.deref()
    const fn = ref.fn

    // This should always happen, however GC is
    // undeterministic so it might not happen.
    /* istanbul ignore else */
    if (obj !== undefined) {
      fn(obj, event)
    }
  }
  refs[event] = []
}

function clear (ref) {
  for (const event of ['exit', 'beforeExit']) {
    const index = refs[event].indexOf(ref)
    refs[event].splice(index, index + 1)
    uninstall(event)
  }
}

function _register (event, obj, fn) {
  if (obj === undefined) {
    throw new Error('the object can\'t be undefined')
  }
  install(event)
  const ref = new WeakRef(obj)
  ref.fn = fn

  ensureRegistry()
  registry.register(obj, ref)
  refs[event].push(ref)
}

function register (obj, fn) {
  _register('exit', obj, fn)
}

function registerBeforeExit (obj, fn) {
  _register('beforeExit', obj, fn)
}

function unregister (obj) {
  if (registry === undefined) {
    return
  }
  registry.unregister(obj)
  for (const event of ['exit', 'beforeExit']) {
    refs[event] = refs[event].filter((ref) => {
      const _obj = ref.deref()
      return _obj && _obj !== obj
    })
    uninstall(event)
  }
}

module.exports = {
  register,
  registerBeforeExit,
  unregister
}


/***/ }),

/***/ 5222:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {

var __webpack_unused_export__;
/**
 * Prometheus client
 * @module Prometheus client
 */



exports.register = __nccwpck_require__(1627).globalRegistry;
exports.Registry = __nccwpck_require__(1627);
__webpack_unused_export__ = ({
	configurable: false,
	enumerable: true,
	get() {
		return exports.register.contentType;
	},
	set(value) {
		exports.register.setContentType(value);
	},
});
__webpack_unused_export__ = exports.Registry.PROMETHEUS_CONTENT_TYPE;
__webpack_unused_export__ = exports.Registry.OPENMETRICS_CONTENT_TYPE;
/* unused reexport */ __nccwpck_require__(1539).validateMetricName;

exports.Counter = __nccwpck_require__(8606);
exports.Gauge = __nccwpck_require__(7173);
/* unused reexport */ __nccwpck_require__(5416);
/* unused reexport */ __nccwpck_require__(5910);
/* unused reexport */ __nccwpck_require__(7524);

/* unused reexport */ __nccwpck_require__(964);
/* unused reexport */ __nccwpck_require__(964);

exports.collectDefaultMetrics = __nccwpck_require__(5106);

/* unused reexport */ __nccwpck_require__(5924).aggregators;
/* unused reexport */ __nccwpck_require__(816);


/***/ }),

/***/ 964:
/***/ ((__unused_webpack_module, exports) => {

var __webpack_unused_export__;


__webpack_unused_export__ = (start, width, count) => {
	if (count < 1) {
		throw new Error('Linear buckets needs a positive count');
	}

	const buckets = new Array(count);
	for (let i = 0; i < count; i++) {
		buckets[i] = start + i * width;
	}
	return buckets;
};

__webpack_unused_export__ = (start, factor, count) => {
	if (start <= 0) {
		throw new Error('Exponential buckets needs a positive start');
	}
	if (count < 1) {
		throw new Error('Exponential buckets needs a positive count');
	}
	if (factor <= 1) {
		throw new Error('Exponential buckets needs a factor greater than 1');
	}
	const buckets = new Array(count);
	for (let i = 0; i < count; i++) {
		buckets[i] = start;
		start *= factor;
	}
	return buckets;
};


/***/ }),

/***/ 816:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



/**
 * Extends the Registry class with a `clusterMetrics` method that returns
 * aggregated metrics for all workers.
 *
 * In cluster workers, listens for and responds to requests for metrics by the
 * cluster master.
 */

const Registry = __nccwpck_require__(1627);
const { Grouper } = __nccwpck_require__(9588);
const { aggregators } = __nccwpck_require__(5924);
// We need to lazy-load the 'cluster' module as some application servers -
// namely Passenger - crash when it is imported.
let cluster = () => {
	const data = __nccwpck_require__(9907);
	cluster = () => data;
	return data;
};

const GET_METRICS_REQ = 'prom-client:getMetricsReq';
const GET_METRICS_RES = 'prom-client:getMetricsRes';

let registries = [Registry.globalRegistry];
let requestCtr = 0; // Concurrency control
let listenersAdded = false;
const requests = new Map(); // Pending requests for workers' local metrics.

class AggregatorRegistry extends Registry {
	constructor(regContentType = Registry.PROMETHEUS_CONTENT_TYPE) {
		super(regContentType);
		addListeners();
	}

	/**
	 * Gets aggregated metrics for all workers. The optional callback and
	 * returned Promise resolve with the same value; either may be used.
	 * @return {Promise<string>} Promise that resolves with the aggregated
	 *   metrics.
	 */
	clusterMetrics() {
		const requestId = requestCtr++;

		return new Promise((resolve, reject) => {
			let settled = false;
			function done(err, result) {
				if (settled) return;
				settled = true;
				if (err) reject(err);
				else resolve(result);
			}

			const request = {
				responses: [],
				pending: 0,
				done,
				errorTimeout: setTimeout(() => {
					const err = new Error('Operation timed out.');
					request.done(err);
				}, 5000),
			};
			requests.set(requestId, request);

			const message = {
				type: GET_METRICS_REQ,
				requestId,
			};

			for (const id in cluster().workers) {
				// If the worker exits abruptly, it may still be in the workers
				// list but not able to communicate.
				if (cluster().workers[id].isConnected()) {
					cluster().workers[id].send(message);
					request.pending++;
				}
			}

			if (request.pending === 0) {
				// No workers were up
				clearTimeout(request.errorTimeout);
				process.nextTick(() => done(null, ''));
			}
		});
	}

	get contentType() {
		return super.contentType;
	}

	/**
	 * Creates a new Registry instance from an array of metrics that were
	 * created by `registry.getMetricsAsJSON()`. Metrics are aggregated using
	 * the method specified by their `aggregator` property, or by summation if
	 * `aggregator` is undefined.
	 * @param {Array} metricsArr Array of metrics, each of which created by
	 *   `registry.getMetricsAsJSON()`.
	 * @param {string} registryType content type of the new registry. Defaults
	 * to PROMETHEUS_CONTENT_TYPE.
	 * @return {Registry} aggregated registry.
	 */
	static aggregate(
		metricsArr,
		registryType = Registry.PROMETHEUS_CONTENT_TYPE,
	) {
		const aggregatedRegistry = new Registry();
		const metricsByName = new Grouper();

		aggregatedRegistry.setContentType(registryType);

		// Gather by name
		metricsArr.forEach(metrics => {
			metrics.forEach(metric => {
				metricsByName.add(metric.name, metric);
			});
		});

		// Aggregate gathered metrics.
		metricsByName.forEach(metrics => {
			const aggregatorName = metrics[0].aggregator;
			const aggregatorFn = aggregators[aggregatorName];
			if (typeof aggregatorFn !== 'function') {
				throw new Error(`'${aggregatorName}' is not a defined aggregator.`);
			}
			const aggregatedMetric = aggregatorFn(metrics);
			// NB: The 'omit' aggregator returns undefined.
			if (aggregatedMetric) {
				const aggregatedMetricWrapper = Object.assign(
					{
						get: () => aggregatedMetric,
					},
					aggregatedMetric,
				);
				aggregatedRegistry.registerMetric(aggregatedMetricWrapper);
			}
		});

		return aggregatedRegistry;
	}

	/**
	 * Sets the registry or registries to be aggregated. Call from workers to
	 * use a registry/registries other than the default global registry.
	 * @param {Array<Registry>|Registry} regs Registry or registries to be
	 *   aggregated.
	 * @return {void}
	 */
	static setRegistries(regs) {
		if (!Array.isArray(regs)) regs = [regs];
		regs.forEach(reg => {
			if (!(reg instanceof Registry)) {
				throw new TypeError(`Expected Registry, got ${typeof reg}`);
			}
		});
		registries = regs;
	}
}

/**
 * Adds event listeners for cluster aggregation. Idempotent (safe to call more
 * than once).
 * @return {void}
 */
function addListeners() {
	if (listenersAdded) return;
	listenersAdded = true;

	if (cluster().isMaster) {
		// Listen for worker responses to requests for local metrics
		cluster().on('message', (worker, message) => {
			if (message.type === GET_METRICS_RES) {
				const request = requests.get(message.requestId);

				if (message.error) {
					request.done(new Error(message.error));
					return;
				}

				message.metrics.forEach(registry => request.responses.push(registry));
				request.pending--;

				if (request.pending === 0) {
					// finalize
					requests.delete(message.requestId);
					clearTimeout(request.errorTimeout);

					const registry = AggregatorRegistry.aggregate(request.responses);
					const promString = registry.metrics();
					request.done(null, promString);
				}
			}
		});
	}

	if (cluster().isWorker) {
		// Respond to master's requests for worker's local metrics.
		process.on('message', message => {
			if (message.type === GET_METRICS_REQ) {
				Promise.all(registries.map(r => r.getMetricsAsJSON()))
					.then(metrics => {
						process.send({
							type: GET_METRICS_RES,
							requestId: message.requestId,
							metrics,
						});
					})
					.catch(error => {
						process.send({
							type: GET_METRICS_RES,
							requestId: message.requestId,
							error: error.message,
						});
					});
			}
		});
	}
}

module.exports = AggregatorRegistry;


/***/ }),

/***/ 8606:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

/**
 * Counter metric
 */


const util = __nccwpck_require__(9023);
const {
	hashObject,
	isObject,
	getLabels,
	removeLabels,
	nowTimestamp,
} = __nccwpck_require__(9588);
const { validateLabel } = __nccwpck_require__(1539);
const { Metric } = __nccwpck_require__(2476);
const Exemplar = __nccwpck_require__(9024);

class Counter extends Metric {
	constructor(config) {
		super(config);
		this.type = 'counter';
		this.defaultLabels = {};
		this.defaultValue = 1;
		this.defaultExemplarLabelSet = {};
		if (config.enableExemplars) {
			this.enableExemplars = true;
			this.inc = this.incWithExemplar;
		} else {
			this.inc = this.incWithoutExemplar;
		}
	}

	/**
	 * Increment counter
	 * @param {object} labels - What label you want to be incremented
	 * @param {Number} value - Value to increment, if omitted increment with 1
	 * @returns {object} results - object with information about the inc operation
	 * @returns {string} results.labelHash - hash representation of the labels
	 */
	incWithoutExemplar(labels, value) {
		let hash = '';
		if (isObject(labels)) {
			hash = hashObject(labels, this.sortedLabelNames);
			validateLabel(this.labelNames, labels);
		} else {
			value = labels;
			labels = {};
		}

		if (value && !Number.isFinite(value)) {
			throw new TypeError(`Value is not a valid number: ${util.format(value)}`);
		}
		if (value < 0) {
			throw new Error('It is not possible to decrease a counter');
		}

		if (value === null || value === undefined) value = 1;

		setValue(this.hashMap, value, labels, hash);

		return { labelHash: hash };
	}

	/**
	 * Increment counter with exemplar, same as inc but accepts labels for an
	 * exemplar.
	 * If no label is provided the current exemplar labels are kept unchanged
	 * (defaults to empty set).
	 *
	 * @param {object} incOpts - Object with options about what metric to increase
	 * @param {object} incOpts.labels - What label you want to be incremented,
	 *                                  defaults to null (metric with no labels)
	 * @param {Number} incOpts.value - Value to increment, defaults to 1
	 * @param {object} incOpts.exemplarLabels - Key-value  labels for the
	 *                                          exemplar, defaults to empty set {}
	 * @returns {void}
	 */
	incWithExemplar({
		labels = this.defaultLabels,
		value = this.defaultValue,
		exemplarLabels = this.defaultExemplarLabelSet,
	} = {}) {
		const res = this.incWithoutExemplar(labels, value);
		this.updateExemplar(exemplarLabels, value, res.labelHash);
	}

	updateExemplar(exemplarLabels, value, hash) {
		if (exemplarLabels === this.defaultExemplarLabelSet) return;
		if (!isObject(this.hashMap[hash].exemplar)) {
			this.hashMap[hash].exemplar = new Exemplar();
		}
		this.hashMap[hash].exemplar.validateExemplarLabelSet(exemplarLabels);
		this.hashMap[hash].exemplar.labelSet = exemplarLabels;
		this.hashMap[hash].exemplar.value = value ? value : 1;
		this.hashMap[hash].exemplar.timestamp = nowTimestamp();
	}

	/**
	 * Reset counter
	 * @returns {void}
	 */
	reset() {
		this.hashMap = {};
		if (this.labelNames.length === 0) {
			setValue(this.hashMap, 0);
		}
	}

	async get() {
		if (this.collect) {
			const v = this.collect();
			if (v instanceof Promise) await v;
		}

		return {
			help: this.help,
			name: this.name,
			type: this.type,
			values: Object.values(this.hashMap),
			aggregator: this.aggregator,
		};
	}

	labels(...args) {
		const labels = getLabels(this.labelNames, args) || {};
		return {
			inc: this.inc.bind(this, labels),
		};
	}

	remove(...args) {
		const labels = getLabels(this.labelNames, args) || {};
		validateLabel(this.labelNames, labels);
		return removeLabels.call(this, this.hashMap, labels, this.sortedLabelNames);
	}
}

function setValue(hashMap, value, labels = {}, hash = '') {
	if (hashMap[hash]) {
		hashMap[hash].value += value;
	} else {
		hashMap[hash] = { value, labels };
	}
	return hashMap;
}

module.exports = Counter;


/***/ }),

/***/ 5106:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { isObject } = __nccwpck_require__(9588);

// Default metrics.
const processCpuTotal = __nccwpck_require__(8293);
const processStartTime = __nccwpck_require__(8228);
const osMemoryHeap = __nccwpck_require__(3981);
const processOpenFileDescriptors = __nccwpck_require__(5217);
const processMaxFileDescriptors = __nccwpck_require__(9655);
const eventLoopLag = __nccwpck_require__(4460);
const processHandles = __nccwpck_require__(5490);
const processRequests = __nccwpck_require__(7439);
const processResources = __nccwpck_require__(884);
const heapSizeAndUsed = __nccwpck_require__(2365);
const heapSpacesSizeAndUsed = __nccwpck_require__(3844);
const version = __nccwpck_require__(3344);
const gc = __nccwpck_require__(9336);

const metrics = {
	processCpuTotal,
	processStartTime,
	osMemoryHeap,
	processOpenFileDescriptors,
	processMaxFileDescriptors,
	eventLoopLag,
	...(typeof process.getActiveResourcesInfo === 'function'
		? { processResources }
		: {}),
	processHandles,
	processRequests,
	heapSizeAndUsed,
	heapSpacesSizeAndUsed,
	version,
	gc,
};
const metricsList = Object.keys(metrics);

module.exports = function collectDefaultMetrics(config) {
	if (config !== null && config !== undefined && !isObject(config)) {
		throw new TypeError('config must be null, undefined, or an object');
	}

	config = { eventLoopMonitoringPrecision: 10, ...config };

	for (const metric of Object.values(metrics)) {
		metric(config.register, config);
	}
};

module.exports.metricsList = metricsList;


/***/ }),

/***/ 9024:
/***/ ((module) => {



/**
 * Class representing an OpenMetrics exemplar.
 *
 * @property {object} labelSet
 * @property {number} value
 * @property {number} [timestamp]
 * */
class Exemplar {
	constructor(labelSet = {}, value = null) {
		this.labelSet = labelSet;
		this.value = value;
	}

	/**
	 * Validation for the label set format.
	 * https://github.com/OpenObservability/OpenMetrics/blob/d99b705f611b75fec8f450b05e344e02eea6921d/specification/OpenMetrics.md#exemplars
	 *
	 * @param {object} labelSet - Exemplar labels.
	 * @throws {RangeError}
	 * @return {void}
	 */
	validateExemplarLabelSet(labelSet) {
		let res = '';
		for (const [labelName, labelValue] of Object.entries(labelSet)) {
			res += `${labelName}${labelValue}`;
		}
		if (res.length > 128) {
			throw new RangeError(
				'Label set size must be smaller than 128 UTF-8 chars',
			);
		}
	}
}

module.exports = Exemplar;


/***/ }),

/***/ 7173:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

/**
 * Gauge metric
 */


const util = __nccwpck_require__(9023);

const {
	setValue,
	setValueDelta,
	getLabels,
	hashObject,
	isObject,
	removeLabels,
} = __nccwpck_require__(9588);
const { validateLabel } = __nccwpck_require__(1539);
const { Metric } = __nccwpck_require__(2476);

class Gauge extends Metric {
	constructor(config) {
		super(config);
		this.type = 'gauge';
	}

	/**
	 * Set a gauge to a value
	 * @param {object} labels - Object with labels and their values
	 * @param {Number} value - Value to set the gauge to, must be positive
	 * @returns {void}
	 */
	set(labels, value) {
		value = getValueArg(labels, value);
		labels = getLabelArg(labels);
		set(this, labels, value);
	}

	/**
	 * Reset gauge
	 * @returns {void}
	 */
	reset() {
		this.hashMap = {};
		if (this.labelNames.length === 0) {
			setValue(this.hashMap, 0, {});
		}
	}

	/**
	 * Increment a gauge value
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @param {Number} value - Value to increment - if omitted, increment with 1
	 * @returns {void}
	 */
	inc(labels, value) {
		value = getValueArg(labels, value);
		labels = getLabelArg(labels);
		if (value === undefined) value = 1;
		setDelta(this, labels, value);
	}

	/**
	 * Decrement a gauge value
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @param {Number} value - Value to decrement - if omitted, decrement with 1
	 * @returns {void}
	 */
	dec(labels, value) {
		value = getValueArg(labels, value);
		labels = getLabelArg(labels);
		if (value === undefined) value = 1;
		setDelta(this, labels, -value);
	}

	/**
	 * Set the gauge to current unix epoch
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @returns {void}
	 */
	setToCurrentTime(labels) {
		const now = Date.now() / 1000;
		if (labels === undefined) {
			this.set(now);
		} else {
			this.set(labels, now);
		}
	}

	/**
	 * Start a timer
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @returns {function} - Invoke this function to set the duration in seconds since you started the timer.
	 * @example
	 * var done = gauge.startTimer();
	 * makeXHRRequest(function(err, response) {
	 *	done(); //Duration of the request will be saved
	 * });
	 */
	startTimer(labels) {
		const start = process.hrtime();
		return endLabels => {
			const delta = process.hrtime(start);
			const value = delta[0] + delta[1] / 1e9;
			this.set(Object.assign({}, labels, endLabels), value);
			return value;
		};
	}

	async get() {
		if (this.collect) {
			const v = this.collect();
			if (v instanceof Promise) await v;
		}
		return {
			help: this.help,
			name: this.name,
			type: this.type,
			values: Object.values(this.hashMap),
			aggregator: this.aggregator,
		};
	}

	_getValue(labels) {
		const hash = hashObject(labels || {}, this.sortedLabelNames);
		return this.hashMap[hash] ? this.hashMap[hash].value : 0;
	}

	labels(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		return {
			inc: this.inc.bind(this, labels),
			dec: this.dec.bind(this, labels),
			set: this.set.bind(this, labels),
			setToCurrentTime: this.setToCurrentTime.bind(this, labels),
			startTimer: this.startTimer.bind(this, labels),
		};
	}

	remove(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		removeLabels.call(this, this.hashMap, labels, this.sortedLabelNames);
	}
}

function set(gauge, labels, value) {
	if (typeof value !== 'number') {
		throw new TypeError(`Value is not a valid number: ${util.format(value)}`);
	}

	validateLabel(gauge.labelNames, labels);
	setValue(gauge.hashMap, value, labels);
}

function setDelta(gauge, labels, delta) {
	if (typeof delta !== 'number') {
		throw new TypeError(`Delta is not a valid number: ${util.format(delta)}`);
	}

	validateLabel(gauge.labelNames, labels);
	const hash = hashObject(labels, gauge.sortedLabelNames);
	setValueDelta(gauge.hashMap, delta, labels, hash);
}

function getLabelArg(labels) {
	return isObject(labels) ? labels : {};
}

function getValueArg(labels, value) {
	return isObject(labels) ? value : labels;
}

module.exports = Gauge;


/***/ }),

/***/ 5416:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

/**
 * Histogram
 */


const util = __nccwpck_require__(9023);
const {
	getLabels,
	hashObject,
	isObject,
	removeLabels,
	nowTimestamp,
} = __nccwpck_require__(9588);
const { validateLabel } = __nccwpck_require__(1539);
const { Metric } = __nccwpck_require__(2476);
const Exemplar = __nccwpck_require__(9024);

class Histogram extends Metric {
	constructor(config) {
		super(config, {
			buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
		});

		this.type = 'histogram';
		this.defaultLabels = {};
		this.defaultExemplarLabelSet = {};
		this.enableExemplars = false;

		for (const label of this.labelNames) {
			if (label === 'le') {
				throw new Error('le is a reserved label keyword');
			}
		}

		this.upperBounds = this.buckets;
		this.bucketValues = this.upperBounds.reduce((acc, upperBound) => {
			acc[upperBound] = 0;
			return acc;
		}, {});

		if (config.enableExemplars) {
			this.enableExemplars = true;
			this.bucketExemplars = this.upperBounds.reduce((acc, upperBound) => {
				acc[upperBound] = null;
				return acc;
			}, {});
			Object.freeze(this.bucketExemplars);
			this.observe = this.observeWithExemplar;
		} else {
			this.observe = this.observeWithoutExemplar;
		}

		Object.freeze(this.bucketValues);
		Object.freeze(this.upperBounds);

		if (this.labelNames.length === 0) {
			this.hashMap = {
				[hashObject({})]: createBaseValues(
					{},
					this.bucketValues,
					this.bucketExemplars,
				),
			};
		}
	}

	/**
	 * Observe a value in histogram
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @param {Number} value - Value to observe in the histogram
	 * @returns {void}
	 */
	observeWithoutExemplar(labels, value) {
		observe.call(this, labels === 0 ? 0 : labels || {})(value);
	}

	observeWithExemplar({
		labels = this.defaultLabels,
		value,
		exemplarLabels = this.defaultExemplarLabelSet,
	} = {}) {
		observe.call(this, labels === 0 ? 0 : labels || {})(value);
		this.updateExemplar(labels, value, exemplarLabels);
	}

	updateExemplar(labels, value, exemplarLabels) {
		if (Object.keys(exemplarLabels).length === 0) return;
		const hash = hashObject(labels, this.sortedLabelNames);
		const bound = findBound(this.upperBounds, value);
		const { bucketExemplars } = this.hashMap[hash];
		let exemplar = bucketExemplars[bound];
		if (!isObject(exemplar)) {
			exemplar = new Exemplar();
			bucketExemplars[bound] = exemplar;
		}
		exemplar.validateExemplarLabelSet(exemplarLabels);
		exemplar.labelSet = exemplarLabels;
		exemplar.value = value;
		exemplar.timestamp = nowTimestamp();
	}

	async get() {
		const data = await this.getForPromString();
		data.values = data.values.map(splayLabels);
		return data;
	}

	async getForPromString() {
		if (this.collect) {
			const v = this.collect();
			if (v instanceof Promise) await v;
		}
		const data = Object.values(this.hashMap);
		const values = data
			.map(extractBucketValuesForExport(this))
			.reduce(addSumAndCountForExport(this), []);

		return {
			name: this.name,
			help: this.help,
			type: this.type,
			values,
			aggregator: this.aggregator,
		};
	}

	reset() {
		this.hashMap = {};
	}

	/**
	 * Initialize the metrics for the given combination of labels to zero
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @returns {void}
	 */
	zero(labels) {
		const hash = hashObject(labels, this.sortedLabelNames);
		this.hashMap[hash] = createBaseValues(
			labels,
			this.bucketValues,
			this.bucketExemplars,
		);
	}

	/**
	 * Start a timer that could be used to logging durations
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @param {object} exemplarLabels - Object with labels for exemplar where key is the label key and value is label value. Can only be one level deep
	 * @returns {function} - Function to invoke when you want to stop the timer and observe the duration in seconds
	 * @example
	 * var end = histogram.startTimer();
	 * makeExpensiveXHRRequest(function(err, res) {
	 * 	const duration = end(); //Observe the duration of expensiveXHRRequest and returns duration in seconds
	 * 	console.log('Duration', duration);
	 * });
	 */
	startTimer(labels, exemplarLabels) {
		return this.enableExemplars
			? startTimerWithExemplar.call(this, labels, exemplarLabels)()
			: startTimer.call(this, labels)();
	}

	labels(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		return {
			observe: observe.call(this, labels),
			startTimer: startTimer.call(this, labels),
		};
	}

	remove(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		removeLabels.call(this, this.hashMap, labels, this.sortedLabelNames);
	}
}

function startTimer(startLabels) {
	return () => {
		const start = process.hrtime();
		return endLabels => {
			const delta = process.hrtime(start);
			const value = delta[0] + delta[1] / 1e9;
			this.observe(Object.assign({}, startLabels, endLabels), value);
			return value;
		};
	};
}

function startTimerWithExemplar(startLabels, startExemplarLabels) {
	return () => {
		const start = process.hrtime();
		return (endLabels, endExemplarLabels) => {
			const delta = process.hrtime(start);
			const value = delta[0] + delta[1] / 1e9;
			this.observe({
				labels: Object.assign({}, startLabels, endLabels),
				value,
				exemplarLabels: Object.assign(
					{},
					startExemplarLabels,
					endExemplarLabels,
				),
			});
			return value;
		};
	};
}

function setValuePair(labels, value, metricName, exemplar, sharedLabels = {}) {
	return {
		labels,
		sharedLabels,
		value,
		metricName,
		exemplar,
	};
}

function findBound(upperBounds, value) {
	for (let i = 0; i < upperBounds.length; i++) {
		const bound = upperBounds[i];
		if (value <= bound) {
			return bound;
		}
	}
	return -1;
}

function observe(labels) {
	return value => {
		const labelValuePair = convertLabelsAndValues(labels, value);

		validateLabel(this.labelNames, labelValuePair.labels);
		if (!Number.isFinite(labelValuePair.value)) {
			throw new TypeError(
				`Value is not a valid number: ${util.format(labelValuePair.value)}`,
			);
		}

		const hash = hashObject(labelValuePair.labels, this.sortedLabelNames);
		let valueFromMap = this.hashMap[hash];
		if (!valueFromMap) {
			valueFromMap = createBaseValues(
				labelValuePair.labels,
				this.bucketValues,
				this.bucketExemplars,
			);
		}

		const b = findBound(this.upperBounds, labelValuePair.value);

		valueFromMap.sum += labelValuePair.value;
		valueFromMap.count += 1;

		if (Object.prototype.hasOwnProperty.call(valueFromMap.bucketValues, b)) {
			valueFromMap.bucketValues[b] += 1;
		}

		this.hashMap[hash] = valueFromMap;
	};
}

function createBaseValues(labels, bucketValues, bucketExemplars) {
	const result = {
		labels,
		bucketValues: { ...bucketValues },
		sum: 0,
		count: 0,
	};
	if (bucketExemplars) {
		result.bucketExemplars = { ...bucketExemplars };
	}
	return result;
}

function convertLabelsAndValues(labels, value) {
	return isObject(labels)
		? {
				labels,
				value,
			}
		: {
				value: labels,
				labels: {},
			};
}

function extractBucketValuesForExport(histogram) {
	const name = `${histogram.name}_bucket`;
	return bucketData => {
		let acc = 0;
		const buckets = histogram.upperBounds.map(upperBound => {
			acc += bucketData.bucketValues[upperBound];
			return setValuePair(
				{ le: upperBound },
				acc,
				name,
				bucketData.bucketExemplars
					? bucketData.bucketExemplars[upperBound]
					: null,
				bucketData.labels,
			);
		});
		return { buckets, data: bucketData };
	};
}

function addSumAndCountForExport(histogram) {
	return (acc, d) => {
		acc.push(...d.buckets);

		const infLabel = { le: '+Inf' };
		acc.push(
			setValuePair(
				infLabel,
				d.data.count,
				`${histogram.name}_bucket`,
				d.data.bucketExemplars ? d.data.bucketExemplars['-1'] : null,
				d.data.labels,
			),
			setValuePair(
				{},
				d.data.sum,
				`${histogram.name}_sum`,
				undefined,
				d.data.labels,
			),
			setValuePair(
				{},
				d.data.count,
				`${histogram.name}_count`,
				undefined,
				d.data.labels,
			),
		);
		return acc;
	};
}

function splayLabels(bucket) {
	const { sharedLabels, labels, ...newBucket } = bucket;
	for (const label of Object.keys(sharedLabels)) {
		labels[label] = sharedLabels[label];
	}
	newBucket.labels = labels;
	return newBucket;
}

module.exports = Histogram;


/***/ }),

/***/ 2476:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Registry = __nccwpck_require__(1627);
const { isObject } = __nccwpck_require__(9588);
const { validateMetricName, validateLabelName } = __nccwpck_require__(1539);

/**
 * @abstract
 */
class Metric {
	constructor(config, defaults = {}) {
		if (!isObject(config)) {
			throw new TypeError('constructor expected a config object');
		}
		Object.assign(
			this,
			{
				labelNames: [],
				registers: [Registry.globalRegistry],
				aggregator: 'sum',
				enableExemplars: false,
			},
			defaults,
			config,
		);
		if (!this.registers) {
			// in case config.registers is `undefined`
			this.registers = [Registry.globalRegistry];
		}
		if (!this.help) {
			throw new Error('Missing mandatory help parameter');
		}
		if (!this.name) {
			throw new Error('Missing mandatory name parameter');
		}
		if (!validateMetricName(this.name)) {
			throw new Error('Invalid metric name');
		}
		if (!validateLabelName(this.labelNames)) {
			throw new Error('Invalid label name');
		}

		if (this.collect && typeof this.collect !== 'function') {
			throw new Error('Optional "collect" parameter must be a function');
		}

		if (this.labelNames) {
			this.sortedLabelNames = [...this.labelNames].sort();
		} else {
			this.sortedLabelNames = [];
		}

		this.reset();

		for (const register of this.registers) {
			if (
				this.enableExemplars &&
				register.contentType === Registry.PROMETHEUS_CONTENT_TYPE
			) {
				throw new TypeError(
					'Exemplars are supported only on OpenMetrics registries',
				);
			}
			register.registerMetric(this);
		}
	}

	reset() {
		/* abstract */
	}
}

module.exports = { Metric };


/***/ }),

/***/ 5924:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



const { Grouper, hashObject } = __nccwpck_require__(9588);

/**
 * Returns a new function that applies the `aggregatorFn` to the values.
 * @param {Function} aggregatorFn function to apply to values.
 * @return {Function} aggregator function
 */
function AggregatorFactory(aggregatorFn) {
	return metrics => {
		if (metrics.length === 0) return;
		const result = {
			help: metrics[0].help,
			name: metrics[0].name,
			type: metrics[0].type,
			values: [],
			aggregator: metrics[0].aggregator,
		};
		// Gather metrics by metricName and labels.
		const byLabels = new Grouper();
		metrics.forEach(metric => {
			metric.values.forEach(value => {
				const key = hashObject(value.labels);
				byLabels.add(`${value.metricName}_${key}`, value);
			});
		});
		// Apply aggregator function to gathered metrics.
		byLabels.forEach(values => {
			if (values.length === 0) return;
			const valObj = {
				value: aggregatorFn(values),
				labels: values[0].labels,
			};
			if (values[0].metricName) {
				valObj.metricName = values[0].metricName;
			}
			// NB: Timestamps are omitted.
			result.values.push(valObj);
		});
		return result;
	};
}
// Export for users to define their own aggregation methods.
exports.AggregatorFactory = AggregatorFactory;

/**
 * Functions that can be used to aggregate metrics from multiple registries.
 */
exports.aggregators = {
	/**
	 * @return The sum of values.
	 */
	sum: AggregatorFactory(v => v.reduce((p, c) => p + c.value, 0)),
	/**
	 * @return The first value.
	 */
	first: AggregatorFactory(v => v[0].value),
	/**
	 * @return {undefined} Undefined; omits the metric.
	 */
	omit: () => {},
	/**
	 * @return The arithmetic mean of the values.
	 */
	average: AggregatorFactory(
		v => v.reduce((p, c) => p + c.value, 0) / v.length,
	),
	/**
	 * @return The minimum of the values.
	 */
	min: AggregatorFactory(v =>
		v.reduce((p, c) => Math.min(p, c.value), Infinity),
	),
	/**
	 * @return The maximum of the values.
	 */
	max: AggregatorFactory(v =>
		v.reduce((p, c) => Math.max(p, c.value), -Infinity),
	),
};


/***/ }),

/***/ 4460:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);

// Check if perf_hooks module is available
let perf_hooks;
try {
	perf_hooks = __nccwpck_require__(2987);
} catch {
	// node version is too old
}

// Reported always.
const NODEJS_EVENTLOOP_LAG = 'nodejs_eventloop_lag_seconds';

// Reported only when perf_hooks is available.
const NODEJS_EVENTLOOP_LAG_MIN = 'nodejs_eventloop_lag_min_seconds';
const NODEJS_EVENTLOOP_LAG_MAX = 'nodejs_eventloop_lag_max_seconds';
const NODEJS_EVENTLOOP_LAG_MEAN = 'nodejs_eventloop_lag_mean_seconds';
const NODEJS_EVENTLOOP_LAG_STDDEV = 'nodejs_eventloop_lag_stddev_seconds';
const NODEJS_EVENTLOOP_LAG_P50 = 'nodejs_eventloop_lag_p50_seconds';
const NODEJS_EVENTLOOP_LAG_P90 = 'nodejs_eventloop_lag_p90_seconds';
const NODEJS_EVENTLOOP_LAG_P99 = 'nodejs_eventloop_lag_p99_seconds';

function reportEventloopLag(start, gauge, labels) {
	const delta = process.hrtime(start);
	const nanosec = delta[0] * 1e9 + delta[1];
	const seconds = nanosec / 1e9;

	gauge.set(labels, seconds);
}

module.exports = (registry, config = {}) => {
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);
	const registers = registry ? [registry] : undefined;

	let collect = () => {
		const start = process.hrtime();
		setImmediate(reportEventloopLag, start, lag, labels);
	};

	if (perf_hooks && perf_hooks.monitorEventLoopDelay) {
		try {
			const histogram = perf_hooks.monitorEventLoopDelay({
				resolution: config.eventLoopMonitoringPrecision,
			});
			histogram.enable();

			collect = () => {
				const start = process.hrtime();
				setImmediate(reportEventloopLag, start, lag, labels);

				lagMin.set(labels, histogram.min / 1e9);
				lagMax.set(labels, histogram.max / 1e9);
				lagMean.set(labels, histogram.mean / 1e9);
				lagStddev.set(labels, histogram.stddev / 1e9);
				lagP50.set(labels, histogram.percentile(50) / 1e9);
				lagP90.set(labels, histogram.percentile(90) / 1e9);
				lagP99.set(labels, histogram.percentile(99) / 1e9);

				histogram.reset();
			};
		} catch (e) {
			if (e.code === 'ERR_NOT_IMPLEMENTED') {
				return; // Bun
			}

			throw e;
		}
	}

	const lag = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG,
		help: 'Lag of event loop in seconds.',
		registers,
		labelNames,
		aggregator: 'average',
		// Use this one metric's `collect` to set all metrics' values.
		collect,
	});
	const lagMin = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_MIN,
		help: 'The minimum recorded event loop delay.',
		registers,
		labelNames,
		aggregator: 'min',
	});
	const lagMax = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_MAX,
		help: 'The maximum recorded event loop delay.',
		registers,
		labelNames,
		aggregator: 'max',
	});
	const lagMean = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_MEAN,
		help: 'The mean of the recorded event loop delays.',
		registers,
		labelNames,
		aggregator: 'average',
	});
	const lagStddev = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_STDDEV,
		help: 'The standard deviation of the recorded event loop delays.',
		registers,
		labelNames,
		aggregator: 'average',
	});
	const lagP50 = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_P50,
		help: 'The 50th percentile of the recorded event loop delays.',
		registers,
		labelNames,
		aggregator: 'average',
	});
	const lagP90 = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_P90,
		help: 'The 90th percentile of the recorded event loop delays.',
		registers,
		labelNames,
		aggregator: 'average',
	});
	const lagP99 = new Gauge({
		name: namePrefix + NODEJS_EVENTLOOP_LAG_P99,
		help: 'The 99th percentile of the recorded event loop delays.',
		registers,
		labelNames,
		aggregator: 'average',
	});
};

module.exports.metricNames = [
	NODEJS_EVENTLOOP_LAG,
	NODEJS_EVENTLOOP_LAG_MIN,
	NODEJS_EVENTLOOP_LAG_MAX,
	NODEJS_EVENTLOOP_LAG_MEAN,
	NODEJS_EVENTLOOP_LAG_STDDEV,
	NODEJS_EVENTLOOP_LAG_P50,
	NODEJS_EVENTLOOP_LAG_P90,
	NODEJS_EVENTLOOP_LAG_P99,
];


/***/ }),

/***/ 9336:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


const Histogram = __nccwpck_require__(5416);

let perf_hooks;

try {
	// eslint-disable-next-line
	perf_hooks = __nccwpck_require__(2987);
} catch {
	// node version is too old
}

const NODEJS_GC_DURATION_SECONDS = 'nodejs_gc_duration_seconds';
const DEFAULT_GC_DURATION_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];

const kinds = [];

if (perf_hooks && perf_hooks.constants) {
	kinds[perf_hooks.constants.NODE_PERFORMANCE_GC_MAJOR] = 'major';
	kinds[perf_hooks.constants.NODE_PERFORMANCE_GC_MINOR] = 'minor';
	kinds[perf_hooks.constants.NODE_PERFORMANCE_GC_INCREMENTAL] = 'incremental';
	kinds[perf_hooks.constants.NODE_PERFORMANCE_GC_WEAKCB] = 'weakcb';
}

module.exports = (registry, config = {}) => {
	if (!perf_hooks) {
		return;
	}

	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);
	const buckets = config.gcDurationBuckets
		? config.gcDurationBuckets
		: DEFAULT_GC_DURATION_BUCKETS;
	const gcHistogram = new Histogram({
		name: namePrefix + NODEJS_GC_DURATION_SECONDS,
		help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
		labelNames: ['kind', ...labelNames],
		enableExemplars: false,
		buckets,
		registers: registry ? [registry] : undefined,
	});

	const obs = new perf_hooks.PerformanceObserver(list => {
		const entry = list.getEntries()[0];
		// Node < 16 uses entry.kind
		// Node >= 16 uses entry.detail.kind
		// See: https://nodejs.org/docs/latest-v16.x/api/deprecations.html#deprecations_dep0152_extension_performanceentry_properties
		const kind = entry.detail ? kinds[entry.detail.kind] : kinds[entry.kind];
		// Convert duration from milliseconds to seconds
		gcHistogram.observe(Object.assign({ kind }, labels), entry.duration / 1000);
	});

	obs.observe({ entryTypes: ['gc'] });
};

module.exports.metricNames = [NODEJS_GC_DURATION_SECONDS];


/***/ }),

/***/ 2365:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const safeMemoryUsage = __nccwpck_require__(1315);

const NODEJS_HEAP_SIZE_TOTAL = 'nodejs_heap_size_total_bytes';
const NODEJS_HEAP_SIZE_USED = 'nodejs_heap_size_used_bytes';
const NODEJS_EXTERNAL_MEMORY = 'nodejs_external_memory_bytes';

module.exports = (registry, config = {}) => {
	if (typeof process.memoryUsage !== 'function') {
		return;
	}
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	const registers = registry ? [registry] : undefined;
	const namePrefix = config.prefix ? config.prefix : '';
	const collect = () => {
		const memUsage = safeMemoryUsage();
		if (memUsage) {
			heapSizeTotal.set(labels, memUsage.heapTotal);
			heapSizeUsed.set(labels, memUsage.heapUsed);
			if (memUsage.external !== undefined) {
				externalMemUsed.set(labels, memUsage.external);
			}
		}
	};

	const heapSizeTotal = new Gauge({
		name: namePrefix + NODEJS_HEAP_SIZE_TOTAL,
		help: 'Process heap size from Node.js in bytes.',
		registers,
		labelNames,
		// Use this one metric's `collect` to set all metrics' values.
		collect,
	});
	const heapSizeUsed = new Gauge({
		name: namePrefix + NODEJS_HEAP_SIZE_USED,
		help: 'Process heap size used from Node.js in bytes.',
		registers,
		labelNames,
	});
	const externalMemUsed = new Gauge({
		name: namePrefix + NODEJS_EXTERNAL_MEMORY,
		help: 'Node.js external memory size in bytes.',
		registers,
		labelNames,
	});
};

module.exports.metricNames = [
	NODEJS_HEAP_SIZE_TOTAL,
	NODEJS_HEAP_SIZE_USED,
	NODEJS_EXTERNAL_MEMORY,
];


/***/ }),

/***/ 3844:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const v8 = __nccwpck_require__(1493);

const METRICS = ['total', 'used', 'available'];
const NODEJS_HEAP_SIZE = {};

METRICS.forEach(metricType => {
	NODEJS_HEAP_SIZE[metricType] = `nodejs_heap_space_size_${metricType}_bytes`;
});

module.exports = (registry, config = {}) => {
	try {
		v8.getHeapSpaceStatistics();
	} catch (e) {
		if (e.code === 'ERR_NOT_IMPLEMENTED') {
			return; // Bun
		}
		throw e;
	}
	const registers = registry ? [registry] : undefined;
	const namePrefix = config.prefix ? config.prefix : '';

	const labels = config.labels ? config.labels : {};
	const labelNames = ['space', ...Object.keys(labels)];

	const gauges = {};

	METRICS.forEach(metricType => {
		gauges[metricType] = new Gauge({
			name: namePrefix + NODEJS_HEAP_SIZE[metricType],
			help: `Process heap space size ${metricType} from Node.js in bytes.`,
			labelNames,
			registers,
		});
	});

	// Use this one metric's `collect` to set all metrics' values.
	gauges.total.collect = () => {
		for (const space of v8.getHeapSpaceStatistics()) {
			const spaceName = space.space_name.substr(
				0,
				space.space_name.indexOf('_space'),
			);

			gauges.total.set({ space: spaceName, ...labels }, space.space_size);
			gauges.used.set({ space: spaceName, ...labels }, space.space_used_size);
			gauges.available.set(
				{ space: spaceName, ...labels },
				space.space_available_size,
			);
		}
	};
};

module.exports.metricNames = Object.values(NODEJS_HEAP_SIZE);


/***/ }),

/***/ 7965:
/***/ ((module) => {



function aggregateByObjectName(list) {
	const data = {};

	for (let i = 0; i < list.length; i++) {
		const listElement = list[i];

		if (!listElement || typeof listElement.constructor === 'undefined') {
			continue;
		}

		if (Object.hasOwnProperty.call(data, listElement.constructor.name)) {
			data[listElement.constructor.name] += 1;
		} else {
			data[listElement.constructor.name] = 1;
		}
	}
	return data;
}

function updateMetrics(gauge, data, labels) {
	gauge.reset();
	for (const key in data) {
		gauge.set(Object.assign({ type: key }, labels || {}), data[key]);
	}
}

module.exports = {
	aggregateByObjectName,
	updateMetrics,
};


/***/ }),

/***/ 1315:
/***/ ((module) => {



// process.memoryUsage() can throw on some platforms, see #67
function safeMemoryUsage() {
	try {
		return process.memoryUsage();
	} catch {
		return;
	}
}

module.exports = safeMemoryUsage;


/***/ }),

/***/ 3981:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const linuxVariant = __nccwpck_require__(7567);
const safeMemoryUsage = __nccwpck_require__(1315);

const PROCESS_RESIDENT_MEMORY = 'process_resident_memory_bytes';

function notLinuxVariant(registry, config = {}) {
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + PROCESS_RESIDENT_MEMORY,
		help: 'Resident memory size in bytes.',
		registers: registry ? [registry] : undefined,
		labelNames,
		collect() {
			const memUsage = safeMemoryUsage();

			// I don't think the other things returned from `process.memoryUsage()` is relevant to a standard export
			if (memUsage) {
				this.set(labels, memUsage.rss);
			}
		},
	});
}

module.exports = (registry, config) =>
	process.platform === 'linux'
		? linuxVariant(registry, config)
		: notLinuxVariant(registry, config);

module.exports.metricNames =
	process.platform === 'linux'
		? linuxVariant.metricNames
		: [PROCESS_RESIDENT_MEMORY];


/***/ }),

/***/ 7567:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const fs = __nccwpck_require__(9896);

const values = ['VmSize', 'VmRSS', 'VmData'];

const PROCESS_RESIDENT_MEMORY = 'process_resident_memory_bytes';
const PROCESS_VIRTUAL_MEMORY = 'process_virtual_memory_bytes';
const PROCESS_HEAP = 'process_heap_bytes';

function structureOutput(input) {
	return input.split('\n').reduce((acc, string) => {
		if (!values.some(value => string.startsWith(value))) {
			return acc;
		}

		const split = string.split(':');

		// Get the value
		let value = split[1].trim();
		// Remove trailing ` kb`
		value = value.substr(0, value.length - 3);
		// Make it into a number in bytes bytes
		value = Number(value) * 1024;

		acc[split[0]] = value;

		return acc;
	}, {});
}

module.exports = (registry, config = {}) => {
	const registers = registry ? [registry] : undefined;
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	const residentMemGauge = new Gauge({
		name: namePrefix + PROCESS_RESIDENT_MEMORY,
		help: 'Resident memory size in bytes.',
		registers,
		labelNames,
		// Use this one metric's `collect` to set all metrics' values.
		collect() {
			try {
				// Sync I/O is often problematic, but /proc isn't really I/O, it
				// a virtual filesystem that maps directly to in-kernel data
				// structures and never blocks.
				//
				// Node.js/libuv do this already for process.memoryUsage(), see:
				// - https://github.com/libuv/libuv/blob/a629688008694ed8022269e66826d4d6ec688b83/src/unix/linux-core.c#L506-L523
				const stat = fs.readFileSync('/proc/self/status', 'utf8');
				const structuredOutput = structureOutput(stat);

				residentMemGauge.set(labels, structuredOutput.VmRSS);
				virtualMemGauge.set(labels, structuredOutput.VmSize);
				heapSizeMemGauge.set(labels, structuredOutput.VmData);
			} catch {
				// noop
			}
		},
	});
	const virtualMemGauge = new Gauge({
		name: namePrefix + PROCESS_VIRTUAL_MEMORY,
		help: 'Virtual memory size in bytes.',
		registers,
		labelNames,
	});
	const heapSizeMemGauge = new Gauge({
		name: namePrefix + PROCESS_HEAP,
		help: 'Process heap size in bytes.',
		registers,
		labelNames,
	});
};

module.exports.metricNames = [
	PROCESS_RESIDENT_MEMORY,
	PROCESS_VIRTUAL_MEMORY,
	PROCESS_HEAP,
];


/***/ }),

/***/ 8293:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const OtelApi = __nccwpck_require__(3914);
const Counter = __nccwpck_require__(8606);

const PROCESS_CPU_USER_SECONDS = 'process_cpu_user_seconds_total';
const PROCESS_CPU_SYSTEM_SECONDS = 'process_cpu_system_seconds_total';
const PROCESS_CPU_SECONDS = 'process_cpu_seconds_total';

module.exports = (registry, config = {}) => {
	const registers = registry ? [registry] : undefined;
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const exemplars = config.enableExemplars ? config.enableExemplars : false;
	const labelNames = Object.keys(labels);

	let lastCpuUsage = process.cpuUsage();

	const cpuUserUsageCounter = new Counter({
		name: namePrefix + PROCESS_CPU_USER_SECONDS,
		help: 'Total user CPU time spent in seconds.',
		enableExemplars: exemplars,
		registers,
		labelNames,
		// Use this one metric's `collect` to set all metrics' values.
		collect() {
			const cpuUsage = process.cpuUsage();

			const userUsageMicros = cpuUsage.user - lastCpuUsage.user;
			const systemUsageMicros = cpuUsage.system - lastCpuUsage.system;

			lastCpuUsage = cpuUsage;

			if (this.enableExemplars) {
				let exemplarLabels = {};
				const currentSpan = OtelApi.trace.getSpan(OtelApi.context.active());
				if (currentSpan) {
					exemplarLabels = {
						traceId: currentSpan.spanContext().traceId,
						spanId: currentSpan.spanContext().spanId,
					};
				}
				cpuUserUsageCounter.inc({
					labels,
					value: userUsageMicros / 1e6,
					exemplarLabels,
				});
				cpuSystemUsageCounter.inc({
					labels,
					value: systemUsageMicros / 1e6,
					exemplarLabels,
				});
				cpuUsageCounter.inc({
					labels,
					value: (userUsageMicros + systemUsageMicros) / 1e6,
					exemplarLabels,
				});
			} else {
				cpuUserUsageCounter.inc(labels, userUsageMicros / 1e6);
				cpuSystemUsageCounter.inc(labels, systemUsageMicros / 1e6);
				cpuUsageCounter.inc(
					labels,
					(userUsageMicros + systemUsageMicros) / 1e6,
				);
			}
		},
	});
	const cpuSystemUsageCounter = new Counter({
		name: namePrefix + PROCESS_CPU_SYSTEM_SECONDS,
		help: 'Total system CPU time spent in seconds.',
		enableExemplars: exemplars,
		registers,
		labelNames,
	});
	const cpuUsageCounter = new Counter({
		name: namePrefix + PROCESS_CPU_SECONDS,
		help: 'Total user and system CPU time spent in seconds.',
		enableExemplars: exemplars,
		registers,
		labelNames,
	});
};

module.exports.metricNames = [
	PROCESS_CPU_USER_SECONDS,
	PROCESS_CPU_SYSTEM_SECONDS,
	PROCESS_CPU_SECONDS,
];


/***/ }),

/***/ 5490:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { aggregateByObjectName } = __nccwpck_require__(7965);
const { updateMetrics } = __nccwpck_require__(7965);
const Gauge = __nccwpck_require__(7173);

const NODEJS_ACTIVE_HANDLES = 'nodejs_active_handles';
const NODEJS_ACTIVE_HANDLES_TOTAL = 'nodejs_active_handles_total';

module.exports = (registry, config = {}) => {
	// Don't do anything if the function is removed in later nodes (exists in node@6-12...)
	if (typeof process._getActiveHandles !== 'function') {
		return;
	}

	const registers = registry ? [registry] : undefined;
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_HANDLES,
		help: 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
		labelNames: ['type', ...labelNames],
		registers,
		collect() {
			const handles = process._getActiveHandles();
			updateMetrics(this, aggregateByObjectName(handles), labels);
		},
	});
	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_HANDLES_TOTAL,
		help: 'Total number of active handles.',
		registers,
		labelNames,
		collect() {
			const handles = process._getActiveHandles();
			this.set(labels, handles.length);
		},
	});
};

module.exports.metricNames = [
	NODEJS_ACTIVE_HANDLES,
	NODEJS_ACTIVE_HANDLES_TOTAL,
];


/***/ }),

/***/ 9655:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const fs = __nccwpck_require__(9896);

const PROCESS_MAX_FDS = 'process_max_fds';

let maxFds;

module.exports = (registry, config = {}) => {
	if (maxFds === undefined) {
		// This will fail if a linux-like procfs is not available.
		try {
			const limits = fs.readFileSync('/proc/self/limits', 'utf8');
			const lines = limits.split('\n');
			for (const line of lines) {
				if (line.startsWith('Max open files')) {
					const parts = line.split(/  +/);
					maxFds = Number(parts[1]);
					break;
				}
			}
		} catch {
			return;
		}
	}

	if (maxFds === undefined) return;

	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + PROCESS_MAX_FDS,
		help: 'Maximum number of open file descriptors.',
		registers: registry ? [registry] : undefined,
		labelNames,
		collect() {
			if (maxFds !== undefined) this.set(labels, maxFds);
		},
	});
};

module.exports.metricNames = [PROCESS_MAX_FDS];


/***/ }),

/***/ 5217:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const fs = __nccwpck_require__(9896);
const process = __nccwpck_require__(932);

const PROCESS_OPEN_FDS = 'process_open_fds';

module.exports = (registry, config = {}) => {
	if (process.platform !== 'linux') {
		return;
	}

	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + PROCESS_OPEN_FDS,
		help: 'Number of open file descriptors.',
		registers: registry ? [registry] : undefined,
		labelNames,
		collect() {
			try {
				const fds = fs.readdirSync('/proc/self/fd');
				// Minus 1 to not count the fd that was used by readdirSync(),
				// it's now closed.
				this.set(labels, fds.length - 1);
			} catch {
				// noop
			}
		},
	});
};

module.exports.metricNames = [PROCESS_OPEN_FDS];


/***/ }),

/***/ 7439:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


const Gauge = __nccwpck_require__(7173);
const { aggregateByObjectName } = __nccwpck_require__(7965);
const { updateMetrics } = __nccwpck_require__(7965);

const NODEJS_ACTIVE_REQUESTS = 'nodejs_active_requests';
const NODEJS_ACTIVE_REQUESTS_TOTAL = 'nodejs_active_requests_total';

module.exports = (registry, config = {}) => {
	// Don't do anything if the function is removed in later nodes (exists in node@6)
	if (typeof process._getActiveRequests !== 'function') {
		return;
	}

	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_REQUESTS,
		help: 'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
		labelNames: ['type', ...labelNames],
		registers: registry ? [registry] : undefined,
		collect() {
			const requests = process._getActiveRequests();
			updateMetrics(this, aggregateByObjectName(requests), labels);
		},
	});

	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_REQUESTS_TOTAL,
		help: 'Total number of active requests.',
		registers: registry ? [registry] : undefined,
		labelNames,
		collect() {
			const requests = process._getActiveRequests();
			this.set(labels, requests.length);
		},
	});
};

module.exports.metricNames = [
	NODEJS_ACTIVE_REQUESTS,
	NODEJS_ACTIVE_REQUESTS_TOTAL,
];


/***/ }),

/***/ 884:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


const Gauge = __nccwpck_require__(7173);
const { updateMetrics } = __nccwpck_require__(7965);

const NODEJS_ACTIVE_RESOURCES = 'nodejs_active_resources';
const NODEJS_ACTIVE_RESOURCES_TOTAL = 'nodejs_active_resources_total';

module.exports = (registry, config = {}) => {
	// Don't do anything if the function does not exist in previous nodes (exists in node@17.3.0)
	if (typeof process.getActiveResourcesInfo !== 'function') {
		return;
	}

	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_RESOURCES,
		help: 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
		labelNames: ['type', ...labelNames],
		registers: registry ? [registry] : undefined,
		collect() {
			const resources = process.getActiveResourcesInfo();

			const data = {};

			for (let i = 0; i < resources.length; i++) {
				const resource = resources[i];

				if (Object.hasOwn(data, resource)) {
					data[resource] += 1;
				} else {
					data[resource] = 1;
				}
			}

			updateMetrics(this, data, labels);
		},
	});

	new Gauge({
		name: namePrefix + NODEJS_ACTIVE_RESOURCES_TOTAL,
		help: 'Total number of active resources.',
		registers: registry ? [registry] : undefined,
		labelNames,
		collect() {
			const resources = process.getActiveResourcesInfo();
			this.set(labels, resources.length);
		},
	});
};

module.exports.metricNames = [
	NODEJS_ACTIVE_RESOURCES,
	NODEJS_ACTIVE_RESOURCES_TOTAL,
];


/***/ }),

/***/ 8228:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const startInSeconds = Math.round(Date.now() / 1000 - process.uptime());

const PROCESS_START_TIME = 'process_start_time_seconds';

module.exports = (registry, config = {}) => {
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + PROCESS_START_TIME,
		help: 'Start time of the process since unix epoch in seconds.',
		registers: registry ? [registry] : undefined,
		labelNames,
		aggregator: 'omit',
		collect() {
			this.set(labels, startInSeconds);
		},
	});
};

module.exports.metricNames = [PROCESS_START_TIME];


/***/ }),

/***/ 3344:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Gauge = __nccwpck_require__(7173);
const version = process.version;
const versionSegments = version.slice(1).split('.').map(Number);

const NODE_VERSION_INFO = 'nodejs_version_info';

module.exports = (registry, config = {}) => {
	const namePrefix = config.prefix ? config.prefix : '';
	const labels = config.labels ? config.labels : {};
	const labelNames = Object.keys(labels);

	new Gauge({
		name: namePrefix + NODE_VERSION_INFO,
		help: 'Node.js version info.',
		labelNames: ['version', 'major', 'minor', 'patch', ...labelNames],
		registers: registry ? [registry] : undefined,
		aggregator: 'first',
		collect() {
			// Needs to be in collect() so value is present even if reg is reset
			this.labels(
				version,
				versionSegments[0],
				versionSegments[1],
				versionSegments[2],
				...Object.values(labels),
			).set(1);
		},
	});
};

module.exports.metricNames = [NODE_VERSION_INFO];


/***/ }),

/***/ 7524:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const url = __nccwpck_require__(7016);
const http = __nccwpck_require__(8611);
const https = __nccwpck_require__(5692);
const { gzipSync } = __nccwpck_require__(3106);
const { globalRegistry } = __nccwpck_require__(1627);

class Pushgateway {
	constructor(gatewayUrl, options, registry) {
		if (!registry) {
			registry = globalRegistry;
		}
		this.registry = registry;
		this.gatewayUrl = gatewayUrl;
		const { requireJobName, ...requestOptions } = {
			requireJobName: true,
			...options,
		};
		this.requireJobName = requireJobName;
		this.requestOptions = requestOptions;
	}

	pushAdd(params = {}) {
		if (this.requireJobName && !params.jobName) {
			throw new Error('Missing jobName parameter');
		}

		return useGateway.call(this, 'POST', params.jobName, params.groupings);
	}

	push(params = {}) {
		if (this.requireJobName && !params.jobName) {
			throw new Error('Missing jobName parameter');
		}

		return useGateway.call(this, 'PUT', params.jobName, params.groupings);
	}

	delete(params = {}) {
		if (this.requireJobName && !params.jobName) {
			throw new Error('Missing jobName parameter');
		}

		return useGateway.call(this, 'DELETE', params.jobName, params.groupings);
	}
}
async function useGateway(method, job, groupings) {
	// `URL` first added in v6.13.0
	// eslint-disable-next-line n/no-deprecated-api
	const gatewayUrlParsed = url.parse(this.gatewayUrl);
	const gatewayUrlPath =
		gatewayUrlParsed.pathname && gatewayUrlParsed.pathname !== '/'
			? gatewayUrlParsed.pathname
			: '';
	const jobPath = job
		? `/job/${encodeURIComponent(job)}${generateGroupings(groupings)}`
		: '';
	const path = `${gatewayUrlPath}/metrics${jobPath}`;

	// eslint-disable-next-line n/no-deprecated-api
	const target = url.resolve(this.gatewayUrl, path);
	// eslint-disable-next-line n/no-deprecated-api
	const requestParams = url.parse(target);
	const httpModule = isHttps(requestParams.href) ? https : http;
	const options = Object.assign(requestParams, this.requestOptions, {
		method,
	});

	return new Promise((resolve, reject) => {
		if (method === 'DELETE' && options.headers) {
			delete options.headers['Content-Encoding'];
		}
		const req = httpModule.request(options, resp => {
			let body = '';
			resp.setEncoding('utf8');
			resp.on('data', chunk => {
				body += chunk;
			});
			resp.on('end', () => {
				if (resp.statusCode >= 400) {
					reject(
						new Error(`push failed with status ${resp.statusCode}, ${body}`),
					);
				} else {
					resolve({ resp, body });
				}
			});
		});
		req.on('error', err => {
			reject(err);
		});

		req.on('timeout', () => {
			req.destroy(new Error('Pushgateway request timed out'));
		});

		if (method !== 'DELETE') {
			this.registry
				.metrics()
				.then(metrics => {
					if (
						options.headers &&
						options.headers['Content-Encoding'] === 'gzip'
					) {
						metrics = gzipSync(metrics);
					}
					req.write(metrics);
					req.end();
				})
				.catch(err => {
					reject(err);
				});
		} else {
			req.end();
		}
	});
}

function generateGroupings(groupings) {
	if (!groupings) {
		return '';
	}
	return Object.keys(groupings)
		.map(
			key =>
				`/${encodeURIComponent(key)}/${encodeURIComponent(groupings[key])}`,
		)
		.join('');
}

function isHttps(href) {
	return href.search(/^https/) !== -1;
}

module.exports = Pushgateway;


/***/ }),

/***/ 1627:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { getValueAsString } = __nccwpck_require__(9588);

class Registry {
	static get PROMETHEUS_CONTENT_TYPE() {
		return 'text/plain; version=0.0.4; charset=utf-8';
	}

	static get OPENMETRICS_CONTENT_TYPE() {
		return 'application/openmetrics-text; version=1.0.0; charset=utf-8';
	}

	constructor(regContentType = Registry.PROMETHEUS_CONTENT_TYPE) {
		this._metrics = {};
		this._collectors = [];
		this._defaultLabels = {};
		if (
			regContentType !== Registry.PROMETHEUS_CONTENT_TYPE &&
			regContentType !== Registry.OPENMETRICS_CONTENT_TYPE
		) {
			throw new TypeError(`Content type ${regContentType} is unsupported`);
		}
		this._contentType = regContentType;
	}

	getMetricsAsArray() {
		return Object.values(this._metrics);
	}

	async getMetricsAsString(metrics) {
		const metric =
			typeof metrics.getForPromString === 'function'
				? await metrics.getForPromString()
				: await metrics.get();

		const name = escapeString(metric.name);
		const help = `# HELP ${name} ${escapeString(metric.help)}`;
		const type = `# TYPE ${name} ${metric.type}`;
		const values = [help, type];

		const defaultLabels =
			Object.keys(this._defaultLabels).length > 0 ? this._defaultLabels : null;

		const isOpenMetrics =
			this.contentType === Registry.OPENMETRICS_CONTENT_TYPE;

		for (const val of metric.values || []) {
			let { metricName = name, labels = {} } = val;
			const { sharedLabels = {} } = val;
			if (isOpenMetrics && metric.type === 'counter') {
				metricName = `${metricName}_total`;
			}

			if (defaultLabels) {
				labels = { ...labels, ...defaultLabels, ...labels };
			}

			// We have to flatten these separately to avoid duplicate labels appearing
			// between the base labels and the shared labels
			const formattedLabels = formatLabels(labels, sharedLabels);

			const flattenedShared = flattenSharedLabels(sharedLabels);
			const labelParts = [...formattedLabels, flattenedShared].filter(Boolean);
			const labelsString = labelParts.length ? `{${labelParts.join(',')}}` : '';
			let fullMetricLine = `${metricName}${labelsString} ${getValueAsString(
				val.value,
			)}`;

			const { exemplar } = val;
			if (exemplar && isOpenMetrics) {
				const formattedExemplars = formatLabels(exemplar.labelSet);
				fullMetricLine += ` # {${formattedExemplars.join(
					',',
				)}} ${getValueAsString(exemplar.value)} ${exemplar.timestamp}`;
			}
			values.push(fullMetricLine);
		}

		return values.join('\n');
	}

	async metrics() {
		const isOpenMetrics =
			this.contentType === Registry.OPENMETRICS_CONTENT_TYPE;

		const promises = this.getMetricsAsArray().map(metric => {
			if (isOpenMetrics && metric.type === 'counter') {
				metric.name = standardizeCounterName(metric.name);
			}
			return this.getMetricsAsString(metric);
		});

		const resolves = await Promise.all(promises);

		return isOpenMetrics
			? `${resolves.join('\n')}\n# EOF\n`
			: `${resolves.join('\n\n')}\n`;
	}

	registerMetric(metric) {
		if (this._metrics[metric.name] && this._metrics[metric.name] !== metric) {
			throw new Error(
				`A metric with the name ${metric.name} has already been registered.`,
			);
		}

		this._metrics[metric.name] = metric;
	}

	clear() {
		this._metrics = {};
		this._defaultLabels = {};
	}

	async getMetricsAsJSON() {
		const metrics = [];
		const defaultLabelNames = Object.keys(this._defaultLabels);

		const promises = [];

		for (const metric of this.getMetricsAsArray()) {
			promises.push(metric.get());
		}

		const resolves = await Promise.all(promises);

		for (const item of resolves) {
			if (item.values && defaultLabelNames.length > 0) {
				for (const val of item.values) {
					// Make a copy before mutating
					val.labels = Object.assign({}, val.labels);

					for (const labelName of defaultLabelNames) {
						val.labels[labelName] =
							val.labels[labelName] || this._defaultLabels[labelName];
					}
				}
			}

			metrics.push(item);
		}

		return metrics;
	}

	removeSingleMetric(name) {
		delete this._metrics[name];
	}

	getSingleMetricAsString(name) {
		return this.getMetricsAsString(this._metrics[name]);
	}

	getSingleMetric(name) {
		return this._metrics[name];
	}

	setDefaultLabels(labels) {
		this._defaultLabels = labels;
	}

	resetMetrics() {
		for (const metric in this._metrics) {
			this._metrics[metric].reset();
		}
	}

	get contentType() {
		return this._contentType;
	}

	setContentType(metricsContentType) {
		if (
			metricsContentType === Registry.OPENMETRICS_CONTENT_TYPE ||
			metricsContentType === Registry.PROMETHEUS_CONTENT_TYPE
		) {
			this._contentType = metricsContentType;
		} else {
			throw new Error(`Content type ${metricsContentType} is unsupported`);
		}
	}

	static merge(registers) {
		const regType = registers[0].contentType;
		for (const reg of registers) {
			if (reg.contentType !== regType) {
				throw new Error(
					'Registers can only be merged if they have the same content type',
				);
			}
		}
		const mergedRegistry = new Registry(regType);

		const metricsToMerge = registers.reduce(
			(acc, reg) => acc.concat(reg.getMetricsAsArray()),
			[],
		);

		metricsToMerge.forEach(mergedRegistry.registerMetric, mergedRegistry);
		return mergedRegistry;
	}
}

function formatLabels(labels, exclude) {
	const { hasOwnProperty } = Object.prototype;
	const formatted = [];
	for (const [name, value] of Object.entries(labels)) {
		if (!exclude || !hasOwnProperty.call(exclude, name)) {
			formatted.push(`${name}="${escapeLabelValue(value)}"`);
		}
	}
	return formatted;
}

const sharedLabelCache = new WeakMap();
function flattenSharedLabels(labels) {
	const cached = sharedLabelCache.get(labels);
	if (cached) {
		return cached;
	}

	const formattedLabels = formatLabels(labels);
	const flattened = formattedLabels.join(',');
	sharedLabelCache.set(labels, flattened);
	return flattened;
}
function escapeLabelValue(str) {
	if (typeof str !== 'string') {
		return str;
	}
	return escapeString(str).replace(/"/g, '\\"');
}
function escapeString(str) {
	return str.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
function standardizeCounterName(name) {
	return name.replace(/_total$/, '');
}

module.exports = Registry;
module.exports.globalRegistry = new Registry();


/***/ }),

/***/ 5910:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

/**
 * Summary
 */


const util = __nccwpck_require__(9023);
const { getLabels, hashObject, removeLabels } = __nccwpck_require__(9588);
const { validateLabel } = __nccwpck_require__(1539);
const { Metric } = __nccwpck_require__(2476);
const timeWindowQuantiles = __nccwpck_require__(7639);

const DEFAULT_COMPRESS_COUNT = 1000; // every 1000 measurements

class Summary extends Metric {
	constructor(config) {
		super(config, {
			percentiles: [0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999],
			compressCount: DEFAULT_COMPRESS_COUNT,
			hashMap: {},
		});

		this.type = 'summary';

		for (const label of this.labelNames) {
			if (label === 'quantile')
				throw new Error('quantile is a reserved label keyword');
		}

		if (this.labelNames.length === 0) {
			this.hashMap = {
				[hashObject({})]: {
					labels: {},
					td: new timeWindowQuantiles(this.maxAgeSeconds, this.ageBuckets),
					count: 0,
					sum: 0,
				},
			};
		}
	}

	/**
	 * Observe a value
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @param {Number} value - Value to observe
	 * @returns {void}
	 */
	observe(labels, value) {
		observe.call(this, labels === 0 ? 0 : labels || {})(value);
	}

	async get() {
		if (this.collect) {
			const v = this.collect();
			if (v instanceof Promise) await v;
		}
		const hashKeys = Object.keys(this.hashMap);
		const values = [];

		hashKeys.forEach(hashKey => {
			const s = this.hashMap[hashKey];
			if (s) {
				if (this.pruneAgedBuckets && s.td.size() === 0) {
					delete this.hashMap[hashKey];
				} else {
					extractSummariesForExport(s, this.percentiles).forEach(v => {
						values.push(v);
					});
					values.push(getSumForExport(s, this));
					values.push(getCountForExport(s, this));
				}
			}
		});

		return {
			name: this.name,
			help: this.help,
			type: this.type,
			values,
			aggregator: this.aggregator,
		};
	}

	reset() {
		const data = Object.values(this.hashMap);
		data.forEach(s => {
			s.td.reset();
			s.count = 0;
			s.sum = 0;
		});
	}

	/**
	 * Start a timer that could be used to logging durations
	 * @param {object} labels - Object with labels where key is the label key and value is label value. Can only be one level deep
	 * @returns {function} - Function to invoke when you want to stop the timer and observe the duration in seconds
	 * @example
	 * var end = summary.startTimer();
	 * makeExpensiveXHRRequest(function(err, res) {
	 *	end(); //Observe the duration of expensiveXHRRequest
	 * });
	 */
	startTimer(labels) {
		return startTimer.call(this, labels)();
	}

	labels(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		return {
			observe: observe.call(this, labels),
			startTimer: startTimer.call(this, labels),
		};
	}

	remove(...args) {
		const labels = getLabels(this.labelNames, args);
		validateLabel(this.labelNames, labels);
		removeLabels.call(this, this.hashMap, labels, this.sortedLabelNames);
	}
}

function extractSummariesForExport(summaryOfLabels, percentiles) {
	summaryOfLabels.td.compress();

	return percentiles.map(percentile => {
		const percentileValue = summaryOfLabels.td.percentile(percentile);
		return {
			labels: Object.assign({ quantile: percentile }, summaryOfLabels.labels),
			value: percentileValue ? percentileValue : 0,
		};
	});
}

function getCountForExport(value, summary) {
	return {
		metricName: `${summary.name}_count`,
		labels: value.labels,
		value: value.count,
	};
}

function getSumForExport(value, summary) {
	return {
		metricName: `${summary.name}_sum`,
		labels: value.labels,
		value: value.sum,
	};
}

function startTimer(startLabels) {
	return () => {
		const start = process.hrtime();
		return endLabels => {
			const delta = process.hrtime(start);
			const value = delta[0] + delta[1] / 1e9;
			this.observe(Object.assign({}, startLabels, endLabels), value);
			return value;
		};
	};
}

function observe(labels) {
	return value => {
		const labelValuePair = convertLabelsAndValues(labels, value);

		validateLabel(this.labelNames, labels);
		if (!Number.isFinite(labelValuePair.value)) {
			throw new TypeError(
				`Value is not a valid number: ${util.format(labelValuePair.value)}`,
			);
		}

		const hash = hashObject(labelValuePair.labels, this.sortedLabelNames);
		let summaryOfLabel = this.hashMap[hash];
		if (!summaryOfLabel) {
			summaryOfLabel = {
				labels: labelValuePair.labels,
				td: new timeWindowQuantiles(this.maxAgeSeconds, this.ageBuckets),
				count: 0,
				sum: 0,
			};
		}

		summaryOfLabel.td.push(labelValuePair.value);
		summaryOfLabel.count++;
		if (summaryOfLabel.count % this.compressCount === 0) {
			summaryOfLabel.td.compress();
		}
		summaryOfLabel.sum += labelValuePair.value;
		this.hashMap[hash] = summaryOfLabel;
	};
}

function convertLabelsAndValues(labels, value) {
	if (value === undefined) {
		return {
			value: labels,
			labels: {},
		};
	}

	return {
		labels,
		value,
	};
}

module.exports = Summary;


/***/ }),

/***/ 7639:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { TDigest } = __nccwpck_require__(3528);

class TimeWindowQuantiles {
	constructor(maxAgeSeconds, ageBuckets) {
		this.maxAgeSeconds = maxAgeSeconds || 0;
		this.ageBuckets = ageBuckets || 0;

		this.shouldRotate = maxAgeSeconds && ageBuckets;

		this.ringBuffer = Array(ageBuckets).fill(new TDigest());
		this.currentBuffer = 0;

		this.lastRotateTimestampMillis = Date.now();
		this.durationBetweenRotatesMillis =
			(maxAgeSeconds * 1000) / ageBuckets || Infinity;
	}

	size() {
		const bucket = rotate.call(this);
		return bucket.size();
	}

	percentile(quantile) {
		const bucket = rotate.call(this);
		return bucket.percentile(quantile);
	}

	push(value) {
		rotate.call(this);
		this.ringBuffer.forEach(bucket => {
			bucket.push(value);
		});
	}

	reset() {
		this.ringBuffer.forEach(bucket => {
			bucket.reset();
		});
	}

	compress() {
		this.ringBuffer.forEach(bucket => {
			bucket.compress();
		});
	}
}

function rotate() {
	let timeSinceLastRotateMillis = Date.now() - this.lastRotateTimestampMillis;
	while (
		timeSinceLastRotateMillis > this.durationBetweenRotatesMillis &&
		this.shouldRotate
	) {
		this.ringBuffer[this.currentBuffer] = new TDigest();

		if (++this.currentBuffer >= this.ringBuffer.length) {
			this.currentBuffer = 0;
		}
		timeSinceLastRotateMillis -= this.durationBetweenRotatesMillis;
		this.lastRotateTimestampMillis += this.durationBetweenRotatesMillis;
	}
	return this.ringBuffer[this.currentBuffer];
}

module.exports = TimeWindowQuantiles;


/***/ }),

/***/ 9588:
/***/ ((__unused_webpack_module, exports) => {



exports.getValueAsString = function getValueString(value) {
	if (Number.isNaN(value)) {
		return 'Nan';
	} else if (!Number.isFinite(value)) {
		if (value < 0) {
			return '-Inf';
		} else {
			return '+Inf';
		}
	} else {
		return `${value}`;
	}
};

exports.removeLabels = function removeLabels(
	hashMap,
	labels,
	sortedLabelNames,
) {
	const hash = hashObject(labels, sortedLabelNames);
	delete hashMap[hash];
};

exports.setValue = function setValue(hashMap, value, labels) {
	const hash = hashObject(labels);
	hashMap[hash] = {
		value: typeof value === 'number' ? value : 0,
		labels: labels || {},
	};
	return hashMap;
};

exports.setValueDelta = function setValueDelta(
	hashMap,
	deltaValue,
	labels,
	hash = '',
) {
	const value = typeof deltaValue === 'number' ? deltaValue : 0;
	if (hashMap[hash]) {
		hashMap[hash].value += value;
	} else {
		hashMap[hash] = { value, labels };
	}
	return hashMap;
};

exports.getLabels = function (labelNames, args) {
	if (typeof args[0] === 'object') {
		return args[0];
	}

	if (labelNames.length !== args.length) {
		throw new Error(
			`Invalid number of arguments (${args.length}): "${args.join(
				', ',
			)}" for label names (${labelNames.length}): "${labelNames.join(', ')}".`,
		);
	}

	const acc = {};
	for (let i = 0; i < labelNames.length; i++) {
		acc[labelNames[i]] = args[i];
	}
	return acc;
};

function fastHashObject(keys, labels) {
	if (keys.length === 0) {
		return '';
	}

	let hash = '';

	for (let i = 0; i < keys.length; i++) {
		const key = keys[i];
		const value = labels[key];
		if (value === undefined) continue;

		hash += `${key}:${value},`;
	}

	return hash;
}

function hashObject(labels, labelNames) {
	// We don't actually need a hash here. We just need a string that
	// is unique for each possible labels object and consistent across
	// calls with equivalent labels objects.

	if (labelNames) {
		return fastHashObject(labelNames, labels);
	}

	const keys = Object.keys(labels);
	if (keys.length > 1) {
		keys.sort(); // need consistency across calls
	}

	return fastHashObject(keys, labels);
}
exports.hashObject = hashObject;

exports.isObject = function isObject(obj) {
	return obj !== null && typeof obj === 'object';
};

exports.nowTimestamp = function nowTimestamp() {
	return Date.now() / 1000;
};

class Grouper extends Map {
	/**
	 * Adds the `value` to the `key`'s array of values.
	 * @param {*} key Key to set.
	 * @param {*} value Value to add to `key`'s array.
	 * @returns {undefined} undefined.
	 */
	add(key, value) {
		if (this.has(key)) {
			this.get(key).push(value);
		} else {
			this.set(key, [value]);
		}
	}
}

exports.Grouper = Grouper;


/***/ }),

/***/ 1539:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



const util = __nccwpck_require__(9023);

// These are from https://prometheus.io/docs/concepts/data_model/#metric-names-and-labels
const metricRegexp = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelRegexp = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

exports.validateMetricName = function (name) {
	return metricRegexp.test(name);
};

exports.validateLabelName = function (names = []) {
	return names.every(name => labelRegexp.test(name));
};

exports.validateLabel = function validateLabel(savedLabels, labels) {
	for (const label in labels) {
		if (!savedLabels.includes(label)) {
			throw new Error(
				`Added label "${label}" is not included in initial labelset: ${util.inspect(
					savedLabels,
				)}`,
			);
		}
	}
};


/***/ }),

/***/ 6868:
/***/ ((module) => {


function tryStringify (o) {
  try { return JSON.stringify(o) } catch(e) { return '"[Circular]"' }
}

module.exports = format

function format(f, args, opts) {
  var ss = (opts && opts.stringify) || tryStringify
  var offset = 1
  if (typeof f === 'object' && f !== null) {
    var len = args.length + offset
    if (len === 1) return f
    var objects = new Array(len)
    objects[0] = ss(f)
    for (var index = 1; index < len; index++) {
      objects[index] = ss(args[index])
    }
    return objects.join(' ')
  }
  if (typeof f !== 'string') {
    return f
  }
  var argLen = args.length
  if (argLen === 0) return f
  var str = ''
  var a = 1 - offset
  var lastPos = -1
  var flen = (f && f.length) || 0
  for (var i = 0; i < flen;) {
    if (f.charCodeAt(i) === 37 && i + 1 < flen) {
      lastPos = lastPos > -1 ? lastPos : 0
      switch (f.charCodeAt(i + 1)) {
        case 100: // 'd'
        case 102: // 'f'
          if (a >= argLen)
            break
          if (args[a] == null)  break
          if (lastPos < i)
            str += f.slice(lastPos, i)
          str += Number(args[a])
          lastPos = i + 2
          i++
          break
        case 105: // 'i'
          if (a >= argLen)
            break
          if (args[a] == null)  break
          if (lastPos < i)
            str += f.slice(lastPos, i)
          str += Math.floor(Number(args[a]))
          lastPos = i + 2
          i++
          break
        case 79: // 'O'
        case 111: // 'o'
        case 106: // 'j'
          if (a >= argLen)
            break
          if (args[a] === undefined) break
          if (lastPos < i)
            str += f.slice(lastPos, i)
          var type = typeof args[a]
          if (type === 'string') {
            str += '\'' + args[a] + '\''
            lastPos = i + 2
            i++
            break
          }
          if (type === 'function') {
            str += args[a].name || '<anonymous>'
            lastPos = i + 2
            i++
            break
          }
          str += ss(args[a])
          lastPos = i + 2
          i++
          break
        case 115: // 's'
          if (a >= argLen)
            break
          if (lastPos < i)
            str += f.slice(lastPos, i)
          str += String(args[a])
          lastPos = i + 2
          i++
          break
        case 37: // '%'
          if (lastPos < i)
            str += f.slice(lastPos, i)
          str += '%'
          lastPos = i + 2
          i++
          a--
          break
      }
      ++a
    }
    ++i
  }
  if (lastPos === -1)
    return f
  else if (lastPos < flen) {
    str += f.slice(lastPos)
  }

  return str
}


/***/ }),

/***/ 7467:
/***/ ((module, exports) => {



const { hasOwnProperty } = Object.prototype

const stringify = configure()

// @ts-expect-error
stringify.configure = configure
// @ts-expect-error
stringify.stringify = stringify

// @ts-expect-error
stringify.default = stringify

// @ts-expect-error used for named export
exports.stringify = stringify
// @ts-expect-error used for named export
exports.configure = configure

module.exports = stringify

// eslint-disable-next-line no-control-regex
const strEscapeSequencesRegExp = /[\u0000-\u001f\u0022\u005c\ud800-\udfff]/

// Escape C0 control characters, double quotes, the backslash and every code
// unit with a numeric value in the inclusive range 0xD800 to 0xDFFF.
function strEscape (str) {
  // Some magic numbers that worked out fine while benchmarking with v8 8.0
  if (str.length < 5000 && !strEscapeSequencesRegExp.test(str)) {
    return `"${str}"`
  }
  return JSON.stringify(str)
}

function sort (array, comparator) {
  // Insertion sort is very efficient for small input sizes, but it has a bad
  // worst case complexity. Thus, use native array sort for bigger values.
  if (array.length > 2e2 || comparator) {
    return array.sort(comparator)
  }
  for (let i = 1; i < array.length; i++) {
    const currentValue = array[i]
    let position = i
    while (position !== 0 && array[position - 1] > currentValue) {
      array[position] = array[position - 1]
      position--
    }
    array[position] = currentValue
  }
  return array
}

const typedArrayPrototypeGetSymbolToStringTag =
  Object.getOwnPropertyDescriptor(
    Object.getPrototypeOf(
      Object.getPrototypeOf(
        new Int8Array()
      )
    ),
    Symbol.toStringTag
  ).get

function isTypedArrayWithEntries (value) {
  return typedArrayPrototypeGetSymbolToStringTag.call(value) !== undefined && value.length !== 0
}

function stringifyTypedArray (array, separator, maximumBreadth) {
  if (array.length < maximumBreadth) {
    maximumBreadth = array.length
  }
  const whitespace = separator === ',' ? '' : ' '
  let res = `"0":${whitespace}${array[0]}`
  for (let i = 1; i < maximumBreadth; i++) {
    res += `${separator}"${i}":${whitespace}${array[i]}`
  }
  return res
}

function getCircularValueOption (options) {
  if (hasOwnProperty.call(options, 'circularValue')) {
    const circularValue = options.circularValue
    if (typeof circularValue === 'string') {
      return `"${circularValue}"`
    }
    if (circularValue == null) {
      return circularValue
    }
    if (circularValue === Error || circularValue === TypeError) {
      return {
        toString () {
          throw new TypeError('Converting circular structure to JSON')
        }
      }
    }
    throw new TypeError('The "circularValue" argument must be of type string or the value null or undefined')
  }
  return '"[Circular]"'
}

function getDeterministicOption (options) {
  let value
  if (hasOwnProperty.call(options, 'deterministic')) {
    value = options.deterministic
    if (typeof value !== 'boolean' && typeof value !== 'function') {
      throw new TypeError('The "deterministic" argument must be of type boolean or comparator function')
    }
  }
  return value === undefined ? true : value
}

function getBooleanOption (options, key) {
  let value
  if (hasOwnProperty.call(options, key)) {
    value = options[key]
    if (typeof value !== 'boolean') {
      throw new TypeError(`The "${key}" argument must be of type boolean`)
    }
  }
  return value === undefined ? true : value
}

function getPositiveIntegerOption (options, key) {
  let value
  if (hasOwnProperty.call(options, key)) {
    value = options[key]
    if (typeof value !== 'number') {
      throw new TypeError(`The "${key}" argument must be of type number`)
    }
    if (!Number.isInteger(value)) {
      throw new TypeError(`The "${key}" argument must be an integer`)
    }
    if (value < 1) {
      throw new RangeError(`The "${key}" argument must be >= 1`)
    }
  }
  return value === undefined ? Infinity : value
}

function getItemCount (number) {
  if (number === 1) {
    return '1 item'
  }
  return `${number} items`
}

function getUniqueReplacerSet (replacerArray) {
  const replacerSet = new Set()
  for (const value of replacerArray) {
    if (typeof value === 'string' || typeof value === 'number') {
      replacerSet.add(String(value))
    }
  }
  return replacerSet
}

function getStrictOption (options) {
  if (hasOwnProperty.call(options, 'strict')) {
    const value = options.strict
    if (typeof value !== 'boolean') {
      throw new TypeError('The "strict" argument must be of type boolean')
    }
    if (value) {
      return (value) => {
        let message = `Object can not safely be stringified. Received type ${typeof value}`
        if (typeof value !== 'function') message += ` (${value.toString()})`
        throw new Error(message)
      }
    }
  }
}

function configure (options) {
  options = { ...options }
  const fail = getStrictOption(options)
  if (fail) {
    if (options.bigint === undefined) {
      options.bigint = false
    }
    if (!('circularValue' in options)) {
      options.circularValue = Error
    }
  }
  const circularValue = getCircularValueOption(options)
  const bigint = getBooleanOption(options, 'bigint')
  const deterministic = getDeterministicOption(options)
  const comparator = typeof deterministic === 'function' ? deterministic : undefined
  const maximumDepth = getPositiveIntegerOption(options, 'maximumDepth')
  const maximumBreadth = getPositiveIntegerOption(options, 'maximumBreadth')

  function stringifyFnReplacer (key, parent, stack, replacer, spacer, indentation) {
    let value = parent[key]

    if (typeof value === 'object' && value !== null && typeof value.toJSON === 'function') {
      value = value.toJSON(key)
    }
    value = replacer.call(parent, key, value)

    switch (typeof value) {
      case 'string':
        return strEscape(value)
      case 'object': {
        if (value === null) {
          return 'null'
        }
        if (stack.indexOf(value) !== -1) {
          return circularValue
        }

        let res = ''
        let join = ','
        const originalIndentation = indentation

        if (Array.isArray(value)) {
          if (value.length === 0) {
            return '[]'
          }
          if (maximumDepth < stack.length + 1) {
            return '"[Array]"'
          }
          stack.push(value)
          if (spacer !== '') {
            indentation += spacer
            res += `\n${indentation}`
            join = `,\n${indentation}`
          }
          const maximumValuesToStringify = Math.min(value.length, maximumBreadth)
          let i = 0
          for (; i < maximumValuesToStringify - 1; i++) {
            const tmp = stringifyFnReplacer(String(i), value, stack, replacer, spacer, indentation)
            res += tmp !== undefined ? tmp : 'null'
            res += join
          }
          const tmp = stringifyFnReplacer(String(i), value, stack, replacer, spacer, indentation)
          res += tmp !== undefined ? tmp : 'null'
          if (value.length - 1 > maximumBreadth) {
            const removedKeys = value.length - maximumBreadth - 1
            res += `${join}"... ${getItemCount(removedKeys)} not stringified"`
          }
          if (spacer !== '') {
            res += `\n${originalIndentation}`
          }
          stack.pop()
          return `[${res}]`
        }

        let keys = Object.keys(value)
        const keyLength = keys.length
        if (keyLength === 0) {
          return '{}'
        }
        if (maximumDepth < stack.length + 1) {
          return '"[Object]"'
        }
        let whitespace = ''
        let separator = ''
        if (spacer !== '') {
          indentation += spacer
          join = `,\n${indentation}`
          whitespace = ' '
        }
        const maximumPropertiesToStringify = Math.min(keyLength, maximumBreadth)
        if (deterministic && !isTypedArrayWithEntries(value)) {
          keys = sort(keys, comparator)
        }
        stack.push(value)
        for (let i = 0; i < maximumPropertiesToStringify; i++) {
          const key = keys[i]
          const tmp = stringifyFnReplacer(key, value, stack, replacer, spacer, indentation)
          if (tmp !== undefined) {
            res += `${separator}${strEscape(key)}:${whitespace}${tmp}`
            separator = join
          }
        }
        if (keyLength > maximumBreadth) {
          const removedKeys = keyLength - maximumBreadth
          res += `${separator}"...":${whitespace}"${getItemCount(removedKeys)} not stringified"`
          separator = join
        }
        if (spacer !== '' && separator.length > 1) {
          res = `\n${indentation}${res}\n${originalIndentation}`
        }
        stack.pop()
        return `{${res}}`
      }
      case 'number':
        return isFinite(value) ? String(value) : fail ? fail(value) : 'null'
      case 'boolean':
        return value === true ? 'true' : 'false'
      case 'undefined':
        return undefined
      case 'bigint':
        if (bigint) {
          return String(value)
        }
        // fallthrough
      default:
        return fail ? fail(value) : undefined
    }
  }

  function stringifyArrayReplacer (key, value, stack, replacer, spacer, indentation) {
    if (typeof value === 'object' && value !== null && typeof value.toJSON === 'function') {
      value = value.toJSON(key)
    }

    switch (typeof value) {
      case 'string':
        return strEscape(value)
      case 'object': {
        if (value === null) {
          return 'null'
        }
        if (stack.indexOf(value) !== -1) {
          return circularValue
        }

        const originalIndentation = indentation
        let res = ''
        let join = ','

        if (Array.isArray(value)) {
          if (value.length === 0) {
            return '[]'
          }
          if (maximumDepth < stack.length + 1) {
            return '"[Array]"'
          }
          stack.push(value)
          if (spacer !== '') {
            indentation += spacer
            res += `\n${indentation}`
            join = `,\n${indentation}`
          }
          const maximumValuesToStringify = Math.min(value.length, maximumBreadth)
          let i = 0
          for (; i < maximumValuesToStringify - 1; i++) {
            const tmp = stringifyArrayReplacer(String(i), value[i], stack, replacer, spacer, indentation)
            res += tmp !== undefined ? tmp : 'null'
            res += join
          }
          const tmp = stringifyArrayReplacer(String(i), value[i], stack, replacer, spacer, indentation)
          res += tmp !== undefined ? tmp : 'null'
          if (value.length - 1 > maximumBreadth) {
            const removedKeys = value.length - maximumBreadth - 1
            res += `${join}"... ${getItemCount(removedKeys)} not stringified"`
          }
          if (spacer !== '') {
            res += `\n${originalIndentation}`
          }
          stack.pop()
          return `[${res}]`
        }
        stack.push(value)
        let whitespace = ''
        if (spacer !== '') {
          indentation += spacer
          join = `,\n${indentation}`
          whitespace = ' '
        }
        let separator = ''
        for (const key of replacer) {
          const tmp = stringifyArrayReplacer(key, value[key], stack, replacer, spacer, indentation)
          if (tmp !== undefined) {
            res += `${separator}${strEscape(key)}:${whitespace}${tmp}`
            separator = join
          }
        }
        if (spacer !== '' && separator.length > 1) {
          res = `\n${indentation}${res}\n${originalIndentation}`
        }
        stack.pop()
        return `{${res}}`
      }
      case 'number':
        return isFinite(value) ? String(value) : fail ? fail(value) : 'null'
      case 'boolean':
        return value === true ? 'true' : 'false'
      case 'undefined':
        return undefined
      case 'bigint':
        if (bigint) {
          return String(value)
        }
        // fallthrough
      default:
        return fail ? fail(value) : undefined
    }
  }

  function stringifyIndent (key, value, stack, spacer, indentation) {
    switch (typeof value) {
      case 'string':
        return strEscape(value)
      case 'object': {
        if (value === null) {
          return 'null'
        }
        if (typeof value.toJSON === 'function') {
          value = value.toJSON(key)
          // Prevent calling `toJSON` again.
          if (typeof value !== 'object') {
            return stringifyIndent(key, value, stack, spacer, indentation)
          }
          if (value === null) {
            return 'null'
          }
        }
        if (stack.indexOf(value) !== -1) {
          return circularValue
        }
        const originalIndentation = indentation

        if (Array.isArray(value)) {
          if (value.length === 0) {
            return '[]'
          }
          if (maximumDepth < stack.length + 1) {
            return '"[Array]"'
          }
          stack.push(value)
          indentation += spacer
          let res = `\n${indentation}`
          const join = `,\n${indentation}`
          const maximumValuesToStringify = Math.min(value.length, maximumBreadth)
          let i = 0
          for (; i < maximumValuesToStringify - 1; i++) {
            const tmp = stringifyIndent(String(i), value[i], stack, spacer, indentation)
            res += tmp !== undefined ? tmp : 'null'
            res += join
          }
          const tmp = stringifyIndent(String(i), value[i], stack, spacer, indentation)
          res += tmp !== undefined ? tmp : 'null'
          if (value.length - 1 > maximumBreadth) {
            const removedKeys = value.length - maximumBreadth - 1
            res += `${join}"... ${getItemCount(removedKeys)} not stringified"`
          }
          res += `\n${originalIndentation}`
          stack.pop()
          return `[${res}]`
        }

        let keys = Object.keys(value)
        const keyLength = keys.length
        if (keyLength === 0) {
          return '{}'
        }
        if (maximumDepth < stack.length + 1) {
          return '"[Object]"'
        }
        indentation += spacer
        const join = `,\n${indentation}`
        let res = ''
        let separator = ''
        let maximumPropertiesToStringify = Math.min(keyLength, maximumBreadth)
        if (isTypedArrayWithEntries(value)) {
          res += stringifyTypedArray(value, join, maximumBreadth)
          keys = keys.slice(value.length)
          maximumPropertiesToStringify -= value.length
          separator = join
        }
        if (deterministic) {
          keys = sort(keys, comparator)
        }
        stack.push(value)
        for (let i = 0; i < maximumPropertiesToStringify; i++) {
          const key = keys[i]
          const tmp = stringifyIndent(key, value[key], stack, spacer, indentation)
          if (tmp !== undefined) {
            res += `${separator}${strEscape(key)}: ${tmp}`
            separator = join
          }
        }
        if (keyLength > maximumBreadth) {
          const removedKeys = keyLength - maximumBreadth
          res += `${separator}"...": "${getItemCount(removedKeys)} not stringified"`
          separator = join
        }
        if (separator !== '') {
          res = `\n${indentation}${res}\n${originalIndentation}`
        }
        stack.pop()
        return `{${res}}`
      }
      case 'number':
        return isFinite(value) ? String(value) : fail ? fail(value) : 'null'
      case 'boolean':
        return value === true ? 'true' : 'false'
      case 'undefined':
        return undefined
      case 'bigint':
        if (bigint) {
          return String(value)
        }
        // fallthrough
      default:
        return fail ? fail(value) : undefined
    }
  }

  function stringifySimple (key, value, stack) {
    switch (typeof value) {
      case 'string':
        return strEscape(value)
      case 'object': {
        if (value === null) {
          return 'null'
        }
        if (typeof value.toJSON === 'function') {
          value = value.toJSON(key)
          // Prevent calling `toJSON` again
          if (typeof value !== 'object') {
            return stringifySimple(key, value, stack)
          }
          if (value === null) {
            return 'null'
          }
        }
        if (stack.indexOf(value) !== -1) {
          return circularValue
        }

        let res = ''

        const hasLength = value.length !== undefined
        if (hasLength && Array.isArray(value)) {
          if (value.length === 0) {
            return '[]'
          }
          if (maximumDepth < stack.length + 1) {
            return '"[Array]"'
          }
          stack.push(value)
          const maximumValuesToStringify = Math.min(value.length, maximumBreadth)
          let i = 0
          for (; i < maximumValuesToStringify - 1; i++) {
            const tmp = stringifySimple(String(i), value[i], stack)
            res += tmp !== undefined ? tmp : 'null'
            res += ','
          }
          const tmp = stringifySimple(String(i), value[i], stack)
          res += tmp !== undefined ? tmp : 'null'
          if (value.length - 1 > maximumBreadth) {
            const removedKeys = value.length - maximumBreadth - 1
            res += `,"... ${getItemCount(removedKeys)} not stringified"`
          }
          stack.pop()
          return `[${res}]`
        }

        let keys = Object.keys(value)
        const keyLength = keys.length
        if (keyLength === 0) {
          return '{}'
        }
        if (maximumDepth < stack.length + 1) {
          return '"[Object]"'
        }
        let separator = ''
        let maximumPropertiesToStringify = Math.min(keyLength, maximumBreadth)
        if (hasLength && isTypedArrayWithEntries(value)) {
          res += stringifyTypedArray(value, ',', maximumBreadth)
          keys = keys.slice(value.length)
          maximumPropertiesToStringify -= value.length
          separator = ','
        }
        if (deterministic) {
          keys = sort(keys, comparator)
        }
        stack.push(value)
        for (let i = 0; i < maximumPropertiesToStringify; i++) {
          const key = keys[i]
          const tmp = stringifySimple(key, value[key], stack)
          if (tmp !== undefined) {
            res += `${separator}${strEscape(key)}:${tmp}`
            separator = ','
          }
        }
        if (keyLength > maximumBreadth) {
          const removedKeys = keyLength - maximumBreadth
          res += `${separator}"...":"${getItemCount(removedKeys)} not stringified"`
        }
        stack.pop()
        return `{${res}}`
      }
      case 'number':
        return isFinite(value) ? String(value) : fail ? fail(value) : 'null'
      case 'boolean':
        return value === true ? 'true' : 'false'
      case 'undefined':
        return undefined
      case 'bigint':
        if (bigint) {
          return String(value)
        }
        // fallthrough
      default:
        return fail ? fail(value) : undefined
    }
  }

  function stringify (value, replacer, space) {
    if (arguments.length > 1) {
      let spacer = ''
      if (typeof space === 'number') {
        spacer = ' '.repeat(Math.min(space, 10))
      } else if (typeof space === 'string') {
        spacer = space.slice(0, 10)
      }
      if (replacer != null) {
        if (typeof replacer === 'function') {
          return stringifyFnReplacer('', { '': value }, [], replacer, spacer, '')
        }
        if (Array.isArray(replacer)) {
          return stringifyArrayReplacer('', value, [], getUniqueReplacerSet(replacer), spacer, '')
        }
      }
      if (spacer.length !== 0) {
        return stringifyIndent('', value, [], spacer, '')
      }
    }
    return stringifySimple('', value, [])
  }

  return stringify
}


/***/ }),

/***/ 3528:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {

//
// TDigest:
//
// approximate distribution percentiles from a stream of reals
//
var RBTree = (__nccwpck_require__(7750).RBTree);

function TDigest(delta, K, CX) {
    // allocate a TDigest structure.
    //
    // delta is the compression factor, the max fraction of mass that
    // can be owned by one centroid (bigger, up to 1.0, means more
    // compression). delta=false switches off TDigest behavior and treats
    // the distribution as discrete, with no merging and exact values
    // reported.
    //
    // K is a size threshold that triggers recompression as the TDigest
    // grows during input.  (Set it to 0 to disable automatic recompression)
    //
    // CX specifies how often to update cached cumulative totals used
    // for quantile estimation during ingest (see cumulate()).  Set to
    // 0 to use exact quantiles for each new point.
    //
    this.discrete = (delta === false);
    this.delta = delta || 0.01;
    this.K = (K === undefined) ? 25 : K;
    this.CX = (CX === undefined) ? 1.1 : CX;
    this.centroids = new RBTree(compare_centroid_means);
    this.nreset = 0;
    this.reset();
}

TDigest.prototype.reset = function() {
    // prepare to digest new points.
    //
    this.centroids.clear();
    this.n = 0;
    this.nreset += 1;
    this.last_cumulate = 0;
};

TDigest.prototype.size = function() {
    return this.centroids.size;
};

TDigest.prototype.toArray = function(everything) {
    // return {mean,n} of centroids as an array ordered by mean.
    //
    var result = [];
    if (everything) {
        this._cumulate(true); // be sure cumns are exact
        this.centroids.each(function(c) { result.push(c); });
    } else {
        this.centroids.each(function(c) { result.push({mean:c.mean, n:c.n}); });
    }
    return result;
};

TDigest.prototype.summary = function() {
    var approx = (this.discrete) ? "exact " : "approximating ";
    var s = [approx + this.n + " samples using " + this.size() + " centroids",
             "min = "+this.percentile(0),
             "Q1  = "+this.percentile(0.25),
             "Q2  = "+this.percentile(0.5),
             "Q3  = "+this.percentile(0.75),
             "max = "+this.percentile(1.0)];
    return s.join('\n');
};

function compare_centroid_means(a, b) {
    // order two centroids by mean.
    //
    return (a.mean > b.mean) ? 1 : (a.mean < b.mean) ? -1 : 0;
}

function compare_centroid_mean_cumns(a, b) {
    // order two centroids by mean_cumn.
    //
    return (a.mean_cumn - b.mean_cumn);
}

TDigest.prototype.push = function(x, n) {
    // incorporate value or array of values x, having count n into the
    // TDigest. n defaults to 1.
    //
    n = n || 1;
    x = Array.isArray(x) ? x : [x];
    for (var i = 0 ; i < x.length ; i++) {
        this._digest(x[i], n);
    }
};

TDigest.prototype.push_centroid = function(c) {
    // incorporate centroid or array of centroids c
    //
    c = Array.isArray(c) ? c : [c];
    for (var i = 0 ; i < c.length ; i++) {
        this._digest(c[i].mean, c[i].n);
    }
};

TDigest.prototype._cumulate = function(exact) {
    // update cumulative counts for each centroid
    //
    // exact: falsey means only cumulate after sufficient
    // growth. During ingest, these counts are used as quantile
    // estimates, and they work well even when somewhat out of
    // date. (this is a departure from the publication, you may set CX
    // to 0 to disable).
    //
    if (this.n === this.last_cumulate ||
        !exact && this.CX && this.CX > (this.n / this.last_cumulate)) {
        return;
    }
    var cumn = 0;
    this.centroids.each(function(c) {
        c.mean_cumn = cumn + c.n / 2; // half of n at the mean
        cumn = c.cumn = cumn + c.n;
    });
    this.n = this.last_cumulate = cumn;
};

TDigest.prototype.find_nearest = function(x) {
    // find the centroid closest to x. The assumption of
    // unique means and a unique nearest centroid departs from the
    // paper, see _digest() below
    //
    if (this.size() === 0) {
        return null;
    }
    var iter = this.centroids.lowerBound({mean:x}); // x <= iter || iter==null
    var c = (iter.data() === null) ? iter.prev() : iter.data();
    if (c.mean === x || this.discrete) {
        return c; // c is either x or a neighbor (discrete: no distance func)
    }
    var prev = iter.prev();
    if (prev && Math.abs(prev.mean - x) < Math.abs(c.mean - x)) {
        return prev;
    } else {
        return c;
    }
};

TDigest.prototype._new_centroid = function(x, n, cumn) {
    // create and insert a new centroid into the digest (don't update
    // cumulatives).
    //
    var c = {mean:x, n:n, cumn:cumn};
    this.centroids.insert(c);
    this.n += n;
    return c;
};

TDigest.prototype._addweight = function(nearest, x, n) {
    // add weight at location x to nearest centroid.  adding x to
    // nearest will not shift its relative position in the tree and
    // require reinsertion.
    //
    if (x !== nearest.mean) {
        nearest.mean += n * (x - nearest.mean) / (nearest.n + n);
    }
    nearest.cumn += n;
    nearest.mean_cumn += n / 2;
    nearest.n += n;
    this.n += n;
};

TDigest.prototype._digest = function(x, n) {
    // incorporate value x, having count n into the TDigest.
    //
    var min = this.centroids.min();
    var max = this.centroids.max();
    var nearest = this.find_nearest(x);
    if (nearest && nearest.mean === x) {
        // accumulate exact matches into the centroid without
        // limit. this is a departure from the paper, made so
        // centroids remain unique and code can be simple.
        this._addweight(nearest, x, n);
    } else if (nearest === min) {
        this._new_centroid(x, n, 0); // new point around min boundary
    } else if (nearest === max ) {
        this._new_centroid(x, n, this.n); // new point around max boundary
    } else if (this.discrete) {
        this._new_centroid(x, n, nearest.cumn); // never merge
    } else {
        // conider a merge based on nearest centroid's capacity. if
        // there's not room for all of n, don't bother merging any of
        // it into nearest, as we'll have to make a new centroid
        // anyway for the remainder (departure from the paper).
        var p = nearest.mean_cumn / this.n;
        var max_n = Math.floor(4 * this.n * this.delta * p * (1 - p));
        if (max_n - nearest.n >= n) {
            this._addweight(nearest, x, n);
        } else {
            this._new_centroid(x, n, nearest.cumn);
        }
    }
    this._cumulate(false);
    if (!this.discrete && this.K && this.size() > this.K / this.delta) {
        // re-process the centroids and hope for some compression.
        this.compress();
    }
};

TDigest.prototype.bound_mean = function(x) {
    // find centroids lower and upper such that lower.mean < x <
    // upper.mean or lower.mean === x === upper.mean. Don't call
    // this for x out of bounds.
    //
    var iter = this.centroids.upperBound({mean:x}); // x < iter
    var lower = iter.prev();      // lower <= x
    var upper = (lower.mean === x) ? lower : iter.next();
    return [lower, upper];
};

TDigest.prototype.p_rank = function(x_or_xlist) {
    // return approximate percentile-ranks (0..1) for data value x.
    // or list of x.  calculated according to
    // https://en.wikipedia.org/wiki/Percentile_rank
    //
    // (Note that in continuous mode, boundary sample values will
    // report half their centroid weight inward from 0/1 as the
    // percentile-rank. X values outside the observed range return
    // 0/1)
    //
    // this triggers cumulate() if cumn's are out of date.
    //
    var xs = Array.isArray(x_or_xlist) ? x_or_xlist : [x_or_xlist];
    var ps = xs.map(this._p_rank, this);
    return Array.isArray(x_or_xlist) ? ps : ps[0];
};

TDigest.prototype._p_rank = function(x) {
    if (this.size() === 0) {
        return undefined;
    } else if (x < this.centroids.min().mean) {
        return 0.0;
    } else if (x > this.centroids.max().mean) {
        return 1.0;
    }
    // find centroids that bracket x and interpolate x's cumn from
    // their cumn's.
    this._cumulate(true); // be sure cumns are exact
    var bound = this.bound_mean(x);
    var lower = bound[0], upper = bound[1];
    if (this.discrete) {
        return lower.cumn / this.n;
    } else {
        var cumn = lower.mean_cumn;
        if (lower !== upper) {
            cumn += (x - lower.mean) * (upper.mean_cumn - lower.mean_cumn) / (upper.mean - lower.mean);
        }
        return cumn / this.n;
    }
};

TDigest.prototype.bound_mean_cumn = function(cumn) {
    // find centroids lower and upper such that lower.mean_cumn < x <
    // upper.mean_cumn or lower.mean_cumn === x === upper.mean_cumn. Don't call
    // this for cumn out of bounds.
    //
    // XXX because mean and mean_cumn give rise to the same sort order
    // (up to identical means), use the mean rbtree for our search.
    this.centroids._comparator = compare_centroid_mean_cumns;
    var iter = this.centroids.upperBound({mean_cumn:cumn}); // cumn < iter
    this.centroids._comparator = compare_centroid_means;
    var lower = iter.prev();      // lower <= cumn
    var upper = (lower && lower.mean_cumn === cumn) ? lower : iter.next();
    return [lower, upper];
};

TDigest.prototype.percentile = function(p_or_plist) {
    // for percentage p (0..1), or for each p in a list of ps, return
    // the smallest data value q at which at least p percent of the
    // observations <= q.
    //
    // for discrete distributions, this selects q using the Nearest
    // Rank Method
    // (https://en.wikipedia.org/wiki/Percentile#The_Nearest_Rank_method)
    // (in scipy, same as percentile(...., interpolation='higher')
    //
    // for continuous distributions, interpolates data values between
    // count-weighted bracketing means.
    //
    // this triggers cumulate() if cumn's are out of date.
    //
    var ps = Array.isArray(p_or_plist) ? p_or_plist : [p_or_plist];
    var qs = ps.map(this._percentile, this);
    return Array.isArray(p_or_plist) ? qs : qs[0];
};

TDigest.prototype._percentile = function(p) {
    if (this.size() === 0) {
        return undefined;
    }
    this._cumulate(true); // be sure cumns are exact
    var h = this.n * p;
    var bound = this.bound_mean_cumn(h);
    var lower = bound[0], upper = bound[1];

    if (upper === lower || lower === null || upper === null) {
        return (lower || upper).mean;
    } else if (!this.discrete) {
        return lower.mean + (h - lower.mean_cumn) * (upper.mean - lower.mean) / (upper.mean_cumn - lower.mean_cumn);
    } else if (h <= lower.cumn) {
        return lower.mean;
    } else {
        return upper.mean;
    }
};

function pop_random(choices) {
    // remove and return an item randomly chosen from the array of choices
    // (mutates choices)
    //
    var idx = Math.floor(Math.random() * choices.length);
    return choices.splice(idx, 1)[0];
}

TDigest.prototype.compress = function() {
    // TDigests experience worst case compression (none) when input
    // increases monotonically.  Improve on any bad luck by
    // reconsuming digest centroids as if they were weighted points
    // while shuffling their order (and hope for the best).
    //
    if (this.compressing) {
        return;
    }
    var points = this.toArray();
    this.reset();
    this.compressing = true;
    while (points.length > 0) {
        this.push_centroid(pop_random(points));
    }
    this._cumulate(true);
    this.compressing = false;
};

function Digest(config) {
    // allocate a distribution digest structure. This is an extension
    // of a TDigest structure that starts in exact histogram (discrete)
    // mode, and automatically switches to TDigest mode for large
    // samples that appear to be from a continuous distribution.
    //
    this.config = config || {};
    this.mode = this.config.mode || 'auto'; // disc, cont, auto
    TDigest.call(this, this.mode === 'cont' ? config.delta : false);
    this.digest_ratio = this.config.ratio || 0.9;
    this.digest_thresh = this.config.thresh || 1000;
    this.n_unique = 0;
}
Digest.prototype = Object.create(TDigest.prototype);
Digest.prototype.constructor = Digest;

Digest.prototype.push = function(x_or_xlist) {
    TDigest.prototype.push.call(this, x_or_xlist);
    this.check_continuous();
};

Digest.prototype._new_centroid = function(x, n, cumn) {
    this.n_unique += 1;
    TDigest.prototype._new_centroid.call(this, x, n, cumn);
};

Digest.prototype._addweight = function(nearest, x, n) {
    if (nearest.n === 1) {
        this.n_unique -= 1;
    }
    TDigest.prototype._addweight.call(this, nearest, x, n);
};

Digest.prototype.check_continuous = function() {
    // while in 'auto' mode, if there are many unique elements, assume
    // they are from a continuous distribution and switch to 'cont'
    // mode (tdigest behavior). Return true on transition from
    // disctete to continuous.
    if (this.mode !== 'auto' || this.size() < this.digest_thresh) {
        return false;
    }
    if (this.n_unique / this.size() > this.digest_ratio) {
        this.mode = 'cont';
        this.discrete = false;
        this.delta = this.config.delta || 0.01;
        this.compress();
        return true;
    }
    return false;
};

module.exports = {
    'TDigest': TDigest,
    'Digest': Digest
};


/***/ }),

/***/ 1367:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { version } = __nccwpck_require__(5847)
const { EventEmitter } = __nccwpck_require__(4434)
const { Worker } = __nccwpck_require__(8167)
const { join } = __nccwpck_require__(6928)
const { pathToFileURL } = __nccwpck_require__(7016)
const { wait } = __nccwpck_require__(8862)
const {
  WRITE_INDEX,
  READ_INDEX,
  SEQ_INDEX
} = __nccwpck_require__(5835)
const buffer = __nccwpck_require__(181)
const assert = __nccwpck_require__(2613)

const kImpl = Symbol('kImpl')

// Maximum pending buffered data before forcing a synchronous drain
const MAX_STRING = buffer.constants.MAX_STRING_LENGTH

function noop () {}

function updateState (stream, fn) {
  Atomics.add(stream[kImpl].state, SEQ_INDEX, 1)
  fn()
  Atomics.add(stream[kImpl].state, SEQ_INDEX, 1)
  Atomics.notify(stream[kImpl].state, SEQ_INDEX)
}

function resetIndexes (stream) {
  updateState(stream, () => {
    Atomics.store(stream[kImpl].state, READ_INDEX, 0)
    Atomics.store(stream[kImpl].state, WRITE_INDEX, 0)
  })
  Atomics.notify(stream[kImpl].state, READ_INDEX)
}

class FakeWeakRef {
  constructor (value) {
    this._value = value
  }

  deref () {
    return this._value
  }
}

class FakeFinalizationRegistry {
  register () {}

  unregister () {}
}

// Currently using FinalizationRegistry with code coverage breaks the world
// Ref: https://github.com/nodejs/node/issues/49344
const FinalizationRegistry = process.env.NODE_V8_COVERAGE ? FakeFinalizationRegistry : global.FinalizationRegistry || FakeFinalizationRegistry
const WeakRef = process.env.NODE_V8_COVERAGE ? FakeWeakRef : global.WeakRef || FakeWeakRef

const registry = new FinalizationRegistry((worker) => {
  if (worker.exited) {
    return
  }
  worker.terminate()
})

function createWorker (stream, opts) {
  const { filename, workerData } = opts

  const bundlerOverrides = '__bundlerPathsOverrides' in globalThis ? globalThis.__bundlerPathsOverrides : {}
  const toExecute = bundlerOverrides['thread-stream-worker'] || __nccwpck_require__.ab + "worker1.js"

  const worker = new Worker(toExecute, {
    ...opts.workerOpts,
    name: opts.workerOpts?.name || 'thread-stream',
    trackUnmanagedFds: false,
    workerData: {
      filename: filename.indexOf('file://') === 0
        ? filename
        : pathToFileURL(filename).href,
      dataBuf: stream[kImpl].dataBuf,
      stateBuf: stream[kImpl].stateBuf,
      workerData: {
        $context: {
          threadStreamVersion: version
        },
        ...workerData
      }
    }
  })

  // We keep a strong reference for now,
  // we need to start writing first
  worker.stream = new FakeWeakRef(stream)

  worker.on('message', onWorkerMessage)
  worker.on('exit', onWorkerExit)
  registry.register(stream, worker)

  return worker
}

function drain (stream) {
  assert(!stream[kImpl].sync)
  if (stream[kImpl].needDrain) {
    stream[kImpl].needDrain = false
    stream.emit('drain')
  }
}

function nextFlush (stream) {
  while (true) {
    const writeIndex = Atomics.load(stream[kImpl].state, WRITE_INDEX)
    // The worker stores -2 in shared memory before its ERROR message is
    // delivered, so the stream may not be destroyed yet.
    if (stream.destroyed || writeIndex < 0) {
      return
    }

    const leftover = stream[kImpl].data.length - writeIndex

    if (leftover > 0) {
      if (stream[kImpl].bufLen === 0) {
        stream[kImpl].flushing = false

        if (stream[kImpl].ending) {
          end(stream)
        } else if (stream[kImpl].needDrain) {
          process.nextTick(drain, stream)
        }

        return
      }

      write(stream, leftover, noop)
      continue
    }

    if (leftover === 0) {
      if (writeIndex === 0 && stream[kImpl].bufLen === 0) {
        // we had a flushSync in the meanwhile
        return
      }
      waitForRead(stream, () => {
        if (stream.destroyed) {
          return
        }

        resetIndexes(stream)
        nextFlush(stream)
      })
      return
    }

    // This should never happen
    destroy(stream, new Error('overwritten'))
    return
  }
}

function onWorkerMessage (msg) {
  const stream = this.stream.deref()
  if (stream === undefined) {
    this.exited = true
    // Terminate the worker.
    this.terminate()
    return
  }

  // Node.js watch mode may send internal worker messages that do not
  // participate in thread-stream's worker protocol.
  if (msg?.code == null) {
    return
  }

  switch (msg.code) {
    case 'READY':
      // Allow inactive streams to be collected, but retain streams that are
      // ending until the worker has emitted close.
      if (!stream[kImpl].ending) {
        this.stream = new WeakRef(stream)
      }

      waitForRead(stream, () => {
        stream[kImpl].ready = true
        stream.emit('ready')
      })
      break
    case 'ERROR':
      destroy(stream, msg.err)
      break
    case 'EVENT':
      if (Array.isArray(msg.args)) {
        stream.emit(msg.name, ...msg.args)
      } else {
        stream.emit(msg.name, msg.args)
      }
      break
    case 'FLUSHED': {
      if (msg.context !== 'thread-stream') {
        destroy(stream, new Error('this should not happen: ' + msg.code))
        break
      }

      const cb = stream[kImpl].flushCallbacks.get(msg.id)
      if (cb) {
        stream[kImpl].flushCallbacks.delete(msg.id)
        process.nextTick(cb)
      }
      break
    }
    case 'WARNING':
      process.emitWarning(msg.err)
      break
    default:
      destroy(stream, new Error('this should not happen: ' + msg.code))
  }
}

function onWorkerExit (code) {
  const stream = this.stream.deref()
  if (stream === undefined) {
    // Nothing to do, the worker already exit
    return
  }
  registry.unregister(stream)
  stream.worker.exited = true
  stream.worker.off('exit', onWorkerExit)
  destroy(stream, code !== 0 ? new Error('the worker thread exited') : null)
}

class ThreadStream extends EventEmitter {
  constructor (opts = {}) {
    super()

    if (opts.bufferSize < 4) {
      throw new Error('bufferSize must at least fit a 4-byte utf-8 char')
    }

    this[kImpl] = {}
    this[kImpl].stateBuf = new SharedArrayBuffer(128)
    this[kImpl].state = new Int32Array(this[kImpl].stateBuf)
    this[kImpl].dataBuf = new SharedArrayBuffer(opts.bufferSize || 4 * 1024 * 1024)
    this[kImpl].data = Buffer.from(this[kImpl].dataBuf)
    this[kImpl].sync = opts.sync || false
    this[kImpl].ending = false
    this[kImpl].ended = false
    this[kImpl].needDrain = false
    this[kImpl].destroyed = false
    this[kImpl].flushing = false
    this[kImpl].ready = false
    this[kImpl].finished = false
    this[kImpl].errored = null
    this[kImpl].closed = false
    this[kImpl].buf = []
    this[kImpl].bufHead = 0
    this[kImpl].bufLen = 0
    this[kImpl].flushCallbacks = new Map()
    this[kImpl].nextFlushId = 0
    this[kImpl].flushRetainCount = 0
    // Worker threads start referenced. Track user-facing ref() / unref()
    // separately so a pending flush(cb) can keep the loop alive without
    // clobbering an explicit ref().
    this[kImpl].userRef = true

    // TODO (fix): Make private?
    this.worker = createWorker(this, opts) // TODO (fix): make private
    this.on('message', (message, transferList) => {
      this.worker.postMessage(message, transferList)
    })
  }

  write (data) {
    const dataBuf = Buffer.isBuffer(data) ? data : Buffer.from(data)
    if (this[kImpl].destroyed) {
      error(this, new Error('the worker has exited'))
      return false
    }

    if (this[kImpl].ending) {
      error(this, new Error('the worker is ending'))
      return false
    }

    if (this[kImpl].flushing && this[kImpl].bufLen + dataBuf.length >= MAX_STRING) {
      try {
        writeSync(this)
        this[kImpl].flushing = true
      } catch (err) {
        destroy(this, err)
        return false
      }
    }

    this[kImpl].buf.push(dataBuf)
    this[kImpl].bufLen += dataBuf.length

    if (this[kImpl].sync) {
      try {
        writeSync(this)
        return true
      } catch (err) {
        destroy(this, err)
        return false
      }
    }

    if (!this[kImpl].flushing) {
      this[kImpl].flushing = true
      setImmediate(nextFlush, this)
    }

    this[kImpl].needDrain = this[kImpl].data.length - this[kImpl].bufLen - Atomics.load(this[kImpl].state, WRITE_INDEX) <= 0
    return !this[kImpl].needDrain
  }

  end () {
    if (this[kImpl].destroyed) {
      return
    }

    this[kImpl].ending = true
    // The worker normally holds only a weak reference after READY. Keep this
    // stream alive while its destination runs any asynchronous finalizer.
    this.worker.stream = new FakeWeakRef(this)
    end(this)
  }

  flush (cb) {
    const userCb = typeof cb === 'function' ? cb : null
    cb = userCb || noop

    if (userCb) {
      retainWorkerForPendingFlush(this)
    }

    let finished = false
    const done = (err) => {
      if (finished) {
        return
      }
      finished = true
      if (userCb) {
        releaseWorkerForPendingFlush(this)
      }
      cb(err)
    }

    flushBuffer(this, (err) => {
      if (err) {
        process.nextTick(done, err)
        return
      }

      requestWorkerFlush(this, done)
    })
  }

  flushSync () {
    if (this[kImpl].destroyed) {
      return
    }

    writeSync(this)
    flushSync(this)
  }

  unref () {
    this[kImpl].userRef = false
    if (this[kImpl].flushRetainCount === 0) {
      this.worker.unref()
    }
  }

  ref () {
    this[kImpl].userRef = true
    this.worker.ref()
  }

  get ready () {
    return this[kImpl].ready
  }

  get destroyed () {
    return this[kImpl].destroyed
  }

  get closed () {
    return this[kImpl].closed
  }

  get writable () {
    return !this[kImpl].destroyed && !this[kImpl].ending
  }

  get writableEnded () {
    return this[kImpl].ending
  }

  get writableFinished () {
    return this[kImpl].finished
  }

  get writableNeedDrain () {
    return this[kImpl].needDrain
  }

  get writableObjectMode () {
    return false
  }

  get writableErrored () {
    return this[kImpl].errored
  }
}

function flushBuffer (stream, cb) {
  if (stream[kImpl].destroyed) {
    process.nextTick(cb, new Error('the worker has exited'))
    return
  }

  if (!stream[kImpl].sync && (stream[kImpl].flushing || stream[kImpl].bufLen > 0)) {
    setImmediate(flushBuffer, stream, cb)
    return
  }

  waitForRead(stream, cb)
}

function waitForRead (stream, cb) {
  const writeIndex = Atomics.load(stream[kImpl].state, WRITE_INDEX)
  wait(stream[kImpl].state, READ_INDEX, writeIndex, Infinity, (err, res) => {
    if (err) {
      destroy(stream, err)
      cb(err)
      return
    }

    if (res !== 'ok') {
      waitForRead(stream, cb)
      return
    }

    cb()
  })
}

function retainWorkerForPendingFlush (stream) {
  if (stream[kImpl].flushRetainCount === 0) {
    stream.worker.ref()
  }
  stream[kImpl].flushRetainCount++
}

function releaseWorkerForPendingFlush (stream) {
  if (stream[kImpl].flushRetainCount === 0) {
    return
  }
  stream[kImpl].flushRetainCount--
  if (stream[kImpl].flushRetainCount === 0 && !stream[kImpl].userRef) {
    stream.worker.unref()
  }
}

function requestWorkerFlush (stream, cb) {
  if (stream[kImpl].destroyed) {
    process.nextTick(cb, new Error('the worker has exited'))
    return
  }

  if (!stream[kImpl].ready) {
    const onReady = () => {
      cleanup()
      requestWorkerFlush(stream, cb)
    }
    const onClose = () => {
      cleanup()
      process.nextTick(cb, new Error('the worker has exited'))
    }
    const cleanup = () => {
      stream.off('ready', onReady)
      stream.off('close', onClose)
    }

    stream.once('ready', onReady)
    stream.once('close', onClose)
    return
  }

  const id = ++stream[kImpl].nextFlushId
  stream[kImpl].flushCallbacks.set(id, cb)

  try {
    stream.worker.postMessage({
      code: 'FLUSH',
      context: 'thread-stream',
      id
    })
  } catch (err) {
    stream[kImpl].flushCallbacks.delete(id)
    destroy(stream, err)
    process.nextTick(cb, err)
  }
}

function failPendingFlushCallbacks (stream, err) {
  const callbacks = stream[kImpl].flushCallbacks
  if (callbacks.size === 0) {
    return
  }

  const flushErr = err || new Error('the worker has exited')

  for (const cb of callbacks.values()) {
    process.nextTick(cb, flushErr)
  }
  callbacks.clear()
}

function error (stream, err) {
  setImmediate(() => {
    stream.emit('error', err)
  })
}

function destroy (stream, err) {
  if (stream[kImpl].destroyed) {
    return
  }
  stream[kImpl].destroyed = true
  failPendingFlushCallbacks(stream, err)

  if (err) {
    stream[kImpl].errored = err
    error(stream, err)
  }

  if (!stream.worker.exited) {
    stream.worker.terminate()
      .catch(() => {})
      .then(() => {
        stream[kImpl].closed = true
        stream.emit('close')
      })
  } else {
    setImmediate(() => {
      stream[kImpl].closed = true
      stream.emit('close')
    })
  }
}

function write (stream, maxBytes, cb) {
  // data is smaller than the shared buffer length
  const current = Atomics.load(stream[kImpl].state, WRITE_INDEX)
  let offset = current
  let remaining = maxBytes

  while (remaining > 0 && stream[kImpl].bufLen !== 0) {
    const head = stream[kImpl].bufHead
    const buf = stream[kImpl].buf[head]

    if (buf.length <= remaining) {
      buf.copy(stream[kImpl].data, offset)
      offset += buf.length
      remaining -= buf.length
      stream[kImpl].bufLen -= buf.length
      stream[kImpl].bufHead = head + 1

      if (stream[kImpl].bufHead === stream[kImpl].buf.length) {
        stream[kImpl].buf.length = 0
        stream[kImpl].bufHead = 0
      } else if (stream[kImpl].bufHead >= 1024 && stream[kImpl].bufHead * 2 >= stream[kImpl].buf.length) {
        stream[kImpl].buf.splice(0, stream[kImpl].bufHead)
        stream[kImpl].bufHead = 0
      }
      continue
    }

    buf.copy(stream[kImpl].data, offset, 0, remaining)
    stream[kImpl].buf[head] = buf.subarray(remaining)
    stream[kImpl].bufLen -= remaining
    offset += remaining
    remaining = 0
  }

  updateState(stream, () => {
    Atomics.store(stream[kImpl].state, WRITE_INDEX, offset)
  })
  cb()
  return true
}

function end (stream) {
  if (stream[kImpl].ended || !stream[kImpl].ending || stream[kImpl].flushing) {
    return
  }
  stream[kImpl].ended = true

  try {
    stream.flushSync()

    let readIndex = Atomics.load(stream[kImpl].state, READ_INDEX)

    // process._rawDebug('writing index')
    updateState(stream, () => {
      Atomics.store(stream[kImpl].state, WRITE_INDEX, -1)
    })
    // process._rawDebug(`(end) readIndex (${Atomics.load(stream.state, READ_INDEX)}) writeIndex (${Atomics.load(stream.state, WRITE_INDEX)})`)

    // Wait for the process to complete
    let spins = 0
    while (readIndex !== -1) {
      // process._rawDebug(`read = ${read}`)
      Atomics.wait(stream[kImpl].state, READ_INDEX, readIndex, 1000)
      readIndex = Atomics.load(stream[kImpl].state, READ_INDEX)

      if (readIndex === -2) {
        destroy(stream, new Error('end() failed'))
        return
      }

      if (++spins === 10) {
        destroy(stream, new Error('end() took too long (10s)'))
        return
      }
    }

    process.nextTick(() => {
      stream[kImpl].finished = true
      stream.emit('finish')
    })
  } catch (err) {
    destroy(stream, err)
  }
  // process._rawDebug('end finished...')
}

function writeSync (stream) {
  const cb = () => {
    if (stream[kImpl].ending) {
      end(stream)
    } else if (stream[kImpl].needDrain) {
      process.nextTick(drain, stream)
    }
  }
  stream[kImpl].flushing = false

  while (stream[kImpl].bufLen !== 0) {
    const writeIndex = Atomics.load(stream[kImpl].state, WRITE_INDEX)
    if (writeIndex < 0) {
      throw new Error('_writeSync failed')
    }
    const leftover = stream[kImpl].data.length - writeIndex
    if (leftover === 0) {
      flushSync(stream)
      resetIndexes(stream)
      continue
    } else if (leftover < 0) {
      // stream should never happen
      throw new Error('overwritten')
    }

    write(stream, leftover, cb)
  }
}

function flushSync (stream) {
  if (stream[kImpl].flushing) {
    throw new Error('unable to flush while flushing')
  }

  // process._rawDebug('flushSync started')

  const writeIndex = Atomics.load(stream[kImpl].state, WRITE_INDEX)

  let spins = 0

  // TODO handle deadlock
  while (true) {
    const readIndex = Atomics.load(stream[kImpl].state, READ_INDEX)

    if (readIndex === -2) {
      throw Error('_flushSync failed')
    }

    // process._rawDebug(`(flushSync) readIndex (${readIndex}) writeIndex (${writeIndex})`)
    if (readIndex !== writeIndex) {
      // TODO stream timeouts for some reason.
      Atomics.wait(stream[kImpl].state, READ_INDEX, readIndex, 1000)
    } else {
      break
    }

    if (++spins === 10) {
      throw new Error('_flushSync took too long (10s)')
    }
  }
  // process._rawDebug('flushSync finished')
}

module.exports = ThreadStream


/***/ }),

/***/ 5835:
/***/ ((module) => {



const SEQ_INDEX = 2
const WRITE_INDEX = 4
const READ_INDEX = 8

module.exports = {
  WRITE_INDEX,
  READ_INDEX,
  SEQ_INDEX
}


/***/ }),

/***/ 8862:
/***/ ((module) => {



// Maximum wait time for a single waitAsync call
// Used as a fallback poll interval in case notifications are missed
// Keep this low enough for good throughput but high enough to not busy-loop
const WAIT_MS = 10000

function wait (state, index, expected, timeout, done) {
  const max = timeout === Infinity ? Infinity : Date.now() + timeout

  const check = (previous) => {
    const current = Atomics.load(state, index)
    // Use >= rather than ===: the value this wait() observes (READ_INDEX) is
    // advanced by the worker in jumps toward WRITE_INDEX, so it can skip over
    // a snapshot of `expected` taken earlier (e.g. the READY handshake). Because
    // the reader can never fall behind what has already been written, once it
    // reaches or passes `expected` it is guaranteed to have caught up.
    if (current >= expected) {
      done(null, 'ok')
      return
    }

    if (previous !== undefined && current !== previous) {
      done(null, 'not-equal')
      return
    }

    if (max !== Infinity && Date.now() > max) {
      done(null, 'timed-out')
      return
    }

    // Wait for any change from current value
    const remaining = max === Infinity ? WAIT_MS : Math.min(WAIT_MS, Math.max(1, max - Date.now()))
    const result = Atomics.waitAsync(state, index, current, remaining)

    if (result.async) {
      result.value.then((res) => {
        if (res === 'ok') {
          const latest = Atomics.load(state, index)
          done(null, latest >= expected ? 'ok' : 'not-equal')
          return
        }

        check(current)
      })
    } else {
      // Value changed between Atomics.load() and Atomics.waitAsync().
      setImmediate(done, null, 'not-equal')
    }
  }

  check()
}

function waitDiff (state, index, expected, timeout, done) {
  const max = timeout === Infinity ? Infinity : Date.now() + timeout

  const check = () => {
    const current = Atomics.load(state, index)
    if (current !== expected) {
      done(null, 'ok')
      return
    }

    if (max !== Infinity && Date.now() > max) {
      done(null, 'timed-out')
      return
    }

    // Wait for value to change from expected.
    // If we are notified, resume immediately even if the value cycled back
    // to the same number before we could re-read it.
    const remaining = max === Infinity ? WAIT_MS : Math.min(WAIT_MS, Math.max(1, max - Date.now()))
    const result = Atomics.waitAsync(state, index, expected, remaining)

    if (result.async) {
      result.value.then((res) => {
        if (res === 'ok') {
          done(null, 'ok')
          return
        }

        check()
      })
    } else {
      // Value already changed (not-equal) - recheck on next tick
      setImmediate(check)
    }
  }

  check()
}

module.exports = { wait, waitDiff }


/***/ }),

/***/ 2513:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {


// EXPORTS
__nccwpck_require__.d(__webpack_exports__, {
  e: () => (/* binding */ run)
});

// EXTERNAL MODULE: external "node:util"
var external_node_util_ = __nccwpck_require__(7975);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __nccwpck_require__(3024);
;// CONCATENATED MODULE: external "node:net"
const external_node_net_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:net");
;// CONCATENATED MODULE: ./src/contracts/listen.ts
/**
 * Listen addresses, one grammar for the server's `listen`/`--listen`, the Action's `listen` input
 * and the daemon's config: `host:port` or `[ipv6]:port`, port 0\u201365535 (0: any free port).
 */

/** The hosts the daemon may listen on: it holds the cache token, so never a routable address. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);
class listen_ListenError extends Error {
}
/** `host:port` or `[ipv6]:port` \u2192 its parts; a ListenError saying the grammar otherwise. */
function listen_parseHostPort(value) {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(String(value).trim());
    const port = match ? Number(match[3]) : NaN;
    if (!match || port > 65535)
        throw new listen_ListenError(`${JSON.stringify(String(value))} is not HOST:PORT`);
    return { host: (match[1] ?? match[2]), port };
}
function listen_isLoopbackHost(host) {
    return LOOPBACK_HOSTS.has(host);
}
/** Any loopback address (127.0.0.0/8, ::1, localhost; brackets allowed), where plain http never leaves the machine. */
function isLoopbackAddress(hostname) {
    const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (host === 'localhost' || host === '::1')
        return true;
    return isIP(host) === 4 && host.startsWith('127.');
}
/** The host as it goes into a URL: IPv6 addresses in brackets (once). */
function urlHost(host) {
    return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

;// CONCATENATED MODULE: ./src/server/config/config-error.ts
/** A bad config file or flag: the message says where (`file:line: key.path: problem`). */
class ConfigError extends Error {
}

;// CONCATENATED MODULE: ./src/server/config/units.ts
/** Values in the server's config: durations, sizes, counts and listen addresses, each refused with a ConfigError naming the problem. */


const DURATION_UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
const SIZE_UNITS = {
    '': 1,
    b: 1,
    k: 1024,
    kib: 1024,
    m: 1024 ** 2,
    mib: 1024 ** 2,
    g: 1024 ** 3,
    gib: 1024 ** 3,
    t: 1024 ** 4,
    tib: 1024 ** 4,
};
/** A whole number with a unit from `units` (a bare number takes `bareUnit`) \u2192 the number times the unit, or NaN. */
function numberWithUnit(value, units, bareUnit) {
    const text = typeof value === 'number' ? `${value}${bareUnit}` : String(value).trim();
    const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
    const unit = match ? units[match[2].toLowerCase()] : undefined;
    return match && unit !== undefined ? Number(match[1]) * unit : NaN;
}
/** `30s`, `15m`, `1h`, `30d` (or a number of seconds) \u2192 seconds. Throws a `ConfigError` otherwise. */
function parseDuration(value) {
    const seconds = numberWithUnit(value, DURATION_UNITS, 's');
    if (!Number.isSafeInteger(seconds) || seconds <= 0) {
        throw new ConfigError(`${JSON.stringify(value)} is not a duration such as 30s, 15m, 1h or 30d`);
    }
    return seconds;
}
/** `10GiB`, `512MiB`, `1G`, `4096` (binary units; a number is bytes) \u2192 bytes. */
function parseSize(value) {
    const bytes = numberWithUnit(value, SIZE_UNITS, '');
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
        throw new ConfigError(`${JSON.stringify(value)} is not a size such as 512MiB or 10GiB`);
    }
    return bytes;
}
/** A whole number of at least `min`. */
function parseCount(value, min = 1) {
    const count = typeof value === 'number' ? value : NaN;
    if (!Number.isSafeInteger(count) || count < min) {
        throw new ConfigError(`${JSON.stringify(value)} is not a whole number of at least ${min}`);
    }
    return count;
}
/** `host:port` or `[ipv6]:port` (the one listen grammar, src/contracts/listen.ts). */
function parseListen(value) {
    try {
        return listen_parseHostPort(value);
    }
    catch (error) {
        if (error instanceof listen_ListenError)
            throw new ConfigError(error.message);
        throw error;
    }
}

// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __nccwpck_require__(6760);
;// CONCATENATED MODULE: ./src/server/data-dir.ts
/** The layout of the data directory (see docs/server.md). */

const DATABASE_FILE = 'sluice.db';
const NAR_DIR = 'nars';
function dataPaths(dataDir) {
    const root = (0,external_node_path_.resolve)(dataDir);
    return { root, database: (0,external_node_path_.join)(root, DATABASE_FILE), nars: (0,external_node_path_.join)(root, NAR_DIR) };
}

;// CONCATENATED MODULE: external "node:sqlite"
const external_node_sqlite_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:sqlite");
// EXTERNAL MODULE: ./src/server/storage/metadata-rows.ts
var metadata_rows = __nccwpck_require__(9848);
;// CONCATENATED MODULE: ./src/server/storage/sqlite-retention.ts
const RETENTION_SCHEMA = `
CREATE TABLE IF NOT EXISTS nar_keys (
  key TEXT PRIMARY KEY, used_at INTEGER NOT NULL, deleting_since INTEGER
);
CREATE TABLE IF NOT EXISTS pins (
  slice TEXT NOT NULL, name TEXT NOT NULL, store_paths TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER, PRIMARY KEY (slice, name)
);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deletions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, slice TEXT, reason TEXT NOT NULL,
  items TEXT NOT NULL, bytes INTEGER NOT NULL
);
`;
/** A claim older than this was left by a collector that died between claim and delete. */
const ABANDONED_CLAIM_MS = 60_000;
/** Runs `body` in an IMMEDIATE transaction (the write lock first, so check-then-write is atomic). */
function transaction(db, body) {
    db.exec('BEGIN IMMEDIATE');
    try {
        const result = body();
        db.exec('COMMIT');
        return result;
    }
    catch (error) {
        if (db.isTransaction)
            db.exec('ROLLBACK');
        throw error;
    }
}
/** Databases made before retention lack `narinfos.last_accessed_at`: null reads as created_at. */
function migrateRetention(db) {
    db.exec(RETENTION_SCHEMA);
    const columns = db.prepare('PRAGMA table_info(narinfos)').all();
    if (!columns.some((column) => column.name === 'last_accessed_at'))
        db.exec('ALTER TABLE narinfos ADD COLUMN last_accessed_at INTEGER');
}
function touchNarInfos(db, sql, keys, at) {
    if (keys.length === 0)
        return 0;
    const statement = sql(`UPDATE narinfos SET last_accessed_at = ?1
       WHERE slice = ?2 AND hash_part = ?3 AND coalesce(last_accessed_at, created_at) < ?1`);
    const exists = sql('SELECT 1 FROM narinfos WHERE slice = ? AND hash_part = ?');
    return transaction(db, () => {
        let found = 0;
        for (const key of keys) {
            const changed = statement.run(+at, key.slice, key.hashPart).changes;
            if (Number(changed) > 0 || exists.get(key.slice, key.hashPart))
                found++;
        }
        return found;
    });
}
function listSlices(sql) {
    return sql('SELECT DISTINCT slice FROM narinfos ORDER BY slice').all().map((r) => String(r.slice));
}
function listNarInfos(sql, slice, after, limit) {
    const rows = sql('SELECT * FROM narinfos WHERE slice = ? AND hash_part > ? ORDER BY hash_part LIMIT ?').all(slice, after, limit);
    return rows.map((row) => ({
        slice: String(row.slice),
        hashPart: String(row.hash_part),
        storePath: String(row.store_path),
        narKey: String(row.nar_key),
        narinfo: String(row.narinfo),
        createdAt: new Date(Number(row.created_at)),
        lastAccessedAt: new Date(Number(row.last_accessed_at ?? row.created_at)),
    }));
}
function narKeysInUse(sql, usedSince) {
    const keys = (text, ...args) => new Set(sql(text).all(...args).map((r) => String(r.key)));
    return {
        referenced: keys('SELECT DISTINCT nar_key AS key FROM narinfos'),
        touched: keys('SELECT key FROM nar_keys WHERE used_at >= ?', +usedSince),
    };
}
function insertDeletion(sql, record) {
    sql('INSERT INTO deletions (time, slice, reason, items, bytes) VALUES (?, ?, ?, ?, ?)').run(+record.time, record.slice, record.reason, JSON.stringify(record.items), record.bytes);
}
function deleteNarInfos(db, sql, slice, hashParts, unusedBefore, record) {
    const parts = JSON.stringify(hashParts);
    return transaction(db, () => {
        const fresh = sql(`SELECT count(*) AS n FROM narinfos WHERE slice = ? AND hash_part IN (SELECT value FROM json_each(?))
         AND (created_at >= ?3 OR coalesce(last_accessed_at, created_at) >= ?3)`).get(slice, parts, +unusedBefore);
        if (Number(fresh.n) > 0)
            return false;
        sql('DELETE FROM narinfos WHERE slice = ? AND hash_part IN (SELECT value FROM json_each(?))').run(slice, parts);
        insertDeletion(sql, record);
        return true;
    });
}
function touchNar(db, sql, key, at) {
    return transaction(db, () => {
        const row = sql('SELECT deleting_since FROM nar_keys WHERE key = ?').get(key);
        if (row?.deleting_since != null && Number(row.deleting_since) > +at - ABANDONED_CLAIM_MS)
            return false;
        sql(`INSERT INTO nar_keys (key, used_at, deleting_since) VALUES (?1, ?2, NULL)
         ON CONFLICT (key) DO UPDATE SET used_at = max(used_at, ?2), deleting_since = NULL`).run(key, +at);
        return true;
    });
}
/** Whether a narinfo is being inserted for a NAR a collector claimed (the insert must not happen). */
function isNarClaimed(sql, key, at) {
    const row = sql('SELECT deleting_since FROM nar_keys WHERE key = ?').get(key);
    return row?.deleting_since != null && Number(row.deleting_since) > +at - ABANDONED_CLAIM_MS;
}
function claimNarDeletion(db, sql, key, unusedBefore, at) {
    return transaction(db, () => {
        if (sql('SELECT 1 FROM narinfos WHERE nar_key = ? LIMIT 1').get(key))
            return false;
        const row = sql('SELECT used_at FROM nar_keys WHERE key = ?').get(key);
        if (row && Number(row.used_at) >= +unusedBefore)
            return false;
        sql(`INSERT INTO nar_keys (key, used_at, deleting_since) VALUES (?1, 0, ?2)
         ON CONFLICT (key) DO UPDATE SET deleting_since = ?2`).run(key, +at);
        sql('DELETE FROM slice_nars WHERE key = ?').run(key);
        return true;
    });
}
function finishNarDeletion(db, sql, keys, record) {
    transaction(db, () => {
        const remove = sql('DELETE FROM nar_keys WHERE key = ? AND deleting_since IS NOT NULL');
        for (const key of keys)
            remove.run(key);
        if (record)
            insertDeletion(sql, record);
    });
}
function pinOf(row) {
    return {
        slice: String(row.slice),
        name: String(row.name),
        storePaths: JSON.parse(String(row.store_paths)),
        createdAt: new Date(Number(row.created_at)),
        expiresAt: row.expires_at === null ? null : new Date(Number(row.expires_at)),
    };
}
function putPin(db, sql, pin) {
    transaction(db, () => {
        const row = sql('SELECT * FROM pins WHERE slice = ? AND name = ?').get(pin.slice, pin.name);
        const paths = new Set([...(row ? pinOf(row).storePaths : []), ...pin.storePaths]);
        sql(`INSERT INTO pins (slice, name, store_paths, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (slice, name) DO UPDATE SET store_paths = excluded.store_paths,
           expires_at = excluded.expires_at`).run(pin.slice, pin.name, JSON.stringify([...paths].sort()), +pin.createdAt, pin.expiresAt && +pin.expiresAt);
    });
}
function listPins(sql, slice) {
    const rows = sql('SELECT * FROM pins WHERE ?1 IS NULL OR slice = ?1 ORDER BY slice, name').all(slice ?? null);
    return rows.map(pinOf);
}
function deletePin(sql, slice, name) {
    return Number(sql('DELETE FROM pins WHERE slice = ? AND name = ?').run(slice, name).changes) > 0;
}
function acquireLease(db, sql, name, holder, until, at) {
    return transaction(db, () => {
        const row = sql('SELECT * FROM leases WHERE name = ?').get(name);
        if (row && String(row.holder) !== holder && Number(row.expires_at) > +at)
            return false;
        sql(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at`).run(name, holder, +until);
        return true;
    });
}
function releaseLease(sql, name, holder) {
    sql('DELETE FROM leases WHERE name = ? AND holder = ?').run(name, holder);
}
function listDeletions(sql, filter) {
    const rows = sql('SELECT * FROM deletions WHERE time >= ? ORDER BY time, id LIMIT ?').all(filter.since ? +filter.since : 0, filter.limit ?? -1);
    return rows.map((row) => ({
        time: new Date(Number(row.time)),
        slice: row.slice === null ? null : String(row.slice),
        reason: String(row.reason),
        items: JSON.parse(String(row.items)),
        bytes: Number(row.bytes),
    }));
}

;// CONCATENATED MODULE: ./src/nix/nix32.ts
/**
 * Nix's base-32 encoding ("nix32"): a custom alphabet without e, o, t, u, and the bytes read from
 * the end, so the first character carries the most significant bits of the last byte.
 */
const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
/** One nix32 character, as a regular-expression class. */
const NIX32_CLASS = `[${NIX32_ALPHABET}]`;
const DIGIT_OF = new Map([...NIX32_ALPHABET].map((c, i) => [c, i]));
/** Length in characters of the nix32 form of `byteLength` bytes. */
function nix32Length(byteLength) {
    return Math.ceil((byteLength * 8) / 5);
}
function encodeNix32(bytes) {
    const length = nix32Length(bytes.length);
    let out = '';
    for (let n = length - 1; n >= 0; n--) {
        const bit = n * 5;
        const i = bit >> 3;
        const j = bit & 7;
        const low = bytes[i] >> j;
        const high = i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0;
        out += NIX32_ALPHABET[(low | high) & 0x1f];
    }
    return out;
}
class Nix32Error extends Error {
}
function decodeNix32(text, byteLength = Math.floor((text.length * 5) / 8)) {
    if (text.length !== nix32Length(byteLength)) {
        throw new Nix32Error(`nix32 string of ${text.length} characters cannot hold ${byteLength} bytes`);
    }
    const bytes = Buffer.alloc(byteLength);
    for (let n = 0; n < text.length; n++) {
        const c = text[text.length - n - 1];
        const digit = DIGIT_OF.get(c);
        if (digit === undefined)
            throw new Nix32Error(`invalid character '${c}' in nix32 string`);
        const bit = n * 5;
        const i = bit >> 3;
        const j = bit & 7;
        bytes[i] |= (digit << j) & 0xff;
        const carry = digit >> (8 - j);
        if (i + 1 < byteLength)
            bytes[i + 1] |= carry;
        else if (carry !== 0)
            throw new Nix32Error(`nix32 string has bits beyond ${byteLength} bytes`);
    }
    return bytes;
}
function isNix32(text) {
    for (const c of text)
        if (!DIGIT_OF.has(c))
            return false;
    return true;
}

;// CONCATENATED MODULE: ./src/server/storage/sqlite-narinfo-set.ts


const sliceHashParts = (row) => ({
    slice: (0,metadata_rows/* str */.gx)(row.slice),
    owner: (0,metadata_rows/* sliceOwnerOf */.du)(row, 'owner_'),
    hashParts: (0,metadata_rows/* str */.gx)(row.hash_parts),
});
const INT64_MAX = 2n ** 63n - 1n;
/** A cursor of digits as SQLite's integer (one beyond any counter value is as good as the largest). */
const asInt64 = (digits) => (BigInt(digits) > INT64_MAX ? INT64_MAX : BigInt(digits));
async function readHashParts(sql, since) {
    const grouped = (rows) => `SELECT n.slice, group_concat(n.hash_part, '') AS hash_parts,
      s.issuer AS owner_issuer, s.repository_id AS owner_repository_id,
      s.repository_owner_id AS owner_repository_owner_id
    FROM ${rows} n LEFT JOIN slices s ON s.name = n.slice GROUP BY n.slice`;
    // Read first: writes are serialised, so every row numbered up to it is committed now. Rows
    // committed after it have higher numbers, so the next delta has them (maybe again).
    const counter = sql(`SELECT value FROM sequences WHERE name = 'narinfos'`).get();
    const cursor = String(counter?.value ?? 0);
    if (since !== null) {
        // On the seq index: left to itself the planner walks every row in slice order.
        const rows = sql(grouped('(SELECT slice, hash_part FROM narinfos INDEXED BY narinfos_by_seq WHERE seq > ?)')).all(asInt64(since));
        return { cursor, slices: rows.map(sliceHashParts) };
    }
    // Everything, in 32 steps by the first character with a turn of the event loop between them:
    // a million rows read at once held every other request for seconds.
    const slices = new Map();
    const step = sql(grouped('(SELECT slice, hash_part FROM narinfos INDEXED BY narinfos_by_hash_slice WHERE hash_part >= ? AND hash_part < ?)'));
    for (let i = 0; i < NIX32_ALPHABET.length; i++) {
        const upper = NIX32_ALPHABET[i + 1] ?? '{';
        for (const row of step.all(NIX32_ALPHABET[i], upper)) {
            const part = sliceHashParts(row);
            const entry = slices.get(part.slice);
            if (entry)
                entry.parts.push(part.hashParts);
            else
                slices.set(part.slice, { ...part, parts: [part.hashParts] });
        }
        await new Promise((resolve) => setImmediate(resolve));
    }
    return {
        cursor,
        slices: [...slices.values()].map(({ slice, owner, parts }) => ({
            slice,
            owner,
            hashParts: parts.join(''),
        })),
    };
}

;// CONCATENATED MODULE: ./src/server/storage/sqlite-metadata-store.ts
/** MetadataStore on SQLite (`node:sqlite`), one file in the data directory, WAL mode. */




const SCHEMA = `
CREATE TABLE IF NOT EXISTS slice_nars (
  slice TEXT NOT NULL, key TEXT NOT NULL, compression TEXT NOT NULL, file_size INTEGER NOT NULL,
  nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL, created_at INTEGER NOT NULL, file_hash TEXT,
  PRIMARY KEY (slice, key)
);
CREATE TABLE IF NOT EXISTS narinfos (
  slice TEXT NOT NULL, hash_part TEXT NOT NULL, store_path TEXT NOT NULL, nar_key TEXT NOT NULL,
  narinfo TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (slice, hash_part)
);
CREATE INDEX IF NOT EXISTS narinfos_by_hash_slice ON narinfos (hash_part, slice);
DROP INDEX IF EXISTS narinfos_by_hash;
CREATE INDEX IF NOT EXISTS narinfos_by_nar ON narinfos (nar_key);
CREATE TABLE IF NOT EXISTS slices (
  name TEXT PRIMARY KEY, repository_id TEXT NOT NULL, repository_owner_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, issuer TEXT NOT NULL DEFAULT 'github'
);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, slice TEXT NOT NULL,
  store_path TEXT NOT NULL, nar_size INTEGER NOT NULL, file_size INTEGER NOT NULL,
  repository TEXT, repository_id TEXT, ref TEXT, workflow TEXT, run_id TEXT, sha TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_slice_time ON audit (slice, time);
CREATE TABLE IF NOT EXISTS used_id_tokens (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS used_id_tokens_by_expiry ON used_id_tokens (expires_at);
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS read_tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, read TEXT NOT NULL, created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER
);
`;
class SqliteMetadataStore {
    db;
    statements = new Map();
    /** The filter of the query running now, for `sluice_readable(slice)` (queries run synchronously). */
    readable = () => false;
    constructor(path) {
        this.db = new external_node_sqlite_namespaceObject.DatabaseSync(path);
        // WAL + synchronous=NORMAL: no fsync per commit (FULL's fsync blocked the event loop ~2 ms per
        // upload and per narinfo). The database stays consistent; a power loss may drop the last commits,
        // which a cache survives: blobs are durable before their record, a lost narinfo is pushed again.
        this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
        this.db.exec(SCHEMA);
        this.addFileHashColumn();
        migrateRetention(this.db);
        this.addColumn('narinfos', 'signed_by', 'TEXT');
        // Bindings made before several issuers were kept apart were all made by the default issuer.
        this.addColumn('slices', 'issuer', `TEXT NOT NULL DEFAULT 'github'`);
        // Insert order for the narinfo set's deltas: a counter, never reused (a rowid would be after a
        // delete). Rows from before it have none and are only in full answers.
        this.addColumn('narinfos', 'seq', 'INTEGER');
        this.db.exec('CREATE INDEX IF NOT EXISTS narinfos_by_seq ON narinfos (seq)');
        // Slices are filtered inside the query, on the (hash_part, slice) index: a narinfo in a slice the
        // reader cannot see is never returned, so it costs (and times) about like one that does not exist.
        this.db.function('sluice_readable', (slice, issuer, repositoryId, repositoryOwnerId) => this.readable(String(slice), (0,metadata_rows/* sliceOwnerOf */.du)({ issuer, repository_id: repositoryId, repository_owner_id: repositoryOwnerId }))
            ? 1
            : 0);
    }
    /** Runs `query` with `readable` as the filter `sluice_readable(...)` applies. */
    filtered(readable, query) {
        this.readable = readable;
        try {
            return query();
        }
        finally {
            this.readable = () => false;
        }
    }
    addColumn(table, column, type) {
        const columns = this.db.prepare(`PRAGMA table_info(${table})`).all();
        if (!columns.some((existing) => existing.name === column)) {
            this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
        }
    }
    /**
     * Databases made before NARs could be named by their NarHash lack `file_hash`: their keys are all
     * `<filehash>.nar[.ext]`, so a null there is read from the key.
     */
    addFileHashColumn() {
        const columns = this.db.prepare('PRAGMA table_info(slice_nars)').all();
        if (!columns.some((column) => column.name === 'file_hash')) {
            this.db.exec('ALTER TABLE slice_nars ADD COLUMN file_hash TEXT');
        }
    }
    /** Prepared once, reused: narinfo lookups are the hot path (Nix asks for every path of a closure). */
    sql(text) {
        let statement = this.statements.get(text);
        if (!statement) {
            statement = this.db.prepare(text);
            this.statements.set(text, statement);
        }
        return statement;
    }
    async recordUpload(slice, facts) {
        this.sql(`INSERT OR IGNORE INTO slice_nars
         (slice, key, compression, file_hash, file_size, nar_hash, nar_size, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(slice, facts.key, facts.compression, facts.fileHash, facts.fileSize, facts.narHash, facts.narSize, Date.now());
    }
    async uploadedNar(slice, key) {
        const row = this.sql('SELECT * FROM slice_nars WHERE slice = ? AND key = ?').get(slice, key);
        if (!row)
            return null;
        return {
            key: (0,metadata_rows/* str */.gx)(row.key),
            compression: (0,metadata_rows/* str */.gx)(row.compression),
            fileHash: (0,metadata_rows/* optional */.lq)(row.file_hash) ?? `sha256:${(0,metadata_rows/* str */.gx)(row.key).slice(0, 52)}`,
            fileSize: Number(row.file_size),
            narHash: (0,metadata_rows/* str */.gx)(row.nar_hash),
            narSize: Number(row.nar_size),
        };
    }
    async putNarInfo(record, audit) {
        this.db.exec('BEGIN IMMEDIATE');
        try {
            if (isNarClaimed(this.run, record.narKey, record.createdAt)) {
                this.db.exec('ROLLBACK');
                return 'nar_missing';
            }
            // Writes are serialised (BEGIN IMMEDIATE), so sequence numbers commit in order.
            const { value: seq } = this.sql(`INSERT INTO sequences (name, value) VALUES ('narinfos', 1)
           ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`).get();
            const inserted = this.sql(`INSERT OR IGNORE INTO narinfos (slice, hash_part, store_path, nar_key, narinfo, created_at, signed_by, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(record.slice, record.hashPart, record.storePath, record.narKey, record.narinfo, +record.createdAt, record.signedBy ?? null, seq);
            if (inserted.changes === 0) {
                this.db.exec('ROLLBACK');
                return 'exists';
            }
            this.sql(`INSERT INTO audit (time, slice, store_path, nar_size, file_size, repository, repository_id, ref,
             workflow, run_id, sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(+audit.time, audit.slice, audit.storePath, audit.narSize, audit.fileSize, audit.repository ?? null, audit.repositoryId ?? null, audit.ref ?? null, audit.workflow ?? null, audit.runId ?? null, audit.sha ?? null);
            this.db.exec('COMMIT');
            return 'created';
        }
        catch (e) {
            if (this.db.isTransaction)
                this.db.exec('ROLLBACK');
            throw e;
        }
    }
    async findNarInfos(hashParts, readable) {
        // One statement for the batch: the hash parts go in as one JSON array (no SQL built from input).
        const rows = this.filtered(readable, () => this.sql(`${metadata_rows/* NARINFOS_WITH_OWNER */.A7} WHERE n.hash_part IN (SELECT value FROM json_each(?))
           AND sluice_readable(n.slice, s.issuer, s.repository_id, s.repository_owner_id)`).all(JSON.stringify(hashParts)));
        return rows.map(metadata_rows/* narInfoRecord */.X8);
    }
    async narInfoHashParts(since) {
        return readHashParts(this.run, since);
    }
    async isNarReadable(key, readable) {
        const rows = this.sql(`SELECT DISTINCT n.slice, s.issuer, s.repository_id, s.repository_owner_id
         FROM narinfos n LEFT JOIN slices s ON s.name = n.slice WHERE n.nar_key = ?`).all(key);
        return rows.some((r) => readable((0,metadata_rows/* str */.gx)(r.slice), (0,metadata_rows/* sliceOwnerOf */.du)(r)));
    }
    async sliceOwner(slice) {
        const row = this.sql('SELECT * FROM slices WHERE name = ?').get(slice);
        return row ? (0,metadata_rows/* sliceOwnerOf */.du)(row) : null;
    }
    async bindSlice(slice, owner) {
        this.sql(`INSERT OR IGNORE INTO slices (name, repository_id, repository_owner_id, created_at, issuer)
         VALUES (?, ?, ?, ?, ?)`).run(slice, owner.repositoryId, owner.repositoryOwnerId, Date.now(), owner.issuer);
        return (await this.sliceOwner(slice));
    }
    async listAudit(filter) {
        const rows = this.sql(`SELECT * FROM audit WHERE (?1 IS NULL OR slice = ?1) AND time >= ?2 ORDER BY time, id LIMIT ?3`).all(filter.slice ?? null, filter.since ? +filter.since : 0, filter.limit ?? -1);
        return rows.map(metadata_rows/* auditEntry */.GE);
    }
    async useIdTokenOnce(key, expiresAt, now) {
        this.sql('DELETE FROM used_id_tokens WHERE expires_at <= ?').run(+now);
        return (this.sql('INSERT OR IGNORE INTO used_id_tokens (key, expires_at) VALUES (?, ?)').run(key, +expiresAt)
            .changes === 1);
    }
    async addReadToken(token) {
        this.sql(`INSERT INTO read_tokens (id, name, read, created_at, expires_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`).run(token.id, token.name, JSON.stringify(token.read), +token.createdAt, +token.expiresAt, token.lastUsedAt ? +token.lastUsedAt : null, token.revokedAt ? +token.revokedAt : null);
    }
    async listReadTokens() {
        const rows = this.sql('SELECT * FROM read_tokens ORDER BY created_at, id').all();
        const date = (v) => (v === null ? null : new Date(Number(v)));
        return rows.map((r) => ({
            id: (0,metadata_rows/* str */.gx)(r.id),
            name: (0,metadata_rows/* str */.gx)(r.name),
            read: JSON.parse((0,metadata_rows/* str */.gx)(r.read)),
            createdAt: new Date(Number(r.created_at)),
            expiresAt: new Date(Number(r.expires_at)),
            lastUsedAt: date(r.last_used_at),
            revokedAt: date(r.revoked_at),
        }));
    }
    async revokeReadToken(id, at) {
        const found = this.sql('UPDATE read_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?').run(+at, id);
        return found.changes === 1;
    }
    async touchReadToken(id, at) {
        const row = this.sql('UPDATE read_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ? RETURNING revoked_at').get(+at, id);
        return row ? { revoked: row.revoked_at !== null } : null;
    }
    // RetentionStore: the queries live in sqlite-retention.ts.
    run = this.sql.bind(this);
    async touchNarInfos(keys, at) {
        return touchNarInfos(this.db, this.run, keys, at);
    }
    async listSlices() {
        return listSlices(this.run);
    }
    async listNarInfos(slice, after, limit) {
        return listNarInfos(this.run, slice, after, limit);
    }
    async narKeysInUse(usedSince) {
        return narKeysInUse(this.run, usedSince);
    }
    async deleteNarInfos(slice, hashParts, unusedBefore, record) {
        return deleteNarInfos(this.db, this.run, slice, hashParts, unusedBefore, record);
    }
    async touchNar(key, at) {
        return touchNar(this.db, this.run, key, at);
    }
    async claimNarDeletion(key, unusedBefore, at) {
        return claimNarDeletion(this.db, this.run, key, unusedBefore, at);
    }
    async finishNarDeletion(keys, record) {
        finishNarDeletion(this.db, this.run, keys, record);
    }
    async putPin(pin) {
        putPin(this.db, this.run, pin);
    }
    async listPins(slice) {
        return listPins(this.run, slice);
    }
    async deletePin(slice, name) {
        return deletePin(this.run, slice, name);
    }
    async acquireLease(name, holder, until, at) {
        return acquireLease(this.db, this.run, name, holder, until, at);
    }
    async releaseLease(name, holder) {
        releaseLease(this.run, name, holder);
    }
    async listDeletions(filter) {
        return listDeletions(this.run, filter);
    }
    async close() {
        if (this.db.isOpen)
            this.db.close();
    }
}

;// CONCATENATED MODULE: ./src/server/audit.ts
/**
 * The audit log of accepted writes: rows are written by the narinfo upload (in the same transaction
 * as the narinfo), read here for `sluice audit`.
 */




/** `--since`: an ISO date/time, or a duration back from `now` (`24h`, `7d`). */
function parseSince(text, now = new Date()) {
    if (/^\d+\s*[smhd]$/.test(text.trim()))
        return new Date(+now - parseDuration(text) * 1000);
    const date = new Date(text);
    if (Number.isNaN(+date))
        throw new Error(`--since '${text}' is neither a date (2026-01-31T12:00Z) nor a duration (24h, 7d)`);
    return date;
}
/** Reads the audit log from the config's database: PostgreSQL if named, else SQLite in the data dir. */
async function readAudit(config, query) {
    let store;
    if (config.database) {
        const { PgMetadataStore } = await Promise.all(/* import() */[__nccwpck_require__.e(849), __nccwpck_require__.e(493)]).then(__nccwpck_require__.bind(__nccwpck_require__, 3493));
        store = await PgMetadataStore.open(config.database.url);
    }
    else {
        const { database } = dataPaths(config.data);
        if (!(0,external_node_fs_.existsSync)(database))
            throw new Error(`no Sluice database at ${database} (is --data right?)`);
        store = new SqliteMetadataStore(database);
    }
    try {
        return await store.listAudit(query);
    }
    finally {
        await store.close();
    }
}
const AUDIT_COLUMNS = [
    'time',
    'slice',
    'store_path',
    'nar_size',
    'file_size',
    'repository',
    'ref',
    'workflow',
    'run_id',
    'sha',
];
/** One entry as a flat record with the column names above (for tab-separated and JSON output). */
function auditRecord(entry) {
    return {
        time: entry.time.toISOString(),
        slice: entry.slice,
        store_path: entry.storePath,
        nar_size: entry.narSize,
        file_size: entry.fileSize,
        repository: entry.repository ?? null,
        ref: entry.ref ?? null,
        workflow: entry.workflow ?? null,
        run_id: entry.runId ?? null,
        sha: entry.sha ?? null,
    };
}

// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __nccwpck_require__(1455);
// EXTERNAL MODULE: ./node_modules/yaml/dist/index.js
var dist = __nccwpck_require__(8815);
;// CONCATENATED MODULE: ./src/contracts/server-api.ts
/**
 * The server's own API as its clients (the Action's main step, the daemon, the benchmark) see it:
 * the routes, the token exchange's answer and its one parser, the health document, the answer to
 * Sluice's NAR upload route. The server builds these types; every client parses with these functions.
 */
/** `POST` with `Authorization: Bearer <CI OIDC ID token>`. */
const TOKEN_EXCHANGE_PATH = '/_api/v1/token';
const HEALTH_PATH = '/_api/v1/health';
/** `PUT <prefix><narhash>.nar[.ext]`: a NAR file named by the NarHash of the NAR inside it. */
const NAR_UPLOAD_PREFIX = '/_api/v1/nar/';
/** The `aud` CI ID tokens are requested with, unless the Action's `audience` input says otherwise. */
const server_api_DEFAULT_AUDIENCE = 'sluice';
/** An answer that is not the contract's: the server is not (this version of) Sluice. */
class ServerAnswerError extends (/* unused pure expression or super */ null && (Error)) {
}
function isStringArray(value) {
    return Array.isArray(value) && value.every((v) => typeof v === 'string');
}
function jsonObject(text, what) {
    let json;
    try {
        json = JSON.parse(text);
    }
    catch {
        throw new ServerAnswerError(`${what} answered something that is not JSON`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json))
        throw new ServerAnswerError(`${what} did not answer a JSON object`);
    return json;
}
/** The one parser of the token exchange's answer. */
function parseTokenExchangeResponse(text) {
    const json = jsonObject(text, 'the token exchange');
    const { token, expires_at, read, write, public_keys, cache_url } = json;
    if (typeof token !== 'string' ||
        token === '' ||
        typeof expires_at !== 'string' ||
        Number.isNaN(Date.parse(expires_at)) ||
        !isStringArray(read) ||
        !(write === null || typeof write === 'string') ||
        !isStringArray(public_keys) ||
        typeof cache_url !== 'string') {
        throw new ServerAnswerError('the token exchange answered JSON without the expected fields');
    }
    return { token, expiresAt: expires_at, read, write, publicKeys: public_keys, cacheUrl: cache_url };
}
/** Whether anonymous reads are allowed, and with which keys; undefined when not. */
function anonymousReadKeys(text) {
    let json;
    try {
        json = jsonObject(text, 'the health route');
    }
    catch {
        return undefined;
    }
    if (json.public_reads !== true)
        return undefined;
    const keys = isStringArray(json.public_keys)
        ? json.public_keys
        : typeof json.public_key === 'string'
            ? [json.public_key]
            : [];
    return keys.length > 0 ? keys : undefined;
}

;// CONCATENATED MODULE: ./src/server/config/retention-config.ts
/**
 * Retention settings as the config holds them (docs/retention.md), and their parsing from YAML
 * values. The parser gets the config's duration/size parsers and its `fail` (which adds
 * file:line), so it needs no Validator.
 */
const DEFAULT_GC_INTERVAL_SECONDS = 3600;
/** Paths read or pushed, and NAR files uploaded, this recently are never removed; also the orphans' grace. */
const DEFAULT_GC_GRACE_SECONDS = 3600;
function mapping(value, keys, fail) {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
        fail([], 'expected a mapping');
    for (const key of Object.keys(value)) {
        if (!keys.includes(key))
            fail([key], `unknown key (expected one of: ${keys.join(', ')})`);
    }
    return value;
}
function parsed(key, value, parser, fail) {
    try {
        return parser(value);
    }
    catch (error) {
        return fail([key], error.message);
    }
}
/** `{ max_age: 30d, max_size: 50GiB }` (either may be left out). */
function parseRetention(value, parsers, fail) {
    const raw = mapping(value, ['max_age', 'max_size'], fail);
    const policy = {};
    if (raw.max_age !== undefined)
        policy.maxAgeSeconds = parsed('max_age', raw.max_age, parsers.duration, fail);
    if (raw.max_size !== undefined)
        policy.maxSizeBytes = parsed('max_size', raw.max_size, parsers.size, fail);
    return policy;
}
/** `{ ttl: 7d }`. */
function parsePullRequests(value, parsers, fail) {
    const raw = mapping(value, ['ttl'], fail);
    if (raw.ttl === undefined)
        fail([], 'needs ttl (how long a pull request slice lives after its last push)');
    return { ttlSeconds: parsed('ttl', raw.ttl, parsers.duration, fail) };
}
/** A slice's `retention` and `pull_requests` keys (`fail` takes key paths below the slice). */
function parseSliceRetention(raw, parsers, fail) {
    const below = (key) => (keys, problem) => fail([key, ...keys], problem);
    return {
        ...(raw.retention !== undefined
            ? { retention: parseRetention(raw.retention, parsers, below('retention')) }
            : {}),
        ...(raw.pull_requests !== undefined
            ? { pullRequests: parsePullRequests(raw.pull_requests, parsers, below('pull_requests')) }
            : {}),
    };
}
/** The top level's `retention`, `gc_interval` and `gc_grace`: only the keys present. */
function parseServerRetention(raw, parsers, fail) {
    const below = (key) => (keys, problem) => fail([key, ...keys], problem);
    return {
        ...(raw.retention !== undefined
            ? { retention: parseRetention(raw.retention, parsers, below('retention')) }
            : {}),
        ...(raw.gc_interval !== undefined
            ? { gcIntervalSeconds: parsed('gc_interval', raw.gc_interval, parsers.duration, fail) }
            : {}),
        ...(raw.gc_grace !== undefined
            ? { gcGraceSeconds: parsed('gc_grace', raw.gc_grace, parsers.duration, fail) }
            : {}),
    };
}

;// CONCATENATED MODULE: ./src/server/config/upload-limits.ts
/**
 * What one upload may cost the server, besides `max_nar_size`: how far a NAR may inflate, how much
 * memory its decompressor may take, how many uploads run at once, and how long a request body may
 * sit idle. Defaults fit what `nix copy` and the Action's proxy send (see docs/server.md).
 */

const DEFAULT_UPLOAD_LIMITS = {
    maxCompressionRatio: 1000,
    // zstd up to level 19 (8 MiB windows; nix copy's level 3: 2 MiB), xz up to level 6 (nix copy's
    // default: 9 MiB). xz -7..-9 and zstd --long or --ultra need more and are refused.
    maxDecompressionMemory: 16 * 1024 * 1024,
    maxConcurrentUploads: 32,
    // The Action's proxy sends 4 at a time by default.
    maxConcurrentUploadsPerToken: 8,
    // The proxy's xz -T0 emits nothing until a whole block (24 MiB at level 6) is compressed.
    bodyIdleTimeoutMs: 30_000,
};
/** Config file keys \u2192 the field they set and how the value is written. */
const UPLOAD_LIMIT_KEYS = {
    max_compression_ratio: { field: 'maxCompressionRatio', kind: 'ratio' },
    max_decompression_memory: { field: 'maxDecompressionMemory', kind: 'size' },
    max_concurrent_uploads: { field: 'maxConcurrentUploads', kind: 'count' },
    max_concurrent_uploads_per_token: { field: 'maxConcurrentUploadsPerToken', kind: 'count' },
    body_idle_timeout: { field: 'bodyIdleTimeoutMs', kind: 'milliseconds' },
};
/** A value of `kind` from the config file. */
function parseUploadLimit(kind, value) {
    switch (kind) {
        case 'ratio':
            return parseCount(value, 0);
        case 'size':
            return parseSize(value);
        case 'count':
            return parseCount(value);
        case 'milliseconds':
            return parseDuration(value) * 1000;
    }
}

;// CONCATENATED MODULE: ./src/server/config/config-schema.ts
/** The server's configuration as the code uses it: types, defaults, and the error a bad one gets. */



const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
const DEFAULT_MAX_NAR_SIZE = 10 * 1024 ** 3;
function defaultConfig() {
    return {
        listen: { host: '127.0.0.1', port: 8080 },
        data: './sluice-data',
        tokenTtlSeconds: 3600,
        maxReadTokenTtlSeconds: 90 * 86400,
        maxNarSize: DEFAULT_MAX_NAR_SIZE,
        rateLimits: {
            tokenExchanges: { count: 300, periodSeconds: 60 },
            failedAuth: { count: 30, periodSeconds: 60 },
        },
        trustProxy: [],
        uploads: { ...DEFAULT_UPLOAD_LIMITS },
        issuers: [
            { name: 'github', issuer: GITHUB_ISSUER, audience: server_api_DEFAULT_AUDIENCE, allowInsecureHttp: false },
        ],
        blobs: { type: 'fs' },
        keys: {},
        retention: {},
        gcIntervalSeconds: DEFAULT_GC_INTERVAL_SECONDS,
        gcGraceSeconds: DEFAULT_GC_GRACE_SECONDS,
    };
}


;// CONCATENATED MODULE: ./src/server/slices/slice-names.ts
/**
 * Slice names, slice patterns and `${claim}` templates.
 *
 * A slice name is one or more `/`-separated segments of `[A-Za-z0-9._-]` (never `.` or `..`), at most
 * 200 characters, compared case-insensitively and kept lowercase (GitHub names are case-insensitive,
 * and a slice must not split in two because a name was typed with other capitals). A pattern may
 * also hold `*`, which matches any run of characters, `/` included.
 */
const SEGMENT = /^[a-z0-9._-]+$/;
const PATTERN_SEGMENT = /^[a-z0-9._*-]+$/;
const TEMPLATE_PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const MAX_NAME_LENGTH = 200;
function segmentsAreSafe(text, segment) {
    if (text.length === 0 || text.length > MAX_NAME_LENGTH)
        return false;
    return text.split('/').every((part) => segment.test(part) && part !== '.' && part !== '..');
}
/** Lowercases a slice name or pattern: the one spelling used for storage and matching. */
function normalizeSliceName(name) {
    return name.toLowerCase();
}
function isSliceName(name) {
    return segmentsAreSafe(normalizeSliceName(name), SEGMENT);
}
function isSlicePattern(pattern) {
    return segmentsAreSafe(normalizeSliceName(pattern), PATTERN_SEGMENT);
}
/**
 * Whether `text` matches the glob `pattern`, where `*` matches any run of characters. Linear
 * backtracking (no regular expression), so a pattern with many stars cannot blow up.
 */
function globMatches(pattern, text) {
    let p = 0;
    let t = 0;
    let starAt = -1;
    let resumeAt = 0;
    while (t < text.length) {
        if (p < pattern.length && pattern[p] === '*') {
            starAt = p++;
            resumeAt = t;
        }
        else if (p < pattern.length && pattern[p] === text[t]) {
            p++;
            t++;
        }
        else if (starAt !== -1) {
            p = starAt + 1;
            t = ++resumeAt;
        }
        else {
            return false;
        }
    }
    while (pattern[p] === '*')
        p++;
    return p === pattern.length;
}
/** Whether the slice `name` is covered by `pattern` (a slice name or a `*` glob), ignoring case. */
function sliceMatches(pattern, name) {
    return globMatches(normalizeSliceName(pattern), normalizeSliceName(name));
}
/** The claim names a template such as `${repository_owner}/*` refers to. */
function templateClaims(template) {
    return [...template.matchAll(TEMPLATE_PLACEHOLDER)].map((match) => match[1]);
}
function isTemplate(name) {
    return templateClaims(name).length > 0;
}
/** A template with every placeholder replaced by a harmless segment, to validate its shape. */
function templateShape(template) {
    return template.replace(TEMPLATE_PLACEHOLDER, 'x');
}
/**
 * Whether filling `template` could give `name`: each placeholder read as `*` (a claim value may hold
 * `/`, as `repository` does). A configured slice that a template could make is never made by it.
 */
function templateCouldMake(template, name) {
    return globMatches(normalizeSliceName(template.replace(TEMPLATE_PLACEHOLDER, '*')), normalizeSliceName(name));
}
/**
 * Fills `${claim}` placeholders from the token's claims. A claim that is missing, or whose value
 * would not make a plain slice name (`..`, `*`, `%`, spaces\u2026), fails the template: a token must
 * never be able to steer itself into someone else's slice through an odd claim value.
 */
function fillTemplate(template, claims) {
    const problems = [];
    const name = template.replace(TEMPLATE_PLACEHOLDER, (_whole, claim) => {
        const value = claims[claim];
        if (typeof value !== 'string' || value === '') {
            problems.push(`claim '${claim}' is missing`);
        }
        else if (!segmentsAreSafe(normalizeSliceName(value), SEGMENT)) {
            problems.push(`claim '${claim}' (${JSON.stringify(value)}) is not usable in a slice name`);
        }
        else {
            return value;
        }
        return 'x';
    });
    if (problems.length > 0)
        return { ok: false, problem: problems.join(', ') };
    if (!isSlicePattern(name))
        return { ok: false, problem: `'${name}' is not a valid slice name` };
    return { ok: true, name: normalizeSliceName(name) };
}

;// CONCATENATED MODULE: ./src/server/config/policy-config.ts
/** The policy's part of the config: `issuers` (whose ID tokens are trusted) and `slices` (who reads and writes what). */




const ISSUER_KEYS = ['name', 'issuer', 'audience', 'jwks_uri', 'allow_insecure_http'];
const SLICE_KEYS = ['name', 'public', 'read', 'write', 'retention', 'pull_requests'];
const RETENTION_PARSERS = { duration: parseDuration, size: parseSize };
const ISSUER_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
function parseIssuers(v, value) {
    const list = v.nonEmptyList(['issuers'], value, 'issuer (omit the key to trust GitHub Actions)');
    const issuers = list.map((item, i) => {
        const path = ['issuers', i];
        const raw = v.object(path, item, ISSUER_KEYS);
        const name = v.string([...path, 'name'], raw.name);
        if (!ISSUER_NAME.test(name))
            v.fail([...path, 'name'], 'use lowercase letters, digits, - and _');
        const allowInsecureHttp = raw.allow_insecure_http === undefined
            ? false
            : v.boolean([...path, 'allow_insecure_http'], raw.allow_insecure_http);
        const issuer = v.url([...path, 'issuer'], raw.issuer, allowInsecureHttp);
        const audience = raw.audience === undefined ? server_api_DEFAULT_AUDIENCE : v.string([...path, 'audience'], raw.audience);
        const jwksUri = raw.jwks_uri === undefined ? undefined : v.url([...path, 'jwks_uri'], raw.jwks_uri, allowInsecureHttp);
        return { name, issuer, audience, allowInsecureHttp, ...(jwksUri ? { jwksUri } : {}) };
    });
    issuers.forEach((issuer, i) => {
        if (issuers.findIndex((other) => other.name === issuer.name) !== i)
            v.fail(['issuers', i, 'name'], `duplicate issuer name '${issuer.name}'`);
        if (issuers.findIndex((other) => other.issuer === issuer.issuer) !== i)
            v.fail(['issuers', i, 'issuer'], `issuer ${issuer.issuer} is listed twice`);
    });
    return issuers;
}
function parseRule(v, path, value, issuers, templated) {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
        v.fail(path, 'expected a mapping of claim: value');
    const rule = { claims: {} };
    for (const [key, raw] of Object.entries(value)) {
        const keyPath = [...path, key];
        if (key === 'issuer') {
            const name = v.string(keyPath, raw);
            if (!issuers.some((issuer) => issuer.name === name)) {
                v.fail(keyPath, `unknown issuer '${name}' (configured: ${issuers.map((issuer) => issuer.name).join(', ')})`);
            }
            rule.issuer = name;
            continue;
        }
        if (!CLAIM_NAME.test(key))
            v.fail(keyPath, 'not a claim name', true);
        const values = Array.isArray(raw) ? raw : [raw];
        if (values.length === 0)
            v.fail(keyPath, 'an empty list matches nothing');
        rule.claims[key] = values.map((item, i) => {
            const itemPath = Array.isArray(raw) ? [...keyPath, i] : keyPath;
            if (typeof item === 'number' || typeof item === 'boolean')
                return String(item);
            return v.string(itemPath, item);
        });
    }
    if (rule.issuer === undefined && issuers.length > 1) {
        v.fail(path, `name the issuer (issuer: ${issuers.map((issuer) => issuer.name).join(' | ')}): several are configured`);
    }
    if (Object.keys(rule.claims).length === 0 && !templated) {
        v.fail(path, 'a rule must test at least one claim besides issuer: without one it matches every workflow of the issuer');
    }
    return rule;
}
function parseSlices(v, value, issuers) {
    const list = v.nonEmptyList(['slices'], value, 'slice (omit the key for the default policy)');
    const slices = list.map((item, i) => {
        const path = ['slices', i];
        const raw = v.object(path, item, SLICE_KEYS);
        const name = v.string([...path, 'name'], raw.name);
        const templated = isTemplate(name);
        const shape = templateShape(name);
        if (!isSlicePattern(shape)) {
            v.fail([...path, 'name'], `'${name}' is not a slice name: use /-separated segments of letters, digits, . _ - (and * in read-only patterns)`);
        }
        const isPublic = raw.public === undefined ? false : v.boolean([...path, 'public'], raw.public);
        const rules = (key) => raw[key] === undefined
            ? []
            : v
                .list([...path, key], raw[key])
                .map((rule, j) => parseRule(v, [...path, key, j], rule, issuers, templated));
        const read = rules('read');
        const write = rules('write');
        if (write.length > 0 && !isSliceName(shape))
            v.fail([...path, 'name'], `'${name}' is a pattern: a slice with write rules needs a plain name`);
        if (isPublic && templated)
            v.fail([...path, 'public'], 'a template slice cannot be public: list the public slices by name or pattern');
        if (!isPublic && read.length === 0 && write.length === 0)
            v.fail(path, 'grants nothing: add read or write rules, or public: true');
        if (/(^|\/)pr-\d+$/i.test(name))
            v.fail([...path, 'name'], `'${name}' ends in pr-<number>, which names pull-request slices`);
        const sliceRetention = parseSliceRetention(raw, RETENTION_PARSERS, (keys, problem) => v.fail([...path, ...keys], problem));
        if (sliceRetention.pullRequests && (read.length === 0 || !isSliceName(shape)))
            v.fail([...path, 'pull_requests'], 'needs a plain slice name with read rules (they pick the jobs)');
        const normalized = templated ? name : normalizeSliceName(name);
        return { name: normalized, public: isPublic, read, write, ...sliceRetention };
    });
    slices.forEach((slice, i) => {
        if (slices.findIndex((other) => other.name === slice.name) !== i)
            v.fail(['slices', i, 'name'], `duplicate slice '${slice.name}'`);
    });
    slices.forEach((slice, i) => checkTemplateCollision(v, slices, i));
    return slices;
}
/**
 * Configured names are reserved: a template never makes one (the policy refuses it at exchange),
 * so a configured name without write rules that a writing template could make was only ever
 * written through the template. That silently stops; worse, it was the takeover this prevents.
 */
function checkTemplateCollision(v, slices, i) {
    const slice = slices[i];
    if (isTemplate(slice.name) || !isSliceName(slice.name) || slice.write.length > 0)
        return;
    const template = slices.find((other) => isTemplate(other.name) && other.write.length > 0 && templateCouldMake(other.name, slice.name));
    if (template) {
        v.fail(['slices', i, 'name'], `'${slice.name}' could also be made by the template '${template.name}', which never writes a slice named in the config: give '${slice.name}' write rules of its own (repository_id: \u2026) or list it under a name no template makes`);
    }
}

;// CONCATENATED MODULE: ./src/server/config/rate-limits.ts
/**
 * The rate limits' config: `rate_limits` (per client address: token exchanges, failed
 * authentications) and `trust_proxy` (whose X-Forwarded-For names the client). Enforced by
 * src/server/http/rate-limit.ts.
 */



/** `10.0.0.1`, `10.0.0.0/8`, `fd00::/8` \u2192 a BlockList; throws naming a bad entry. */
function trustedProxies(entries) {
    const list = new external_node_net_namespaceObject.BlockList();
    for (const entry of entries) {
        const [address = '', bits] = entry.split('/');
        const family = (0,external_node_net_namespaceObject.isIP)(address);
        const prefix = bits === undefined ? undefined : Number(bits);
        const maxBits = family === 6 ? 128 : 32;
        if (family === 0 ||
            (bits !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= maxBits)))
            throw new Error(`'${entry}' is not an IP address or CIDR range`);
        const type = family === 6 ? 'ipv6' : 'ipv4';
        if (prefix === undefined)
            list.addAddress(address, type);
        else
            list.addSubnet(address, prefix, type);
    }
    return list;
}
/** `60/1m` (at most 60 per minute), or `off`. */
function parseRate(value) {
    if (value === 'off' || value === false)
        return null;
    const [count, period, extra] = String(value).split('/');
    const parsed = Number(count?.trim());
    if (extra !== undefined || period === undefined || !Number.isSafeInteger(parsed) || parsed <= 0)
        throw new ConfigError(`${JSON.stringify(value)} is not a rate such as 60/1m, or off`);
    return { count: parsed, periodSeconds: parseDuration(period.trim()) };
}
function parseRateLimits(v, value, defaults) {
    const raw = v.object(['rate_limits'], value, ['token_exchanges', 'failed_auth']);
    const rate = (key, fallback) => raw[key] === undefined ? fallback : v.parse(['rate_limits', key], raw[key], parseRate);
    return {
        tokenExchanges: rate('token_exchanges', defaults.tokenExchanges),
        failedAuth: rate('failed_auth', defaults.failedAuth),
    };
}
function parseTrustProxy(v, value) {
    const list = v.list(['trust_proxy'], value).map((item, i) => v.string(['trust_proxy', i], item).trim());
    v.parse(['trust_proxy'], list, (entries) => {
        try {
            return trustedProxies(entries);
        }
        catch (error) {
            throw new ConfigError(error.message);
        }
    });
    return list;
}

;// CONCATENATED MODULE: ./src/server/config/storage-config.ts
/**
 * The config keys for where the server keeps things: `storage.blobs` (files under the data
 * directory, or an S3-compatible bucket), `database` (SQLite under the data directory, or a
 * PostgreSQL URL; `SLUICE_DATABASE_URL` overrides it) and `keys` (key files shared by replicas).
 */
const DEFAULT_PART_SIZE = 16 * 1024 ** 2;
const MIN_PART_SIZE = 5 * 1024 ** 2;
const MAX_PRESIGN_TTL_SECONDS = 7 * 24 * 3600;
const S3_KEYS = [
    'type',
    'bucket',
    'endpoint',
    'region',
    'prefix',
    'force_path_style',
    'presigned_downloads',
    'presign_ttl',
    'part_size',
    'abort_incomplete_after',
];
function parseStorage(v, value, parseSize, parseDuration) {
    const storage = v.object(['storage'], value, ['blobs']);
    if (storage.blobs === undefined)
        return { type: 'fs' };
    const path = ['storage', 'blobs'];
    const raw = v.object(path, storage.blobs, S3_KEYS);
    const type = raw.type === undefined ? 'fs' : v.string([...path, 'type'], raw.type);
    if (type === 'fs') {
        const extra = Object.keys(raw).find((key) => key !== 'type');
        if (extra)
            v.fail([...path, extra], `only applies to type: s3`, true);
        return { type: 'fs' };
    }
    if (type !== 's3')
        v.fail([...path, 'type'], `unknown type '${type}' (expected fs or s3)`);
    const optional = (key, parse, fallback) => raw[key] === undefined ? fallback : parse(raw[key]);
    const bucket = v.string([...path, 'bucket'], raw.bucket);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
        v.fail([...path, 'bucket'], `'${bucket}' is not an S3 bucket name`);
    const partSize = optional('part_size', (x) => v.parse([...path, 'part_size'], x, parseSize), DEFAULT_PART_SIZE);
    if (partSize < MIN_PART_SIZE)
        v.fail([...path, 'part_size'], 'must be at least 5MiB (the S3 minimum)');
    const presignTtlSeconds = optional('presign_ttl', (x) => v.parse([...path, 'presign_ttl'], x, parseDuration), 300);
    if (presignTtlSeconds > MAX_PRESIGN_TTL_SECONDS)
        v.fail([...path, 'presign_ttl'], 'must be at most 7d (the longest a SigV4 presigned URL lives)');
    const endpoint = optional('endpoint', (x) => v.url([...path, 'endpoint'], x, true).replace(/\/+$/, ''), undefined);
    return {
        type: 's3',
        bucket,
        ...(endpoint ? { endpoint } : {}),
        region: optional('region', (x) => v.string([...path, 'region'], x), process.env.AWS_REGION || 'us-east-1'),
        prefix: optional('prefix', (x) => (x === '' ? '' : v.string([...path, 'prefix'], x)), ''),
        forcePathStyle: optional('force_path_style', (x) => v.boolean([...path, 'force_path_style'], x), false),
        presignedDownloads: optional('presigned_downloads', (x) => v.boolean([...path, 'presigned_downloads'], x), false),
        presignTtlSeconds,
        partSize,
        abortIncompleteAfterSeconds: optional('abort_incomplete_after', (x) => v.parse([...path, 'abort_incomplete_after'], x, parseDuration), 24 * 3600),
    };
}
/** A PostgreSQL URL; the problem is named without echoing the value (it may hold a password). */
function databaseUrlProblem(text) {
    let url;
    try {
        url = new URL(text);
    }
    catch {
        return 'is not a URL (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
    }
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
        return `must be a postgres:// URL, not ${url.protocol}// (omit it to keep SQLite under the data directory)`;
    if (!url.hostname)
        return 'names no host (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)';
    return undefined;
}
function parseDatabase(v, value) {
    const url = v.string(['database'], value);
    const problem = databaseUrlProblem(url);
    if (problem)
        v.fail(['database'], problem);
    return { url, source: 'database' };
}
function parseKeys(v, value) {
    const raw = v.object(['keys'], value, ['signing_key_file', 'token_key_file']);
    return {
        ...(raw.signing_key_file === undefined
            ? {}
            : { signingKeyFile: v.string(['keys', 'signing_key_file'], raw.signing_key_file) }),
        ...(raw.token_key_file === undefined
            ? {}
            : { tokenKeyFile: v.string(['keys', 'token_key_file'], raw.token_key_file) }),
    };
}

;// CONCATENATED MODULE: ./src/server/config/yaml-validator.ts
/** Checks a parsed YAML document key by key; every problem is a ConfigError naming its file, line and key path. */


/** Validates the parsed document, turning each problem into a ConfigError that points at its line. */
class Validator {
    doc;
    lines;
    source;
    constructor(doc, lines, source) {
        this.doc = doc;
        this.lines = lines;
        this.source = source;
    }
    fail(path, problem, atKey = false) {
        const where = path
            .map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`))
            .join('');
        const line = this.lineOf(path, atKey);
        throw new ConfigError(`${this.source}${line ? `:${line}` : ''}: ${where || '(top level)'}: ${problem}`);
    }
    lineOf(path, atKey) {
        let node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
        if (atKey) {
            const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
            const pair = (0,dist/* isMap */.jh)(parent)
                ? parent.items.find((item) => (0,dist/* isPair */.tO)(item) && (0,dist/* isScalar */.jn)(item.key) && item.key.value === path.at(-1))
                : undefined;
            node = pair?.key;
        }
        const range = node?.range;
        return range ? this.lines.linePos(range[0]).line : undefined;
    }
    /** Runs a parser that throws ConfigError without a location, and adds the location. */
    parse(path, value, parser) {
        try {
            return parser(value);
        }
        catch (error) {
            if (error instanceof ConfigError)
                this.fail(path, error.message);
            throw error;
        }
    }
    object(path, value, known) {
        if (value === null || typeof value !== 'object' || Array.isArray(value))
            this.fail(path, 'expected a mapping');
        for (const key of Object.keys(value)) {
            if (!known.includes(key))
                this.fail([...path, key], `unknown key (expected one of: ${known.join(', ')})`, true);
        }
        return value;
    }
    list(path, value) {
        if (!Array.isArray(value))
            this.fail(path, 'expected a list');
        return value;
    }
    nonEmptyList(path, value, what) {
        const list = this.list(path, value);
        if (list.length === 0)
            this.fail(path, `must list at least one ${what}`);
        return list;
    }
    string(path, value) {
        if (typeof value !== 'string' || value.trim() === '')
            this.fail(path, 'expected a non-empty string');
        return value;
    }
    boolean(path, value) {
        if (typeof value !== 'boolean')
            this.fail(path, 'expected true or false');
        return value;
    }
    url(path, value, allowHttp) {
        const text = this.string(path, value);
        let url;
        try {
            url = new URL(text);
        }
        catch {
            this.fail(path, `${JSON.stringify(text)} is not a URL`);
        }
        if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) {
            this.fail(path, `${JSON.stringify(text)} must be https:// (http:// needs allow_insecure_http: true, for loopback tests only)`);
        }
        return text;
    }
}

;// CONCATENATED MODULE: ./src/server/config/server-config.ts
/**
 * The server's YAML configuration \u2192 a typed, validated `Config`. Every key is optional; a bad key or
 * value is refused with `file:line: key.path: problem`, so a typo never silently weakens the policy.
 */










const TOP_LEVEL_KEYS = [
    'listen',
    'data',
    'token_ttl',
    'max_read_token_ttl',
    'max_nar_size',
    'public_url',
    'rate_limits',
    'trust_proxy',
    ...Object.keys(UPLOAD_LIMIT_KEYS),
    'issuers',
    'slices',
    'storage',
    'database',
    'keys',
    'retention',
    'gc_interval',
    'gc_grace',
];
/** Parses and validates YAML config text. `source` names the file in error messages. */
function parseConfig(text, source = 'config') {
    const lines = new dist/* LineCounter */.HN();
    const doc = (0,dist/* parseDocument */.Tp)(text, { lineCounter: lines, uniqueKeys: true });
    const yamlError = doc.errors[0];
    if (yamlError) {
        const line = yamlError.linePos?.[0].line;
        throw new ConfigError(`${source}${line ? `:${line}` : ''}: ${yamlError.message.split('\n')[0]}`);
    }
    const v = new Validator(doc, lines, source);
    const value = doc.toJS();
    const config = defaultConfig();
    if (value === null || value === undefined)
        return config;
    const raw = v.object([], value, TOP_LEVEL_KEYS);
    if (raw.listen !== undefined)
        config.listen = v.parse(['listen'], raw.listen, parseListen);
    if (raw.data !== undefined)
        config.data = v.string(['data'], raw.data);
    if (raw.token_ttl !== undefined)
        config.tokenTtlSeconds = v.parse(['token_ttl'], raw.token_ttl, parseDuration);
    if (raw.max_read_token_ttl !== undefined)
        config.maxReadTokenTtlSeconds = v.parse(['max_read_token_ttl'], raw.max_read_token_ttl, parseDuration);
    if (raw.max_nar_size !== undefined)
        config.maxNarSize = v.parse(['max_nar_size'], raw.max_nar_size, parseSize);
    for (const [key, { field, kind }] of Object.entries(UPLOAD_LIMIT_KEYS)) {
        if (raw[key] !== undefined)
            config.uploads[field] = v.parse([key], raw[key], (value) => parseUploadLimit(kind, value));
    }
    if (raw.public_url !== undefined)
        config.publicUrl = v.url(['public_url'], raw.public_url, true).replace(/\/+$/, '');
    if (raw.rate_limits !== undefined)
        config.rateLimits = parseRateLimits(v, raw.rate_limits, config.rateLimits);
    if (raw.trust_proxy !== undefined)
        config.trustProxy = parseTrustProxy(v, raw.trust_proxy);
    if (raw.issuers !== undefined)
        config.issuers = parseIssuers(v, raw.issuers);
    if (raw.slices !== undefined)
        config.slices = parseSlices(v, raw.slices, config.issuers);
    if (raw.storage !== undefined)
        config.blobs = parseStorage(v, raw.storage, parseSize, parseDuration);
    if (raw.database !== undefined)
        config.database = parseDatabase(v, raw.database);
    if (raw.keys !== undefined)
        config.keys = parseKeys(v, raw.keys);
    const parsers = { duration: parseDuration, size: parseSize };
    return { ...config, ...parseServerRetention(raw, parsers, (keys, problem) => v.fail(keys, problem)) };
}
/** Reads the config file at `path`; without a path, the defaults. */
async function loadConfig(path) {
    if (path === undefined)
        return defaultConfig();
    let text;
    try {
        text = await (0,promises_.readFile)(path, 'utf8');
    }
    catch (error) {
        throw new ConfigError(`${path}: cannot read the config file: ${error.code ?? String(error)}`);
    }
    return parseConfig(text, path);
}
/** `SLUICE_DATABASE_URL` wins over the file's `database`, so the password need not be in the file. */
function applyEnvironment(config, env = process.env) {
    const url = env.SLUICE_DATABASE_URL;
    if (url === undefined || url === '')
        return config;
    const problem = databaseUrlProblem(url);
    if (problem)
        throw new ConfigError(`SLUICE_DATABASE_URL: ${problem}`);
    return { ...config, database: { url, source: 'SLUICE_DATABASE_URL' } };
}
/** Command-line flags win over the file. */
function applyCliOverrides(config, flags) {
    const merged = { ...config };
    if (flags.listen !== undefined) {
        try {
            merged.listen = parseListen(flags.listen);
        }
        catch (error) {
            throw new ConfigError(`--listen: ${error.message}`);
        }
    }
    if (flags.data !== undefined) {
        if (flags.data.trim() === '')
            throw new ConfigError('--data: expected a directory');
        merged.data = flags.data;
    }
    return merged;
}

;// CONCATENATED MODULE: ./src/cli/audit-command.ts
/** `sluice audit [--slice S] [--since T] [--data DIR] [--json]`: lists accepted writes, oldest first. */



const AUDIT_USAGE = `usage: sluice audit [--slice S] [--since T] [--data DIR] [--config FILE] [--json]

  --slice S      only writes into slice S
  --since T      only writes at or after T: an ISO date/time, or a duration back from now (24h, 7d)
  --data DIR     data directory (default: the config's, else ./sluice-data)
  --json         one JSON object per line instead of tab-separated columns
`;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** One column: rows stored before claims were escaped may hold a tab or a newline; they must not make a row. */
function tsvField(value) {
    if (value === null)
        return '-';
    return String(value).replace(CONTROL_CHARACTERS, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
async function runAudit(argv, io = process) {
    let values;
    try {
        ({ values } = (0,external_node_util_.parseArgs)({
            args: argv,
            options: {
                slice: { type: 'string' },
                since: { type: 'string' },
                data: { type: 'string' },
                config: { type: 'string' },
                json: { type: 'boolean' },
                help: { type: 'boolean', short: 'h' },
            },
            allowPositionals: false,
        }));
    }
    catch (error) {
        io.stderr.write(`sluice audit: ${error.message}\n${AUDIT_USAGE}`);
        return 2;
    }
    if (values.help) {
        io.stdout.write(AUDIT_USAGE);
        return 0;
    }
    try {
        const config = applyEnvironment(applyCliOverrides(await loadConfig(values.config), { data: values.data }));
        const entries = await readAudit(config, {
            ...(values.slice ? { slice: values.slice.toLowerCase() } : {}),
            ...(values.since ? { since: parseSince(values.since) } : {}),
        });
        if (!values.json)
            io.stdout.write(`${AUDIT_COLUMNS.join('\t')}\n`);
        for (const entry of entries) {
            const record = auditRecord(entry);
            io.stdout.write(values.json
                ? `${JSON.stringify(record)}\n`
                : `${AUDIT_COLUMNS.map((column) => tsvField(record[column])).join('\t')}\n`);
        }
        return 0;
    }
    catch (error) {
        io.stderr.write(`sluice audit: ${error.message}\n`);
        return 1;
    }
}

// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __nccwpck_require__(7598);
;// CONCATENATED MODULE: external "node:timers/promises"
const external_node_timers_promises_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:timers/promises");
;// CONCATENATED MODULE: ./src/server/retention/pacer.ts
/**
 * Keeps a collection from crowding out the requests it shares the event loop with: the collector
 * calls `pause()` between small steps (a page read, a batch deleted, a file claimed). A step that
 * ran without the event loop turning (SQLite's synchronous queries) held the loop all along and
 * counts as busy; once `budgetMs` of that is spent, the collector rests `restFactor` times as long,
 * so it takes at most about 1 / (1 + restFactor) of the loop (11% by default: with 4, a fifth, the
 * benchmark's lookups ran 16\u201322% slower during a collection, at the edge of its 1.2\u00d7 target). A step that waited
 * on I/O (files, PostgreSQL, S3) let requests run meanwhile and costs nothing. A collection runs in
 * the background every gc_interval: the lookups' speed matters more than its own (the benchmark in
 * docs/benchmarks.md measures both).
 */

class Pacer {
    budgetMs;
    restFactor;
    since = performance.now();
    busy = 0;
    turned = false;
    constructor(budgetMs = 10, restFactor = 8) {
        this.budgetMs = budgetMs;
        this.restFactor = restFactor;
        this.watch();
    }
    /** Notes whether the event loop turns before the next pause (the step waited on I/O). */
    watch() {
        this.turned = false;
        setImmediate(() => (this.turned = true));
    }
    async pause() {
        if (!this.turned)
            this.busy += performance.now() - this.since;
        if (this.busy >= this.budgetMs) {
            await (0,external_node_timers_promises_namespaceObject.setTimeout)(this.busy * this.restFactor);
            this.busy = 0;
        }
        this.since = performance.now();
        this.watch();
    }
}

;// CONCATENATED MODULE: ./src/server/retention/plan.ts
/** The slice's reference graph by row index: references inside the slice only, itself excluded. */
function referenceIndexes(entries) {
    const index = new Map();
    entries.forEach((entry, i) => index.set(entry.hashPart, i));
    const refs = entries.map((entry, i) => {
        const out = [];
        for (const ref of entry.references) {
            const j = index.get(ref);
            if (j !== undefined && j !== i)
                out.push(j);
        }
        return out;
    });
    return { refs, index };
}
/**
 * Referrers before references (Kahn's order on the in-slice reference graph), as row indexes.
 * Store paths cannot form cycles; should corrupt rows make one, its paths come last and are
 * marked `cyclic`.
 */
function topologicalOrder(refs) {
    const n = refs.length;
    const referrers = new Int32Array(n);
    for (const list of refs)
        for (const j of list)
            referrers[j]++;
    const order = new Int32Array(n);
    let length = 0;
    for (let i = 0; i < n; i++)
        if (referrers[i] === 0)
            order[length++] = i;
    for (let k = 0; k < length; k++) {
        for (const j of refs[order[k]])
            if (--referrers[j] === 0)
                order[length++] = j;
    }
    const cyclic = new Uint8Array(n);
    if (length < n) {
        const placed = new Uint8Array(n);
        for (let k = 0; k < length; k++)
            placed[order[k]] = 1;
        for (let i = 0; i < n; i++)
            if (!placed[i]) {
                order[length++] = i;
                cyclic[i] = 1;
            }
    }
    return { order, cyclic };
}
/** The pinned paths and everything they refer to in the slice, as a mark per row. */
function closureOf(roots, index, refs) {
    const seen = new Uint8Array(refs.length);
    const stack = [];
    for (const hash of roots) {
        const i = index.get(hash);
        if (i !== undefined)
            stack.push(i);
    }
    while (stack.length > 0) {
        const i = stack.pop();
        if (seen[i])
            continue;
        seen[i] = 1;
        for (const j of refs[i])
            if (!seen[j])
                stack.push(j);
    }
    return seen;
}
/**
 * Row indexes and typed arrays rather than maps keyed by hash part: a slice of 100,000 paths is
 * planned in tens of milliseconds, which matters because planning holds the event loop.
 */
function planSlice(input) {
    const entries = input.entries;
    const n = entries.length;
    const { refs, index } = referenceIndexes(entries);
    const { order, cyclic } = topologicalOrder(refs);
    const rank = new Int32Array(n);
    for (let k = 0; k < n; k++)
        rank[order[k]] = k;
    const pinned = closureOf(input.pinned, index, refs);
    const graceStart = input.now - input.graceSeconds * 1000;
    const effective = new Float64Array(n);
    for (let i = 0; i < n; i++) {
        const entry = entries[i];
        const own = Math.max(entry.createdAt, entry.lastAccessedAt);
        effective[i] = pinned[i] || own >= graceStart || cyclic[i] ? Infinity : own;
    }
    for (let k = 0; k < n; k++) {
        const i = order[k];
        for (const j of refs[i])
            if (effective[j] < effective[i])
                effective[j] = effective[i];
    }
    let lastPush = -Infinity;
    for (const entry of entries)
        lastPush = Math.max(lastPush, entry.createdAt);
    const prExpired = input.pullRequestTtlSeconds !== undefined && lastPush < input.now - input.pullRequestTtlSeconds * 1000;
    const ageCutoff = prExpired
        ? Infinity
        : input.policy.maxAgeSeconds !== undefined
            ? input.now - input.policy.maxAgeSeconds * 1000
            : -Infinity;
    const removed = new Array(n);
    const candidates = [];
    for (let i = 0; i < n; i++) {
        if (effective[i] < ageCutoff)
            removed[i] = prExpired ? 'pr-ttl' : 'age';
        else
            candidates.push(i);
    }
    // Most recently used first; on equal times a reference before its referrers, so every prefix of
    // this order is closed under references.
    candidates.sort((a, b) => effective[b] - effective[a] || rank[b] - rank[a]);
    const maxSize = input.policy.maxSizeBytes ?? Infinity;
    let keptBytes = 0;
    let full = false;
    const keep = [];
    for (const i of candidates) {
        const entry = entries[i];
        if (effective[i] !== Infinity && (full || keptBytes + entry.fileSize > maxSize)) {
            full = true;
            removed[i] = 'size';
            continue;
        }
        keptBytes += entry.fileSize;
        keep.push(entry);
    }
    const remove = [];
    for (let k = 0; k < n; k++) {
        const reason = removed[order[k]];
        if (reason)
            remove.push({ entry: entries[order[k]], reason });
    }
    let pinnedPaths = 0;
    let pinnedBytes = 0;
    for (let i = 0; i < n; i++)
        if (pinned[i]) {
            pinnedPaths++;
            pinnedBytes += entries[i].fileSize;
        }
    return {
        keep,
        remove,
        pinned: { paths: pinnedPaths, bytes: pinnedBytes },
        overQuota: keptBytes > maxSize,
    };
}

;// CONCATENATED MODULE: ./src/server/slices/pull-request-slices.ts
/**
 * Pull-request slices, `<slice>/pr-<number>` (docs/retention.md): written by that pull request's
 * jobs and read by them only, so no pattern grant or public pattern reaches into one.
 */

const PULL_REQUEST_SLICE = /^(.+)\/pr-(\d+)$/;
function pullRequestSlice(base, number) {
    return `${base}/pr-${number}`;
}
/** The slice a pull-request slice belongs to, or undefined for any other slice. */
function pullRequestBase(name) {
    return PULL_REQUEST_SLICE.exec(name)?.[1];
}
function isPullRequestSlice(name) {
    return PULL_REQUEST_SLICE.test(name);
}
/**
 * Whether a read grant (or a public pattern) covers `slice`. A pull-request slice only by its exact
 * name, which only that pull request's tokens carry: `acme/*` must not reach into `acme/app/pr-7`.
 */
function readCovers(pattern, slice) {
    return isPullRequestSlice(slice) ? normalizeSliceName(pattern) === slice : sliceMatches(pattern, slice);
}

;// CONCATENATED MODULE: ./src/server/retention/slices.ts


/**
 * The first configured slice whose name matches (a template such as `${repository}` matches any
 * name of its shape, `*` any run) gives the retention; else the server-wide one. A pull-request
 * slice follows the slice it belongs to, plus its TTL.
 */
function retentionFor(config, slice) {
    const base = pullRequestBase(slice);
    if (base !== undefined) {
        const entry = config.slices?.find((candidate) => candidate.pullRequests && candidate.name === base);
        if (entry?.pullRequests)
            return {
                policy: entry.retention ?? config.retention,
                pullRequestTtlSeconds: entry.pullRequests.ttlSeconds,
            };
    }
    const entry = config.slices?.find((candidate) => {
        const glob = isTemplate(candidate.name)
            ? candidate.name.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, '*')
            : candidate.name;
        return globMatches(normalizeSliceName(glob), slice);
    });
    return { policy: entry?.retention ?? config.retention };
}

;// CONCATENATED MODULE: ./src/server/retention/slice-rows.ts

const PAGE = 2000;
/** FileSize and References from a stored narinfo (a line scan: the collector reads every row). */
function pathEntry(row) {
    let fileSize = 0;
    let references = [];
    for (const line of row.narinfo.split('\n')) {
        if (line.startsWith('FileSize: '))
            fileSize = Number(line.slice(10));
        else if (line.startsWith('References: '))
            references = line
                .slice(12)
                .split(' ')
                .filter(Boolean)
                .map((name) => name.slice(0, 32));
    }
    return {
        hashPart: row.hashPart,
        storePath: row.storePath,
        narKey: row.narKey,
        fileSize,
        references,
        createdAt: +row.createdAt,
        lastAccessedAt: +row.lastAccessedAt,
    };
}
/** Every row of the slice, as plan entries. */
async function readSlice(store, slice, pacer = new Pacer()) {
    const entries = [];
    let after = '';
    for (;;) {
        const page = await store.listNarInfos(slice, after, PAGE);
        for (const row of page)
            entries.push(pathEntry(row));
        if (page.length < PAGE)
            return entries;
        after = page[page.length - 1].hashPart;
        await pacer.pause();
    }
}

;// CONCATENATED MODULE: ./src/server/retention/collector.ts
/**
 * One garbage collection: under the lease, per slice: plan (plan.ts), then delete narinfos in
 * batches (referrers first, each batch refused if one of its rows was used meanwhile), then NAR
 * files no narinfo uses any more and orphans, each claimed before its blob is deleted so a push of
 * the same NAR waits rather than lose it. Talks to storage only through BlobStore and
 * MetadataStore. A dry run plans the same and deletes nothing.
 */





const GC_LEASE = 'gc';
const LEASE_MS = 15 * 60_000;
const BATCH = 500;
const tally = (entries) => ({
    paths: entries.length,
    bytes: entries.reduce((sum, entry) => sum + entry.fileSize, 0),
});
async function collectGarbage(deps, options = {}) {
    const now = (deps.now ?? Date.now)();
    const holder = (0,external_node_crypto_.randomUUID)();
    const report = {
        dryRun: options.dryRun === true,
        time: new Date(now),
        slices: [],
        nars: [],
        expiredPins: [],
    };
    if (!report.dryRun) {
        const held = await deps.meta.acquireLease(GC_LEASE, holder, new Date(now + LEASE_MS), new Date(now));
        if (!held)
            return { ...report, skipped: 'another collector is running (it holds the gc lease)' };
    }
    try {
        // Renewed before each slice: a paced collection of a big cache may outlast one lease.
        const renewLease = async () => {
            if (report.dryRun)
                return;
            const at = (deps.now ?? Date.now)();
            if (!(await deps.meta.acquireLease(GC_LEASE, holder, new Date(at + LEASE_MS), new Date(at))))
                throw new Error('the gc lease expired during the collection and another collector holds it now');
        };
        await collect({ ...deps, pacer: deps.pacer ?? new Pacer(), renewLease }, options, now, report);
    }
    finally {
        if (!report.dryRun)
            await deps.meta.releaseLease(GC_LEASE, holder);
    }
    return report;
}
async function collect(deps, options, now, report) {
    const { meta, config, pacer } = deps;
    const unusedBefore = new Date(now - config.gcGraceSeconds * 1000);
    const pins = [];
    for (const pin of await meta.listPins()) {
        if (pin.expiresAt && +pin.expiresAt <= now) {
            report.expiredPins.push({ slice: pin.slice, name: pin.name });
            if (!report.dryRun)
                await meta.deletePin(pin.slice, pin.name);
        }
        else
            pins.push(pin);
    }
    const before = await meta.narKeysInUse(unusedBefore);
    await pacer.pause();
    // Keys that narinfos kept by this run (or in slices it does not touch) still use: for a dry run,
    // which cannot ask the store afterwards.
    const stillUsed = new Set();
    for (const slice of await meta.listSlices()) {
        await deps.renewLease();
        const entries = await readSlice(meta, slice, pacer);
        if (options.slice !== undefined && slice !== options.slice) {
            for (const entry of entries)
                stillUsed.add(entry.narKey);
            continue;
        }
        const retention = retentionFor(config, slice);
        const pinned = new Set(pins
            .filter((pin) => pin.slice === slice)
            .flatMap((pin) => pin.storePaths.map((path) => path.slice(11, 43))));
        await pacer.pause();
        const plan = planSlice({
            entries,
            pinned,
            policy: retention.policy,
            now,
            graceSeconds: config.gcGraceSeconds,
            ...(retention.pullRequestTtlSeconds !== undefined
                ? { pullRequestTtlSeconds: retention.pullRequestTtlSeconds }
                : {}),
        });
        const sliceReport = {
            slice,
            ...(retention.policy.maxAgeSeconds !== undefined
                ? { maxAgeSeconds: retention.policy.maxAgeSeconds }
                : {}),
            ...(retention.policy.maxSizeBytes !== undefined ? { maxSizeBytes: retention.policy.maxSizeBytes } : {}),
            ...(retention.pullRequestTtlSeconds !== undefined
                ? { pullRequestTtlSeconds: retention.pullRequestTtlSeconds }
                : {}),
            kept: tally(plan.keep),
            pinned: plan.pinned,
            removed: {},
            removedPaths: [],
            overQuota: plan.overQuota,
        };
        for (const entry of plan.keep)
            stillUsed.add(entry.narKey);
        const done = report.dryRun
            ? plan.remove
            : await deleteInBatches(deps, slice, plan.remove, unusedBefore, now);
        if (done.length < plan.remove.length) {
            sliceReport.interrupted = `${plan.remove.length - done.length} paths were used during the collection and stay`;
            for (const { entry } of plan.remove.slice(done.length))
                stillUsed.add(entry.narKey);
            sliceReport.kept = tally([...plan.keep, ...plan.remove.slice(done.length).map(({ entry }) => entry)]);
        }
        for (const { entry, reason } of done) {
            const count = (sliceReport.removed[reason] ??= { paths: 0, bytes: 0 });
            count.paths++;
            count.bytes += entry.fileSize;
            sliceReport.removedPaths.push({ storePath: entry.storePath, reason, bytes: entry.fileSize });
        }
        report.slices.push(sliceReport);
    }
    // A real run asks the store again (pushes may have come meanwhile); a dry run deleted nothing.
    const after = report.dryRun
        ? { referenced: stillUsed, touched: before.touched }
        : await meta.narKeysInUse(unusedBefore);
    await pacer.pause();
    const inUse = new Set([...after.referenced, ...after.touched]);
    await collectNars(deps, report, inUse, before.referenced, unusedBefore, now);
}
/** Deletes the planned narinfos, referrers first; stops at the first batch used meanwhile. */
async function deleteInBatches(deps, slice, remove, unusedBefore, now) {
    let done = 0;
    while (done < remove.length) {
        // A batch holds one reason, so its audit row says why.
        const reason = remove[done].reason;
        let end = done;
        while (end < remove.length && end - done < BATCH && remove[end].reason === reason)
            end++;
        const batch = remove.slice(done, end).map(({ entry }) => entry);
        const deleted = await deps.meta.deleteNarInfos(slice, batch.map((entry) => entry.hashPart), unusedBefore, { time: new Date(now), slice, reason, items: batch.map((entry) => entry.storePath), ...tally(batch) });
        if (!deleted)
            break;
        await deps.pacer.pause();
        done = end;
    }
    return remove.slice(0, done);
}
/** NAR files deleted at once: each file's I/O waits its turn behind the lookups, so they overlap. */
const NAR_CHUNK = 32;
/**
 * NAR files no narinfo uses, not touched nor written within the grace window: claimed one by one,
 * then a chunk's files deleted at once and its claims finished in one transaction.
 */
async function collectNars(deps, report, inUse, referencedBefore, unusedBefore, now) {
    const deleted = { orphan: [], unused: [] };
    const candidates = [];
    for await (const blob of deps.blobs.list((key) => inUse.has(key)))
        if (+blob.modifiedAt < +unusedBefore)
            candidates.push(blob);
    for (let i = 0; i < candidates.length; i += NAR_CHUNK) {
        let chunk = candidates.slice(i, i + NAR_CHUNK);
        if (!report.dryRun) {
            const claimed = [];
            for (const blob of chunk)
                if (await deps.meta.claimNarDeletion(blob.key, unusedBefore, new Date(now)))
                    claimed.push(blob);
            try {
                await Promise.all(claimed.map(async (blob) => {
                    await deps.beforeBlobDelete?.(blob.key);
                    await deps.blobs.delete(blob.key);
                }));
            }
            finally {
                await deps.meta.finishNarDeletion(claimed.map((blob) => blob.key));
            }
            chunk = claimed;
        }
        for (const blob of chunk) {
            const reason = referencedBefore.has(blob.key) ? 'unused' : 'orphan';
            deleted[reason].push({ key: blob.key, bytes: blob.size });
            report.nars.push({ key: blob.key, bytes: blob.size, reason });
        }
        await deps.pacer.pause();
    }
    if (report.dryRun)
        return;
    report.abortedUploads = await deps.blobs.abortIncompleteUploads(unusedBefore);
    for (const reason of ['orphan', 'unused']) {
        const list = deleted[reason];
        for (let i = 0; i < list.length; i += BATCH) {
            const batch = list.slice(i, i + BATCH);
            await deps.meta.finishNarDeletion([], {
                time: new Date(now),
                slice: null,
                reason,
                items: batch.map((nar) => nar.key),
                bytes: batch.reduce((sum, nar) => sum + nar.bytes, 0),
            });
        }
    }
}

;// CONCATENATED MODULE: ./src/server/retention/report.ts


function formatBytes(bytes) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
function formatDuration(seconds) {
    for (const [unit, size] of [
        ['y', 31536000],
        ['d', 86400],
        ['h', 3600],
        ['m', 60],
    ]) {
        if (seconds % size === 0)
            return `${seconds / size}${unit}`;
    }
    return `${seconds}s`;
}
function limits(slice) {
    const parts = [
        slice.maxAgeSeconds !== undefined ? `max_age ${formatDuration(slice.maxAgeSeconds)}` : 'no max_age',
        slice.maxSizeBytes !== undefined ? `max_size ${formatBytes(slice.maxSizeBytes)}` : 'no max_size',
    ];
    if (slice.pullRequestTtlSeconds !== undefined)
        parts.push(`pull request ttl ${formatDuration(slice.pullRequestTtlSeconds)}`);
    return parts.join(', ');
}
/** One block per slice, then the NAR files; every removed path or file on a line of its own. */
function formatGcReport(report) {
    if (report.skipped)
        return `sluice gc: nothing done: ${report.skipped}\n`;
    const lines = [];
    if (report.dryRun)
        lines.push('dry run: nothing was removed; a real run now would remove what follows');
    for (const pin of report.expiredPins)
        lines.push(`pin ${pin.slice} ${pin.name}: expired, removed`);
    for (const slice of report.slices) {
        const removed = Object.entries(slice.removed)
            .map(([reason, tally]) => `${reason} ${tally.paths} (${formatBytes(tally.bytes)})`)
            .join(', ');
        lines.push(`slice ${slice.slice} (${limits(slice)}): kept ${slice.kept.paths} paths (${formatBytes(slice.kept.bytes)}), ` +
            `pinned ${slice.pinned.paths} (${formatBytes(slice.pinned.bytes)}); removed ${slice.removedPaths.length}` +
            (removed ? `: ${removed}` : ''));
        if (slice.overQuota)
            lines.push(`  over quota: pins and recently used paths alone exceed max_size; nothing pinned is removed`);
        if (slice.interrupted)
            lines.push(`  stopped early: ${slice.interrupted}`);
        for (const path of slice.removedPaths)
            lines.push(`  remove ${path.storePath} (${path.reason}, ${path.bytes} bytes)`);
    }
    const narBytes = report.nars.reduce((sum, nar) => sum + nar.bytes, 0);
    lines.push(`NAR files: removed ${report.nars.length} (${formatBytes(narBytes)})`);
    for (const nar of report.nars)
        lines.push(`  remove nar/${nar.key} (${nar.reason}, ${nar.bytes} bytes)`);
    return `${lines.join('\n')}\n`;
}
async function summarizeSlices(meta, config) {
    const pins = await meta.listPins();
    const names = new Set([...(await meta.listSlices()), ...pins.map((pin) => pin.slice)]);
    const summaries = [];
    for (const slice of [...names].sort()) {
        const entries = await readSlice(meta, slice);
        const { policy } = retentionFor(config, slice);
        summaries.push({
            slice,
            paths: entries.length,
            bytes: entries.reduce((sum, entry) => sum + entry.fileSize, 0),
            ...(policy.maxSizeBytes !== undefined ? { maxSizeBytes: policy.maxSizeBytes } : {}),
            lastPush: entries.length
                ? new Date(entries.reduce((latest, entry) => Math.max(latest, entry.createdAt), 0))
                : null,
            pins: pins.filter((pin) => pin.slice === slice).map((pin) => pin.name),
        });
    }
    return summaries;
}
const SLICE_COLUMNS = ['slice', 'paths', 'size', 'quota_use', 'last_push', 'pins'];
function sliceRow(summary) {
    return [
        summary.slice,
        String(summary.paths),
        formatBytes(summary.bytes),
        summary.maxSizeBytes
            ? `${((summary.bytes / summary.maxSizeBytes) * 100).toFixed(1)}% of ${formatBytes(summary.maxSizeBytes)}`
            : '-',
        summary.lastPush?.toISOString() ?? '-',
        summary.pins.join(',') || '-',
    ];
}

// EXTERNAL MODULE: ./node_modules/pino/pino.js
var pino = __nccwpck_require__(5005);
;// CONCATENATED MODULE: ./src/server/server-log.ts
/**
 * Structured JSON logs (pino). Requests are logged from an explicit allow-list of fields, and
 * anything named like a credential is redacted besides, so a token cannot reach the log.
 */

const REDACTED_PATHS = [
    'authorization',
    'token',
    'idToken',
    'password',
    '*.authorization',
    '*.token',
    '*.idToken',
    '*.password',
    'req.headers.authorization',
    'headers.authorization',
];
function createLogger(destination, level = process.env.SLUICE_LOG_LEVEL ?? 'info') {
    const options = {
        level,
        base: { service: 'sluice' },
        redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    };
    return destination ? (0,pino.pino)(options, destination) : (0,pino.pino)(options);
}

// EXTERNAL MODULE: ./src/nix/buffer-pool.ts
var buffer_pool = __nccwpck_require__(6212);
// EXTERNAL MODULE: ./src/server/storage/blob-store.ts
var blob_store = __nccwpck_require__(382);
;// CONCATENATED MODULE: ./src/server/storage/fs-blob-store.ts
/**
 * BlobStore on a local directory. A put writes a temp file in the same directory, fsyncs it, then
 * hard-links it to its final name: `link` fails if the name exists, which gives put-if-absent
 * atomically, and readers never see a partial file.
 */





const TEMP_PREFIX = '.upload-';
/** Files looked up at once by list(). */
const STAT_CHUNK = 64;
/** Reads go into 256 KiB buffers, two per download (one read into while the other is sent). */
const readBuffers = new buffer_pool/* BufferPool */.P(256 * 1024, 16);
class FsBlobStore {
    dir;
    /** Temp files of this process's uploads in progress: never taken for abandoned ones. */
    writing = new Set();
    constructor(dir) {
        this.dir = dir;
    }
    /** Opens (creating) the directory and removes temp files a crash may have left. */
    static async open(dir) {
        await (0,promises_.mkdir)(dir, { recursive: true });
        for (const name of await (0,promises_.readdir)(dir)) {
            if (name.startsWith(TEMP_PREFIX))
                await (0,promises_.unlink)((0,external_node_path_.join)(dir, name)).catch(() => undefined);
        }
        return new FsBlobStore(dir);
    }
    path(key) {
        if (!(0,blob_store/* isValidBlobKey */.B)(key))
            throw new Error(`invalid blob key '${key}'`);
        return (0,external_node_path_.join)(this.dir, key);
    }
    async put(key, body) {
        const finalPath = this.path(key);
        // Asking for the first chunk now reads the body while the temp file is being opened, and
        // catches a failure of the body meanwhile; it is taken up by the loop below.
        const chunks = body[Symbol.asyncIterator]();
        const first = chunks.next();
        first.catch(() => undefined);
        const tempPath = (0,external_node_path_.join)(this.dir, `${TEMP_PREFIX}${(0,external_node_crypto_.randomBytes)(8).toString('hex')}`);
        let file;
        this.writing.add(tempPath);
        try {
            file = await (0,promises_.open)(tempPath, 'wx', 0o644);
        }
        catch (error) {
            // Told to stop once it next yields; not awaited, as that waits for the client's bytes.
            void chunks.return?.().catch(() => undefined);
            this.writing.delete(tempPath);
            throw error;
        }
        try {
            // A chunk at a time: the body's next chunk is asked for once this one is written, and a
            // failed check of the body surfaces here.
            try {
                for (let next = await first; !next.done; next = await chunks.next())
                    await file.write(next.value);
            }
            catch (error) {
                // A failed write leaves the body unfinished: it is told to stop.
                await chunks.return?.();
                throw error;
            }
            await file.sync();
            await file.close();
            let outcome = 'created';
            try {
                await (0,promises_.link)(tempPath, finalPath);
            }
            catch (e) {
                if (e.code !== 'EEXIST')
                    throw e;
                outcome = 'exists';
            }
            // Synced either way: the time an upload takes must not tell whether the file was there.
            await syncDir(this.dir);
            return outcome;
        }
        finally {
            await file.close().catch(() => undefined);
            await (0,promises_.unlink)(tempPath).catch(() => undefined);
            this.writing.delete(tempPath);
        }
    }
    async open(key, range) {
        let file;
        try {
            file = await (0,promises_.open)(this.path(key), 'r');
        }
        catch (e) {
            if (e.code === 'ENOENT')
                return null;
            throw e;
        }
        if (range)
            return new FileReader(file, range.start, range.end + 1);
        try {
            return new FileReader(file, 0, (await file.stat()).size);
        }
        catch (e) {
            await file.close();
            throw e;
        }
    }
    async head(key) {
        try {
            const info = await (0,promises_.stat)(this.path(key));
            return { size: info.size };
        }
        catch (e) {
            if (e.code === 'ENOENT')
                return null;
            throw e;
        }
    }
    async delete(key) {
        await (0,promises_.unlink)(this.path(key)).catch((e) => {
            if (e.code !== 'ENOENT')
                throw e;
        });
    }
    async abortIncompleteUploads(before) {
        let removed = 0;
        for (const name of await (0,promises_.readdir)(this.dir)) {
            if (!name.startsWith(TEMP_PREFIX) || this.writing.has((0,external_node_path_.join)(this.dir, name)))
                continue;
            // Another process's upload in progress writes its file continuously: its mtime is recent.
            const info = await (0,promises_.stat)((0,external_node_path_.join)(this.dir, name)).catch(() => null);
            if (!info || info.mtime >= before)
                continue;
            await (0,promises_.unlink)((0,external_node_path_.join)(this.dir, name)).then(() => removed++, () => undefined);
        }
        return removed;
    }
    async *list(skip = () => false) {
        // One readdir (a single I/O wait however many files), then the candidates looked up 64 at a time.
        const names = (await (0,promises_.readdir)(this.dir)).filter((name) => !name.startsWith(TEMP_PREFIX) && (0,blob_store/* isValidBlobKey */.B)(name) && !skip(name));
        for (let i = 0; i < names.length; i += STAT_CHUNK) {
            const chunk = names.slice(i, i + STAT_CHUNK);
            // A file deleted since the listing is simply not there any more.
            const infos = await Promise.all(chunk.map((name) => (0,promises_.stat)((0,external_node_path_.join)(this.dir, name)).catch(() => null)));
            for (const [index, info] of infos.entries())
                if (info?.isFile())
                    yield { key: chunk[index], size: info.size, modifiedAt: info.mtime };
        }
    }
}
/**
 * Sends a file from two reused buffers rather than a read stream's fresh buffer per read: on a
 * busy server the allocations (page faults, then garbage collections) cost more than the copying.
 */
class FileReader {
    file;
    start;
    end;
    constructor(file, start, 
    /** Exclusive. */
    end) {
        this.file = file;
        this.start = start;
        this.end = end;
    }
    async writeTo(sink, sent) {
        const buffers = [readBuffers.take(), readBuffers.take()];
        let sending;
        try {
            for (let position = this.start, turn = 0; position < this.end; turn++) {
                const buffer = buffers[turn % 2];
                const { bytesRead } = await this.file.read(buffer, 0, Math.min(buffer.length, this.end - position), position);
                if (bytesRead === 0)
                    throw new Error('the file is shorter than it was when opened');
                position += bytesRead;
                // The buffer read into now was last sent two turns ago, and that write has finished.
                await sending;
                sending = (0,buffer_pool/* written */.M)(sink, buffer.subarray(0, bytesRead)).then(() => sent?.(bytesRead));
            }
            await sending;
        }
        catch (error) {
            // A write still in flight may fail later; its buffer stays with it.
            sending?.catch(() => undefined);
            throw error;
        }
        finally {
            await this.close();
        }
        readBuffers.give(buffers);
    }
    async close() {
        await this.file.close();
    }
}
/** Makes the new directory entry durable too, not only the file's bytes. */
async function syncDir(dir) {
    const handle = await (0,promises_.open)(dir, 'r');
    try {
        await handle.sync();
    }
    finally {
        await handle.close();
    }
}

// EXTERNAL MODULE: ./src/server/storage/unavailable.ts
var unavailable = __nccwpck_require__(7927);
;// CONCATENATED MODULE: ./src/server/storage/open-storage.ts
/**
 * Opens the stores the config names: files or S3 for NARs, SQLite or PostgreSQL for metadata. A
 * store that cannot be used stops the start with one line naming the config key and the problem.
 */




async function openStorage(config, paths, log) {
    const meta = await openMetadata(config, paths.database);
    try {
        if (config.blobs.type === 'fs') {
            const blobs = await FsBlobStore.open(paths.nars);
            return { blobs, meta, close: () => meta.close() };
        }
        const s3 = await openBucket(config.blobs, log);
        return {
            blobs: s3,
            meta,
            s3: { store: s3, config: config.blobs },
            close: async () => {
                await meta.close();
                await s3.close();
            },
        };
    }
    catch (error) {
        await meta.close();
        throw error;
    }
}
async function openMetadata(config, sqlitePath) {
    if (!config.database)
        return new SqliteMetadataStore(sqlitePath);
    // Loaded only when configured: the embedded default never pays for the PostgreSQL driver.
    const { PgMetadataStore } = await Promise.all(/* import() */[__nccwpck_require__.e(849), __nccwpck_require__.e(493)]).then(__nccwpck_require__.bind(__nccwpck_require__, 3493));
    try {
        return await PgMetadataStore.open(config.database.url);
    }
    catch (error) {
        const where = new URL(config.database.url);
        throw new ConfigError(`${config.database.source}: cannot use the PostgreSQL database at ${where.hostname}:${where.port || 5432}${where.pathname}: ${(0,unavailable/* describeCause */.V$)(error)}`);
    }
}
async function openBucket(blobs, log) {
    // Loaded only when configured: the embedded default never pays for the AWS SDK.
    const [{ S3BlobStore }, { httpStatusOf }] = await Promise.all([
        Promise.all(/* import() */[__nccwpck_require__.e(711), __nccwpck_require__.e(919)]).then(__nccwpck_require__.bind(__nccwpck_require__, 4919)),
        Promise.all(/* import() */[__nccwpck_require__.e(711), __nccwpck_require__.e(495)]).then(__nccwpck_require__.bind(__nccwpck_require__, 5495)),
    ]);
    const store = new S3BlobStore(blobs);
    try {
        await store.checkBucket();
    }
    catch (error) {
        store.client.destroy();
        throw new ConfigError(bucketProblem(blobs, httpStatusOf(error), error));
    }
    // Uploads a killed replica left unfinished: invisible, but their parts take space until aborted.
    const before = new Date(Date.now() - blobs.abortIncompleteAfterSeconds * 1000);
    store.abortIncompleteUploads(before).then((aborted) => {
        if (aborted > 0)
            log.info({ aborted }, 'aborted multipart uploads left unfinished');
    }, (error) => log.warn({ reason: (0,unavailable/* describeCause */.V$)(error) }, 'could not list unfinished multipart uploads'));
    return store;
}
function bucketProblem(blobs, status, error) {
    const endpoint = blobs.endpoint ?? `AWS S3 (${blobs.region})`;
    if (error.name === 'CredentialsProviderError')
        return `storage.blobs: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use an instance role)`;
    if (status === 404)
        return `storage.blobs.bucket: bucket '${blobs.bucket}' does not exist at ${endpoint}`;
    if (status === 403)
        return `storage.blobs: access to bucket '${blobs.bucket}' at ${endpoint} denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or role) and the bucket policy`;
    if (status === 301 || status === 400)
        return `storage.blobs.region: bucket '${blobs.bucket}' answered ${status}: is region '${blobs.region}' right?`;
    if (status === undefined)
        return `storage.blobs.endpoint: cannot reach ${endpoint}: ${(0,unavailable/* describeCause */.V$)(error)}`;
    return `storage.blobs: bucket '${blobs.bucket}' at ${endpoint} answered HTTP ${status}: ${(0,unavailable/* describeCause */.V$)(error)}`;
}

;// CONCATENATED MODULE: ./src/cli/stores.ts
/** The CLI's access to the configured stores (the commands that work beside the server: gc, pin, slices). */





/** Runs `body` with the stores the config names (the data dir's, or PostgreSQL and a bucket), closing them after. */
async function withStores(flags, body) {
    const config = applyEnvironment(applyCliOverrides(await loadConfig(flags.config), { data: flags.data }));
    const paths = dataPaths(config.data);
    if (!config.database && !(0,external_node_fs_.existsSync)(paths.database))
        throw new Error(`no Sluice database at ${paths.database} (is --data right?)`);
    // Logs (the bucket's start-up sweep) go to stderr: stdout is the command's answer.
    const storage = await openStorage(config, paths, createLogger(process.stderr, 'warn'));
    try {
        return await body({ config, blobs: storage.blobs, meta: storage.meta });
    }
    finally {
        await storage.close();
    }
}

;// CONCATENATED MODULE: ./src/cli/gc.ts





const GC_USAGE = `usage: sluice gc [--slice NAME] [--dry-run] [--json] [--data DIR] [--config FILE]

Applies the configured retention now (the server also does, every gc_interval): per slice, removes
paths past max_age and least recently used paths beyond max_size, never a pinned closure nor a path
another kept path of the slice refers to; then NAR files no narinfo uses (and orphan uploads) older
than gc_grace. Prints, per slice, what is kept and every removed path with its reason.

  --slice NAME   only this slice (NAR files no slice uses are still collected)
  --dry-run      change nothing; print what a run now would remove
  --json         the report as JSON
`;
async function runGc(argv, io = process) {
    let values;
    try {
        ({ values } = (0,external_node_util_.parseArgs)({
            args: argv,
            options: {
                slice: { type: 'string' },
                'dry-run': { type: 'boolean' },
                json: { type: 'boolean' },
                data: { type: 'string' },
                config: { type: 'string' },
            },
            allowPositionals: false,
        }));
    }
    catch (error) {
        io.stderr.write(`sluice gc: ${error.message}\n${GC_USAGE}`);
        return 2;
    }
    try {
        const report = await withStores(values, (stores) => collectGarbage(stores, {
            dryRun: values['dry-run'] === true,
            ...(values.slice ? { slice: normalizeSliceName(values.slice) } : {}),
        }));
        io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatGcReport(report));
        return report.skipped ? 1 : 0;
    }
    catch (error) {
        io.stderr.write(`sluice gc: ${error.message}\n`);
        return 1;
    }
}

;// CONCATENATED MODULE: ./src/nix/hash.ts
/** Nix hashes and their text forms: `algo:nix32`, `algo:base16`, `algo:base64` and SRI `algo-base64`. */


const DIGEST_BYTES = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };
class HashError extends Error {
}
class Hash {
    algorithm;
    digest;
    constructor(algorithm, digest) {
        this.algorithm = algorithm;
        this.digest = digest;
        if (digest.length !== DIGEST_BYTES[algorithm]) {
            throw new HashError(`${algorithm} digest must be ${DIGEST_BYTES[algorithm]} bytes, got ${digest.length}`);
        }
    }
    /**
     * Parses `algo:<nix32|base16|base64>` or SRI `algo-<base64>`. With `expected`, a bare digest
     * without the algorithm prefix is accepted too.
     */
    static parse(text, expected) {
        const sri = /^(md5|sha1|sha256|sha512)-([A-Za-z0-9+/]+={0,2})$/.exec(text);
        if (sri) {
            if (expected !== undefined && sri[1] !== expected)
                throw new HashError(`expected a ${expected} hash, got '${text}'`);
            return Hash.fromDigestText(sri[1], sri[2], 'base64', text);
        }
        const colon = text.indexOf(':');
        let algorithm;
        let digest;
        if (colon === -1) {
            algorithm = expected;
            digest = text;
        }
        else {
            algorithm = text.slice(0, colon);
            digest = text.slice(colon + 1);
        }
        if (algorithm === undefined)
            throw new HashError(`hash '${text}' does not name its algorithm`);
        if (!(algorithm in DIGEST_BYTES))
            throw new HashError(`unknown hash algorithm '${algorithm}' in '${text}'`);
        if (expected !== undefined && algorithm !== expected) {
            throw new HashError(`expected a ${expected} hash, got '${text}'`);
        }
        return Hash.fromDigestText(algorithm, digest, undefined, text);
    }
    static fromDigestText(algorithm, digest, encoding, original) {
        const bytes = DIGEST_BYTES[algorithm];
        if (encoding === undefined) {
            if (digest.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(digest)) {
                return new Hash(algorithm, Buffer.from(digest, 'hex'));
            }
            if (digest.length === nix32Length(bytes) && isNix32(digest)) {
                try {
                    return new Hash(algorithm, decodeNix32(digest, bytes));
                }
                catch (e) {
                    if (e instanceof Nix32Error)
                        throw new HashError(`'${original}' is not a valid ${algorithm} hash: ${e.message}`);
                    throw e;
                }
            }
        }
        if (digest.length === Math.ceil(bytes / 3) * 4 && /^[A-Za-z0-9+/]+={0,2}$/.test(digest)) {
            const decoded = Buffer.from(digest, 'base64');
            // Node ignores stray bits in the last character: insist on the one canonical spelling.
            if (decoded.length === bytes && decoded.toString('base64') === digest)
                return new Hash(algorithm, decoded);
        }
        throw new HashError(`'${original}' is not a valid ${algorithm} hash`);
    }
    static of(algorithm, data) {
        return new Hash(algorithm, (0,external_node_crypto_.createHash)(algorithm).update(data).digest());
    }
    get nix32() {
        return encodeNix32(this.digest);
    }
    get base16() {
        return this.digest.toString('hex');
    }
    get base64() {
        return this.digest.toString('base64');
    }
    /** `sha256:<nix32>`, the form narinfo files use. */
    toString() {
        return `${this.algorithm}:${this.nix32}`;
    }
    toBase16String() {
        return `${this.algorithm}:${this.base16}`;
    }
    toSRI() {
        return `${this.algorithm}-${this.base64}`;
    }
    equals(other) {
        return this.algorithm === other.algorithm && this.digest.equals(other.digest);
    }
}

;// CONCATENATED MODULE: ./src/nix/store-path.ts
/** Store paths: `<storeDir>/<32-char nix32 hash>-<name>`, validated as Nix does. */

const store_path_DEFAULT_STORE_DIR = '/nix/store';
const HASH_PART_LENGTH = 32;
/** A store path's hash part: 32 nix32 characters (160 bits). */
const HASH_PART_PATTERN = new RegExp(`^${NIX32_CLASS}{${HASH_PART_LENGTH}}$`);
/** Nix's limit on the name after the hash and dash ("name must be less than 212 characters"). */
const store_path_MAX_NAME_LENGTH = 211;
const NAME_PATTERN = /^[A-Za-z0-9+\-._?=]+$/;
class StorePathError extends Error {
}
/** Checks a store path hash part (the 32 nix32 characters); throws naming the problem. */
function validateHashPart(hashPart) {
    if (hashPart.length !== HASH_PART_LENGTH) {
        throw new StorePathError(`store path hash '${hashPart}' must be ${HASH_PART_LENGTH} characters`);
    }
    if (!isNix32(hashPart))
        throw new StorePathError(`store path hash '${hashPart}' is not nix32`);
    return hashPart;
}
/**
 * Checks a store path name. Nix 2.8 itself accepts any name made of the allowed characters (so
 * `.hidden` is a path Nix builds); like later Nix versions we also refuse `.`, `..` and names whose
 * first dash-separated part is one of those, which only ever serve path tricks.
 */
function validateName(name, baseName = name) {
    if (name.length === 0)
        throw new StorePathError(`store path '${baseName}' has an empty name`);
    if (name.length > store_path_MAX_NAME_LENGTH) {
        throw new StorePathError(`store path name in '${baseName}' is longer than ${store_path_MAX_NAME_LENGTH} characters`);
    }
    const bad = NAME_PATTERN.test(name) ? undefined : [...name].find((c) => !NAME_PATTERN.test(c));
    if (bad !== undefined) {
        throw new StorePathError(`store path name in '${baseName}' has the character '${bad}' (allowed: A-Z a-z 0-9 + - . _ ? =)`);
    }
    const firstPart = name.split('-', 1)[0];
    if (firstPart === '.' || firstPart === '..') {
        throw new StorePathError(`store path name in '${baseName}' must not start with '${firstPart}'`);
    }
    return name;
}
function normalizeStoreDir(storeDir) {
    const trimmed = storeDir.replace(/\/+$/, '');
    const segments = trimmed.split('/').slice(1);
    if (!trimmed.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
        throw new StorePathError(`store dir '${storeDir}' must be an absolute, canonical directory other than '/'`);
    }
    return trimmed;
}
class store_path_StorePath {
    hashPart;
    name;
    constructor(hashPart, name) {
        this.hashPart = hashPart;
        this.name = name;
    }
    /** Parses a base name such as `l74iprxx1nl7ni75j8rhax3368zxgkzn-chain-b`. */
    static fromBaseName(baseName) {
        if (baseName.length < HASH_PART_LENGTH + 1 || baseName[HASH_PART_LENGTH] !== '-') {
            throw new StorePathError(`'${baseName}' is not a store path base name (<32-char hash>-<name>)`);
        }
        const hashPart = validateHashPart(baseName.slice(0, HASH_PART_LENGTH));
        const name = validateName(baseName.slice(HASH_PART_LENGTH + 1), baseName);
        return new store_path_StorePath(hashPart, name);
    }
    /** Parses a full path directly inside `storeDir` (default `/nix/store`). */
    static parse(path, storeDir = store_path_DEFAULT_STORE_DIR) {
        const prefix = `${normalizeStoreDir(storeDir)}/`;
        if (!path.startsWith(prefix))
            throw new StorePathError(`path '${path}' is not in the store '${storeDir}'`);
        const baseName = path.slice(prefix.length);
        if (baseName.includes('/'))
            throw new StorePathError(`path '${path}' is inside a store path, not a store path`);
        return store_path_StorePath.fromBaseName(baseName);
    }
    /** True when `path` is a valid store path in `storeDir`. */
    static isValid(path, storeDir = store_path_DEFAULT_STORE_DIR) {
        try {
            store_path_StorePath.parse(path, storeDir);
            return true;
        }
        catch (e) {
            if (e instanceof StorePathError)
                return false;
            throw e;
        }
    }
    get baseName() {
        return `${this.hashPart}-${this.name}`;
    }
    toPath(storeDir = store_path_DEFAULT_STORE_DIR) {
        return `${normalizeStoreDir(storeDir)}/${this.baseName}`;
    }
    toString() {
        return this.baseName;
    }
}

;// CONCATENATED MODULE: ./src/nix/signing.ts
/**
 * Nix binary cache signatures: ed25519 over a path's fingerprint, keys in Nix's `name:base64` files.
 * A secret key is `name:base64(seed \u2016 public key)` (64 bytes), a public key `name:base64(public key)`.
 */



// DER prefixes that wrap a raw 32-byte ed25519 key as PKCS#8 (private) and SPKI (public).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
class KeyError extends Error {
}
function splitKey(text, what) {
    const trimmed = text.trim();
    const colon = trimmed.indexOf(':');
    if (colon <= 0)
        throw new KeyError(`${what} must be 'name:base64'`);
    const name = trimmed.slice(0, colon);
    const encoded = trimmed.slice(colon + 1);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded))
        throw new KeyError(`${what} '${name}' is not valid base64`);
    return [name, Buffer.from(encoded, 'base64')];
}
function publicKeyFromRaw(name, raw) {
    const key = (0,external_node_crypto_.createPublicKey)({
        key: Buffer.concat([SPKI_ED25519_PREFIX, raw]),
        format: 'der',
        type: 'spki',
    });
    return { name, key, text: `${name}:${raw.toString('base64')}` };
}
function parsePublicKey(text) {
    const [name, raw] = splitKey(text, 'public key');
    if (raw.length !== 32)
        throw new KeyError(`public key '${name}' must be 32 bytes, got ${raw.length}`);
    return publicKeyFromRaw(name, raw);
}
function parseSecretKey(text) {
    const [name, raw] = splitKey(text, 'secret key');
    if (raw.length !== 64)
        throw new KeyError(`secret key '${name}' must be 64 bytes, got ${raw.length}`);
    const seed = raw.subarray(0, 32);
    const key = (0,external_node_crypto_.createPrivateKey)({
        key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
        format: 'der',
        type: 'pkcs8',
    });
    const derivedPublic = rawPublicKey((0,external_node_crypto_.createPublicKey)(key));
    if (!derivedPublic.equals(raw.subarray(32))) {
        throw new KeyError(`secret key '${name}' does not match the public key stored in it`);
    }
    return {
        name,
        key,
        publicKey: publicKeyFromRaw(name, derivedPublic),
        text: `${name}:${raw.toString('base64')}`,
    };
}
function rawPublicKey(key) {
    return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length);
}
/** A fresh key pair, like `nix-store --generate-binary-cache-key name`. */
function generateSecretKey(name) {
    if (!name || name.includes(':'))
        throw new KeyError(`key name '${name}' must be non-empty and contain no ':'`);
    const { privateKey, publicKey } = (0,external_node_crypto_.generateKeyPairSync)('ed25519');
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length);
    return parseSecretKey(`${name}:${Buffer.concat([seed, rawPublicKey(publicKey)]).toString('base64')}`);
}
/**
 * The string Nix signs: `1;<store path>;<nar hash>;<nar size>;<references as full paths, comma-separated>`.
 * `narHash` is a Hash or any text form of one (written as `sha256:<nix32>`); `references` are base
 * names. Nix holds references in a sorted set, so they are sorted and deduplicated here too: a
 * narinfo listing them in another order still gets the signature Nix expects.
 */
function fingerprint(storePath, narHash, narSize, references, storeDir = store_path_DEFAULT_STORE_DIR) {
    const hash = typeof narHash === 'string' ? Hash.parse(narHash) : narHash;
    const dir = storeDir.replace(/\/+$/, '');
    const refs = [...new Set(references)]
        .sort()
        .map((r) => `${dir}/${r}`)
        .join(',');
    return `1;${storePath};${hash.toString()};${narSize};${refs}`;
}
/** The fingerprint of a narinfo, the text its `Sig:` lines sign. */
function narInfoFingerprint(info, storeDir = store_path_DEFAULT_STORE_DIR) {
    return fingerprint(info.storePath, info.narHash, info.narSize, info.references, storeDir);
}
/** Signs a fingerprint; returns a `Sig:` value, `name:base64(signature)`. */
function signFingerprint(fp, secretKey) {
    return `${secretKey.name}:${(0,external_node_crypto_.sign)(null, Buffer.from(fp), secretKey.key).toString('base64')}`;
}
/** True when `sig` (`name:base64`) is a valid signature of `fp` by the key of that name among `keys`. */
function verifyFingerprint(fp, sig, keys) {
    const colon = sig.indexOf(':');
    if (colon <= 0)
        return false;
    const name = sig.slice(0, colon);
    const signature = Buffer.from(sig.slice(colon + 1), 'base64');
    if (signature.length !== 64)
        return false;
    return keys.some((k) => k.name === name && verify(null, Buffer.from(fp), k.key, signature));
}

;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/buffer_utils.js
const buffer_utils_encoder = new TextEncoder(), decoder = new TextDecoder(), strictDecoder = new TextDecoder("utf-8", { fatal: !0 }), UINT32_RANGE = (/* unused pure expression or super */ null && (2 ** 32));
function concat(...buffers) {
  const size = buffers.reduce((acc, { length }) => acc + length, 0), buf = new Uint8Array(size);
  let i = 0;
  for (const buffer of buffers)
    buf.set(buffer, i), i += buffer.length;
  return buf;
}
function writeUInt32BE(buf, value, offset) {
  if (value < 0 || value >= UINT32_RANGE)
    throw new RangeError(`value must be >= 0 and <= ${UINT32_RANGE - 1}. Received ${value}`);
  buf.set([value >>> 24, value >>> 16, value >>> 8, value & 255], offset);
}
function uint64be(value) {
  const high = Math.floor(value / UINT32_RANGE), low = value % UINT32_RANGE, buf = new Uint8Array(8);
  return writeUInt32BE(buf, high, 0), writeUInt32BE(buf, low, 4), buf;
}
function uint32be(value) {
  const buf = new Uint8Array(4);
  return writeUInt32BE(buf, value), buf;
}
const NON_ASCII = /[^\x00-\x7f]/;
function encode(string) {
  if (typeof string == "string" && string.length >= 128) {
    if (NON_ASCII.test(string))
      throw new TypeError("non-ASCII string encountered in encode()");
    return buffer_utils_encoder.encode(string);
  }
  const bytes = new Uint8Array(string.length);
  for (let i = 0; i < string.length; i++) {
    const code = string.charCodeAt(i);
    if (code > 127)
      throw new TypeError("non-ASCII string encountered in encode()");
    bytes[i] = code;
  }
  return bytes;
}
function encodeBase64(input, url = !1) {
  if (Uint8Array.prototype.toBase64)
    return input.toBase64({ alphabet: url ? "base64url" : "base64", omitPadding: url });
  const CHUNK_SIZE = 32768, arr = [];
  for (let i = 0; i < input.length; i += CHUNK_SIZE)
    arr.push(String.fromCharCode.apply(null, input.subarray(i, i + CHUNK_SIZE)));
  const encoded = btoa(arr.join(""));
  return url ? encoded.replace(/=/g, "").replace(/\+/g, "-").replace(/\//g, "_") : encoded;
}
function decodeBase64(encoded, url = !1) {
  if (Uint8Array.fromBase64)
    return Uint8Array.fromBase64(encoded, { alphabet: url ? "base64url" : "base64" });
  if (url) {
    if (encoded.includes("+") || encoded.includes("/"))
      throw new TypeError("Invalid base64url");
    encoded = encoded.replace(/-/g, "+").replace(/_/g, "/");
  }
  const binary = atob(encoded), bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++)
    bytes[i] = binary.charCodeAt(i);
  return bytes;
}
async function digest(algorithm, data) {
  const subtleDigest = `SHA-${algorithm.slice(-3)}`;
  return new Uint8Array(await crypto.subtle.digest(subtleDigest, data));
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/util/base64url.js

const invalid = "The input to be decoded is not correctly encoded.";
function decode(input) {
  try {
    return decodeBase64(typeof input == "string" ? input : decoder.decode(input), !0);
  } catch (cause) {
    throw new TypeError(invalid, { cause });
  }
}
function base64url_encode(input) {
  return encodeBase64(typeof input == "string" ? buffer_utils_encoder.encode(input) : input, !0);
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/util/errors.js
class JOSEError extends Error {
  static code = "ERR_JOSE_GENERIC";
  code = "ERR_JOSE_GENERIC";
  constructor(message, options) {
    super(message, options), this.name = this.constructor.name, Error.captureStackTrace?.(this, this.constructor);
  }
}
class JWTClaimValidationFailed extends JOSEError {
  static code = "ERR_JWT_CLAIM_VALIDATION_FAILED";
  code = "ERR_JWT_CLAIM_VALIDATION_FAILED";
  claim;
  reason;
  payload;
  constructor(message, payload, claim = "unspecified", reason = "unspecified") {
    super(message, { cause: { claim, reason, payload } }), this.claim = claim, this.reason = reason, this.payload = payload;
  }
}
class JWTExpired extends JOSEError {
  static code = "ERR_JWT_EXPIRED";
  code = "ERR_JWT_EXPIRED";
  claim;
  reason;
  payload;
  constructor(message, payload, claim = "unspecified", reason = "unspecified") {
    super(message, { cause: { claim, reason, payload } }), this.claim = claim, this.reason = reason, this.payload = payload;
  }
}
class JOSEAlgNotAllowed extends JOSEError {
  static code = "ERR_JOSE_ALG_NOT_ALLOWED";
  code = "ERR_JOSE_ALG_NOT_ALLOWED";
}
class JOSENotSupported extends JOSEError {
  static code = "ERR_JOSE_NOT_SUPPORTED";
  code = "ERR_JOSE_NOT_SUPPORTED";
}
class JWEDecryptionFailed extends JOSEError {
  static code = "ERR_JWE_DECRYPTION_FAILED";
  code = "ERR_JWE_DECRYPTION_FAILED";
  constructor(message = "decryption operation failed", options) {
    super(message, options);
  }
}
class JWEInvalid extends (/* unused pure expression or super */ null && (JOSEError)) {
  static code = (/* unused pure expression or super */ null && ("ERR_JWE_INVALID"));
  code = "ERR_JWE_INVALID";
}
class errors_JWSInvalid extends JOSEError {
  static code = "ERR_JWS_INVALID";
  code = "ERR_JWS_INVALID";
}
class JWTInvalid extends JOSEError {
  static code = "ERR_JWT_INVALID";
  code = "ERR_JWT_INVALID";
}
class JWKInvalid extends (/* unused pure expression or super */ null && (JOSEError)) {
  static code = (/* unused pure expression or super */ null && ("ERR_JWK_INVALID"));
  code = "ERR_JWK_INVALID";
}
class JWKSInvalid extends JOSEError {
  static code = "ERR_JWKS_INVALID";
  code = "ERR_JWKS_INVALID";
}
class JWKSNoMatchingKey extends JOSEError {
  static code = "ERR_JWKS_NO_MATCHING_KEY";
  code = "ERR_JWKS_NO_MATCHING_KEY";
  constructor(message = "no applicable key found in the JSON Web Key Set", options) {
    super(message, options);
  }
}
class JWKSMultipleMatchingKeys extends JOSEError {
  [Symbol.asyncIterator] = async function* () {
  };
  static code = "ERR_JWKS_MULTIPLE_MATCHING_KEYS";
  code = "ERR_JWKS_MULTIPLE_MATCHING_KEYS";
  constructor(message = "multiple matching keys found in the JSON Web Key Set", options) {
    super(message, options);
  }
}
class JWKSTimeout extends JOSEError {
  static code = "ERR_JWKS_TIMEOUT";
  code = "ERR_JWKS_TIMEOUT";
  constructor(message = "request timed out", options) {
    super(message, options);
  }
}
class JWSSignatureVerificationFailed extends JOSEError {
  static code = "ERR_JWS_SIGNATURE_VERIFICATION_FAILED";
  code = "ERR_JWS_SIGNATURE_VERIFICATION_FAILED";
  constructor(message = "signature verification failed", options) {
    super(message, options);
  }
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/key_descriptor.js
function table(entries) {
  const out = { __proto__: null };
  for (const alg in entries)
    out[alg] = { ...entries[alg], alg };
  return out;
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/jws_algorithms.js


const sig = [["verify"], ["sign"]];
function hmac(bits) {
  const subtle = { name: "HMAC", hash: `SHA-${bits}` };
  return { kty: ["oct"], secret: !0, subtle, signing: subtle, usages: sig };
}
function rsa(bits, saltLength) {
  const subtle = { name: saltLength ? "RSA-PSS" : "RSASSA-PKCS1-v1_5", hash: `SHA-${bits}` };
  return {
    kty: ["RSA"],
    subtle,
    signing: saltLength ? { ...subtle, saltLength } : subtle,
    usages: sig,
    minRsaBits: 2048
  };
}
function ecdsa(crv, bits) {
  return {
    kty: ["EC"],
    crv,
    subtle: { name: "ECDSA", namedCurve: crv },
    signing: { name: "ECDSA", hash: `SHA-${bits}` },
    usages: sig
  };
}
function eddsa() {
  const subtle = { name: "Ed25519" };
  return {
    kty: ["OKP"],
    crv: "Ed25519",
    subtle,
    signing: subtle,
    usages: sig
  };
}
function mldsa(parameterSet) {
  const subtle = { name: `ML-DSA-${parameterSet}` };
  return {
    kty: ["AKP"],
    subtle,
    signing: subtle,
    usages: sig
  };
}
const JWS = table({
  HS256: hmac(256),
  HS384: hmac(384),
  HS512: hmac(512),
  RS256: rsa(256),
  RS384: rsa(384),
  RS512: rsa(512),
  PS256: rsa(256, 32),
  PS384: rsa(384, 48),
  PS512: rsa(512, 64),
  ES256: ecdsa("P-256", 256),
  ES384: ecdsa("P-384", 384),
  ES512: ecdsa("P-521", 512),
  EdDSA: eddsa(),
  Ed25519: eddsa(),
  "ML-DSA-44": mldsa(44),
  "ML-DSA-65": mldsa(65),
  "ML-DSA-87": mldsa(87)
});
function jwsAlgorithm(alg) {
  const entry = typeof alg == "string" ? JWS[alg] : void 0;
  if (!entry)
    throw new JOSENotSupported(`alg ${alg} is not supported either by JOSE or your javascript runtime`);
  return entry;
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/validate.js



function assertUint8Array(input, label) {
  if (!(input instanceof Uint8Array))
    throw new TypeError(`${label} must be an instance of Uint8Array`);
}
function validate_isObject(input) {
  if (typeof input != "object" || input === null || Object.prototype.toString.call(input) !== "[object Object]")
    return !1;
  const prototype = Object.getPrototypeOf(input);
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}
function isJwkSet(input) {
  return validate_isObject(input) && Array.isArray(input.keys) && Array.from(input.keys).every(validate_isObject);
}
function isDisjoint(...headers) {
  const parameters = /* @__PURE__ */ new Set();
  for (const header of headers)
    if (header)
      for (const parameter of Object.keys(header)) {
        if (parameters.has(parameter))
          return !1;
        parameters.add(parameter);
      }
  return !0;
}
function assertNotSet(value, name) {
  if (value !== void 0)
    throw new TypeError(`${name} can only be called once`);
}
function decodeBase64url(value, label, ErrorClass) {
  try {
    return decode(value);
  } catch (cause) {
    throw new ErrorClass(`Failed to base64url decode the ${label}`, { cause });
  }
}
function encodeAsciiMember(value, label, ErrorClass) {
  try {
    return encode(value);
  } catch (cause) {
    throw new ErrorClass(`The ${label} is not a valid base64url string`, { cause });
  }
}
function parseJoseHeader(encodedProtectedHeader, ErrorClass, message) {
  let parsed;
  try {
    parsed = JSON.parse(strictDecoder.decode(decode(encodedProtectedHeader)));
  } catch (cause) {
    throw new ErrorClass(message, { cause });
  }
  if (!validate_isObject(parsed))
    throw new ErrorClass(message);
  return parsed;
}
const JWS_RECOGNIZED = { __proto__: null, b64: !0 }, JWE_RECOGNIZED = { __proto__: null };
function validateAlgorithms(option, algorithms) {
  if (algorithms !== void 0 && (!Array.isArray(algorithms) || algorithms.some((s) => typeof s != "string")))
    throw new TypeError(`"${option}" option must be an array of strings`);
  return algorithms === void 0 ? void 0 : new Set(algorithms);
}
function validateCritDuplicates(Err, protectedHeader) {
  const { crit } = protectedHeader ?? {};
  if (Array.isArray(crit) && new Set(crit).size !== crit.length)
    throw new Err('"crit" (Critical) Header Parameter MUST NOT contain duplicate values');
}
function validateCrit(Err, recognizedDefault, recognizedOption, protectedHeader, joseHeader) {
  if (joseHeader.crit !== void 0 && protectedHeader?.crit === void 0)
    throw new Err('"crit" (Critical) Header Parameter MUST be integrity protected');
  if (!protectedHeader || protectedHeader.crit === void 0)
    return [];
  if (!Array.isArray(protectedHeader.crit) || protectedHeader.crit.length === 0 || protectedHeader.crit.some((input) => typeof input != "string" || input.length === 0))
    throw new Err('"crit" (Critical) Header Parameter MUST be an array of non-empty strings when present');
  const recognized = recognizedOption === void 0 ? recognizedDefault : { __proto__: null, ...recognizedOption, ...recognizedDefault };
  for (const parameter of protectedHeader.crit) {
    if (!(parameter in recognized))
      throw new JOSENotSupported(`Extension Header Parameter "${parameter}" is not recognized`);
    if (!Object.hasOwn(joseHeader, parameter) || joseHeader[parameter] === void 0)
      throw new Err(`Extension Header Parameter "${parameter}" is missing`);
    if (recognized[parameter] && (!Object.hasOwn(protectedHeader, parameter) || protectedHeader[parameter] === void 0))
      throw new Err(`Extension Header Parameter "${parameter}" MUST be integrity protected`);
  }
  return protectedHeader.crit;
}
function validateB64(protectedHeader, extensions) {
  if (extensions.includes("b64")) {
    const b64 = protectedHeader.b64;
    if (typeof b64 != "boolean")
      throw new errors_JWSInvalid('The "b64" (base64url-encode payload) Header Parameter must be a boolean');
    return b64;
  }
  return !0;
}
function serializeJoseHeader(Err, header) {
  let serialized, parsed;
  try {
    serialized = JSON.stringify(header), parsed = JSON.parse(serialized);
  } catch (cause) {
    throw new Err("JOSE Header is not valid JSON", { cause });
  }
  if (!validate_isObject(parsed))
    throw new Err("JOSE Header is not a JSON object");
  return [parsed, serialized];
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/key.js



const tag = (key) => key[Symbol.toStringTag], jwkMatchesOp = (entry, key, usage) => {
  const { alg } = entry;
  if (key.use !== void 0) {
    const expected = usage === "sign" || usage === "verify" ? "sig" : "enc";
    if (key.use !== expected)
      throw new TypeError(`Invalid key for this operation, its "use" must be "${expected}" when present`);
  }
  if (key.alg !== void 0 && key.alg !== alg)
    throw new TypeError(`Invalid key for this operation, its "alg" must be "${alg}" when present`);
  if (Array.isArray(key.key_ops)) {
    const expectedKeyOp = usage === "encrypt" || usage === "decrypt" ? entry.ops?.[usage === "encrypt" ? 0 : 1] : usage;
    if (expectedKeyOp && !key.key_ops.includes(expectedKeyOp))
      throw new TypeError(`Invalid key for this operation, its "key_ops" must include "${expectedKeyOp}" when present`);
  }
};
async function prepareKey(entry, key, usage) {
  const { alg, secret } = entry, requiresPrivateKey = usage === "decrypt" || usage === "sign";
  if (secret && key instanceof Uint8Array)
    return key;
  let normalized, keyObject;
  if (validate_isObject(key)) {
    if (normalized = normalizeJwk(key), typeof normalized.kty != "string")
      throw invalidKeyType(alg, key, secret);
    if (!(secret ? normalized.kty === "oct" && typeof normalized.k == "string" : normalized.kty !== "oct" && (requiresPrivateKey ? normalized.kty === "AKP" && typeof normalized.priv == "string" || typeof normalized.d == "string" : normalized.d === void 0 && normalized.priv === void 0)))
      throw new TypeError(secret ? 'JSON Web Key for symmetric algorithms must have JWK "kty" (Key Type) equal to "oct" and the JWK "k" (Key Value) present' : `JSON Web Key for this operation must be a ${requiresPrivateKey ? "private" : "public"} JWK`);
    if (jwkMatchesOp(entry, normalized, usage), normalized.kty === "oct")
      return decode(normalized.k);
    if (!Object.isFrozen(key)) {
      const { key_ops } = key;
      Array.isArray(key_ops) && Object.freeze(key_ops), Object.freeze(key);
    }
  } else {
    if (!isKeyLike(key))
      throw invalidKeyType(alg, key, secret);
    const expectedType = secret ? "secret" : requiresPrivateKey ? "private" : "public";
    if (key.type !== expectedType && (secret || ["secret", "public", "private"].includes(key.type)))
      throw new TypeError(`${tag(key)} instances must be of type "${expectedType}" for the ${alg} algorithm`);
    if (isCryptoKey(key))
      return key;
    if (keyObject = key, keyObject.type === "secret")
      return keyObject.export();
  }
  cache ||= /* @__PURE__ */ new WeakMap();
  const cacheKey = key;
  let cached = cache.get(cacheKey);
  if (cached?.[alg])
    return cached[alg];
  if (cached || cache.set(cacheKey, cached = {}), keyObject && typeof keyObject.toCryptoKey == "function") {
    const isPublic = keyObject.type === "public", crv = nist[keyObject.asymmetricKeyDetails?.namedCurve], params = entry.resolve?.({ crv, asymmetricKeyType: keyObject.asymmetricKeyType }) ?? entry.subtle;
    return cached[alg] = keyObject.toCryptoKey(params, isPublic, entry.usages[isPublic ? 0 : 1]);
  }
  return normalized ??= keyObject.export({ format: "jwk" }), normalized.alg = alg, cached[alg] = await jwkToKey(entry, normalized);
}
let cache;
const nist = {
  __proto__: null,
  prime256v1: "P-256",
  secp384r1: "P-384",
  secp521r1: "P-521"
};
function assertCryptoKey(key) {
  if (!isCryptoKey(key))
    throw new Error("CryptoKey instance expected");
}
const isCryptoKey = (key) => {
  if (key?.[Symbol.toStringTag] === "CryptoKey")
    return !0;
  try {
    return key instanceof CryptoKey;
  } catch {
    return !1;
  }
}, isKeyObject = (key) => key?.[Symbol.toStringTag] === "KeyObject", isKeyLike = (key) => isCryptoKey(key) || isKeyObject(key);
function message(msg, actual, ...types) {
  if (types.length > 2) {
    const last = types.pop();
    msg += `one of type ${types.join(", ")}, or ${last}.`;
  } else types.length === 2 ? msg += `one of type ${types[0]} or ${types[1]}.` : msg += `of type ${types[0]}.`;
  return actual == null ? msg += ` Received ${actual}` : typeof actual == "function" && actual.name ? msg += ` Received function ${actual.name}` : typeof actual == "object" && actual != null && actual.constructor?.name && (msg += ` Received an instance of ${actual.constructor.name}`), msg;
}
const invalidKeyInput = (actual, ...types) => message("Key must be ", actual, ...types);
function invalidKeyType(alg, actual, secret) {
  const types = ["CryptoKey", "KeyObject", "JSON Web Key"];
  return secret && types.push("Uint8Array"), new TypeError(message(`Key for the ${alg} algorithm must be `, actual, ...types));
}
const unusable = (name, prop = "algorithm.name") => new TypeError(`CryptoKey does not support this operation, its ${prop} must be ${name}`);
function checkUsage(key, usage) {
  if (usage && !key.usages.includes(usage))
    throw new TypeError(`CryptoKey does not support this operation, its usages must include ${usage}.`);
}
function checkModulusLength(alg, key) {
  const { modulusLength } = key.algorithm;
  if (typeof modulusLength != "number" || modulusLength < 2048)
    throw new TypeError(`${alg} requires key modulusLength to be 2048 bits or larger`);
}
function checkCryptoKey(key, expected, usage) {
  const algorithm = key.algorithm;
  if (algorithm.name !== expected.name)
    throw unusable(expected.name);
  if (expected.hash && algorithm.hash?.name !== expected.hash)
    throw unusable(expected.hash, "algorithm.hash");
  if (expected.namedCurve && algorithm.namedCurve !== expected.namedCurve)
    throw unusable(expected.namedCurve, "algorithm.namedCurve");
  if (expected.length !== void 0 && algorithm.length !== expected.length)
    throw unusable(expected.length, "algorithm.length");
  checkUsage(key, usage);
}
function snapshotJwk(jwk) {
  return { __proto__: null, ...jwk };
}
function normalizeJwk(jwk) {
  const normalized = snapshotJwk(jwk);
  if (normalized.ext !== void 0 && typeof normalized.ext != "boolean")
    throw new TypeError('"ext" (Extractable) Parameter must be a boolean');
  if (normalized.key_ops !== void 0) {
    const value = normalized.key_ops, keyOps = Array.isArray(value) ? [...value] : void 0;
    if (!keyOps || keyOps.some((operation) => typeof operation != "string") || new Set(keyOps).size !== keyOps.length)
      throw new TypeError('"key_ops" (Key Operations) Parameter must be an array of unique strings');
    normalized.key_ops = keyOps;
  }
  return normalized;
}
function validateExtractableOption(extractable) {
  if (extractable !== void 0 && typeof extractable != "boolean")
    throw new TypeError('"extractable" option must be a boolean');
  return extractable;
}
async function jwkToKey(entry, jwk, extractable) {
  if (!entry.kty.includes(jwk.kty))
    throw new JOSENotSupported('Invalid or unsupported JWK "alg" (Algorithm) Parameter value');
  const algorithm = entry.resolve?.({ kty: jwk.kty, crv: jwk.crv }) ?? entry.subtle, isPrivate = !!(jwk.d || jwk.priv), keyData = { ...jwk, ext: extractable ?? jwk.ext };
  return keyData.kty !== "AKP" && delete keyData.alg, delete keyData.use, crypto.subtle.importKey("jwk", keyData, algorithm, keyData.ext ?? !isPrivate, jwk.key_ops ?? entry.usages[isPrivate ? 1 : 0]);
}
async function rawKey(key, expected, usage, extractable = !1) {
  return key instanceof Uint8Array && (key = await crypto.subtle.importKey("raw", key, expected, extractable, [usage])), checkCryptoKey(key, expected, usage), key;
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/jws_sign.js






async function createSignature(input, key, rejectUnencoded) {
  let [payload, protectedHeader, unprotectedHeader, crit] = input, encodedProtectedHeader = "";
  if (protectedHeader !== void 0) {
    const normalized = serializeJoseHeader(errors_JWSInvalid, protectedHeader);
    protectedHeader = normalized[0], encodedProtectedHeader = base64url_encode(normalized[1]);
  }
  if (unprotectedHeader !== void 0 && (unprotectedHeader = serializeJoseHeader(errors_JWSInvalid, unprotectedHeader)[0]), !protectedHeader && !unprotectedHeader)
    throw new errors_JWSInvalid("either setProtectedHeader or setUnprotectedHeader must be called before #sign()");
  if (!isDisjoint(protectedHeader, unprotectedHeader))
    throw new errors_JWSInvalid("JWS Protected and JWS Unprotected Header Parameter names must be disjoint");
  const joseHeader = { ...protectedHeader, ...unprotectedHeader };
  validateCritDuplicates(errors_JWSInvalid, protectedHeader);
  const b64 = validateB64(protectedHeader, validateCrit(errors_JWSInvalid, JWS_RECOGNIZED, crit, protectedHeader, joseHeader));
  b64 || rejectUnencoded?.();
  const { alg } = joseHeader;
  if (typeof alg != "string" || !alg)
    throw new errors_JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  const entry = jwsAlgorithm(alg);
  let encodedPayload = "", signingPayload = payload, signingInput;
  if (b64) {
    const encodedPayloadCache = input[4];
    encodedPayloadCache ? (encodedPayload = encodedPayloadCache[0] ??= base64url_encode(payload), signingPayload = encodedPayloadCache[1] ??= encode(encodedPayload)) : (encodedPayload = base64url_encode(payload), signingInput = buffer_utils_encoder.encode(`${encodedProtectedHeader}.${encodedPayload}`));
  }
  signingInput ??= concat(encode(encodedProtectedHeader), encode("."), signingPayload);
  const signingKey = await rawKey(await prepareKey(entry, key, "sign"), entry.subtle, "sign");
  entry.minRsaBits && checkModulusLength(entry.alg, signingKey);
  const jws = {
    signature: base64url_encode(new Uint8Array(await crypto.subtle.sign(entry.signing, signingKey, signingInput))),
    payload: encodedPayload
  };
  return protectedHeader && (jws.protected = encodedProtectedHeader), unprotectedHeader && (jws.header = unprotectedHeader), [jws, b64];
}
async function createCompactSignature(payload, protectedHeader, crit, key, rejectUnencoded) {
  const [jws] = await createSignature([payload, protectedHeader, void 0, crit], key, rejectUnencoded);
  return `${jws.protected}.${jws.payload}.${jws.signature}`;
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/jwt_claims_set.js



const epoch = (date) => Math.floor(date.getTime() / 1e3), multipliers = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  y: 31557600
}, REGEX = /^(\+|\-)? ?(\d+|\d+\.\d+) ?(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)(?: (ago|from now))?$/i, checkFailed = "check_failed";
function invalidDuration() {
  throw new TypeError("Invalid time period format");
}
function secs(str) {
  typeof str != "string" && invalidDuration();
  const matched = REGEX.exec(str);
  (!matched || matched[4] && matched[1]) && invalidDuration();
  const value = parseFloat(matched[2]), durationSeconds = Math.round(value * multipliers[matched[3][0].toLowerCase()]);
  return Number.isFinite(durationSeconds) || invalidDuration(), matched[1] === "-" || matched[4] === "ago" ? -durationSeconds : durationSeconds;
}
function validateInput(label, input) {
  if (!Number.isFinite(input))
    throw new TypeError(`Invalid ${label} input`);
  return input;
}
function validateStringClaim(claim, value) {
  if (typeof value != "string")
    throw new TypeError(`"${claim}" claim must be a string`);
}
function validateAudienceClaim(value) {
  if (typeof value != "string" && (!Array.isArray(value) || Array.from(value).some((member) => typeof member != "string")))
    throw new TypeError('"aud" claim must be a string or an array of strings');
}
function numericDate(value, label) {
  return typeof value == "number" ? validateInput(label, value) : value instanceof Date ? validateInput(label, epoch(value)) : epoch(/* @__PURE__ */ new Date()) + secs(value);
}
const normalizeTyp = (value) => {
  const normalized = value.toLowerCase();
  return value.includes("/") ? normalized : `application/${normalized}`;
}, checkAudiencePresence = (audPayload, audOption) => typeof audPayload == "string" ? audOption.includes(audPayload) : Array.isArray(audPayload) ? audOption.some((aud) => audPayload.includes(aud)) : !1;
function validateNumericDate(claimsSet, claim, required = !1) {
  const value = claimsSet[claim];
  if (!(value === void 0 && !required)) {
    if (typeof value != "number")
      throw new JWTClaimValidationFailed(`"${claim}" claim must be a number`, claimsSet, claim, "invalid");
    return value;
  }
}
function unexpectedClaim(claimsSet, claim) {
  throw new JWTClaimValidationFailed(`unexpected "${claim}" claim value`, claimsSet, claim, checkFailed);
}
function validateClaimsSet(protectedHeader, claimsSetBytes, options = {}) {
  let claimsSet;
  try {
    claimsSet = JSON.parse(strictDecoder.decode(claimsSetBytes));
  } catch (cause) {
    throw new JWTInvalid("JWT Claims Set must be a top-level JSON object", { cause });
  }
  if (!validate_isObject(claimsSet))
    throw new JWTInvalid("JWT Claims Set must be a top-level JSON object");
  const { typ } = options;
  if (typ !== void 0 && (typeof protectedHeader.typ != "string" || normalizeTyp(protectedHeader.typ) !== normalizeTyp(typ)))
    throw new JWTClaimValidationFailed('unexpected "typ" JWT header value', claimsSet, "typ", checkFailed);
  const { requiredClaims = [], issuer, subject, audience, maxTokenAge } = options, presenceCheck = [...requiredClaims];
  maxTokenAge !== void 0 && presenceCheck.push("iat"), audience !== void 0 && presenceCheck.push("aud"), subject !== void 0 && presenceCheck.push("sub"), issuer !== void 0 && presenceCheck.push("iss");
  for (const claim of new Set(presenceCheck.reverse()))
    if (!Object.hasOwn(claimsSet, claim))
      throw new JWTClaimValidationFailed(`missing required "${claim}" claim`, claimsSet, claim, "missing");
  issuer !== void 0 && !(Array.isArray(issuer) ? issuer : [issuer]).includes(claimsSet.iss) && unexpectedClaim(claimsSet, "iss"), subject !== void 0 && claimsSet.sub !== subject && unexpectedClaim(claimsSet, "sub"), audience !== void 0 && !checkAudiencePresence(claimsSet.aud, typeof audience == "string" ? [audience] : audience) && unexpectedClaim(claimsSet, "aud");
  const { clockTolerance } = options;
  let tolerance = 0;
  if (typeof clockTolerance == "string")
    tolerance = secs(clockTolerance);
  else if (clockTolerance !== void 0) {
    if (typeof clockTolerance != "number")
      throw new TypeError("Invalid clockTolerance option type");
    tolerance = clockTolerance;
  }
  if (validateInput("clockTolerance option", tolerance), tolerance < 0)
    throw new TypeError("Invalid clockTolerance option input");
  const { currentDate } = options, now = validateInput("currentDate option", epoch(currentDate === void 0 ? /* @__PURE__ */ new Date() : currentDate)), iat = validateNumericDate(claimsSet, "iat", maxTokenAge !== void 0), nbf = validateNumericDate(claimsSet, "nbf");
  if (nbf !== void 0 && nbf > now + tolerance)
    throw new JWTClaimValidationFailed('"nbf" claim timestamp check failed', claimsSet, "nbf", checkFailed);
  const exp = validateNumericDate(claimsSet, "exp");
  if (exp !== void 0 && exp <= now - tolerance)
    throw new JWTExpired('"exp" claim timestamp check failed', claimsSet, "exp", checkFailed);
  if (maxTokenAge !== void 0) {
    const age = now - iat, max = validateInput("maxTokenAge option", typeof maxTokenAge == "number" ? maxTokenAge : secs(maxTokenAge));
    if (max < 0)
      throw new TypeError("Invalid maxTokenAge option input");
    if (age - tolerance > max)
      throw new JWTExpired('"iat" claim timestamp check failed (too far in the past)', claimsSet, "iat", checkFailed);
    if (age < -tolerance)
      throw new JWTClaimValidationFailed('"iat" claim timestamp check failed (it should be in the past)', claimsSet, "iat", checkFailed);
  }
  return claimsSet;
}
let producerClaimsSets;
function producerClaimsSet(producer) {
  return producerClaimsSets.get(producer);
}
function jwtClaimsSetBytes(producer) {
  const claimsSet = producerClaimsSet(producer);
  for (const claim of ["iat", "nbf", "exp"]) {
    const value = claimsSet[claim];
    if (typeof value == "number" && !Number.isFinite(value))
      throw new TypeError(`"${claim}" claim must be a finite number`);
  }
  return buffer_utils_encoder.encode(JSON.stringify(claimsSet));
}
function jwtClaim(producer, claim) {
  return producerClaimsSet(producer)[claim];
}
class JWTClaimsBuilder {
  constructor(claimsSet = {}) {
    if (!validate_isObject(claimsSet))
      throw new TypeError("JWT Claims Set MUST be an object");
    (producerClaimsSets ||= /* @__PURE__ */ new WeakMap()).set(this, structuredClone(claimsSet));
  }
  setIssuer(value) {
    return validateStringClaim("iss", value), producerClaimsSet(this).iss = value, this;
  }
  setSubject(value) {
    return validateStringClaim("sub", value), producerClaimsSet(this).sub = value, this;
  }
  setAudience(value) {
    return validateAudienceClaim(value), producerClaimsSet(this).aud = value, this;
  }
  setJti(value) {
    return validateStringClaim("jti", value), producerClaimsSet(this).jti = value, this;
  }
  setNotBefore(value) {
    return producerClaimsSet(this).nbf = numericDate(value, "setNotBefore"), this;
  }
  setExpirationTime(value) {
    return producerClaimsSet(this).exp = numericDate(value, "setExpirationTime"), this;
  }
  setIssuedAt(value) {
    const claimsSet = producerClaimsSet(this);
    return value === void 0 ? claimsSet.iat = epoch(/* @__PURE__ */ new Date()) : typeof value == "string" ? claimsSet.iat = validateInput("setIssuedAt", epoch(/* @__PURE__ */ new Date()) + secs(value)) : claimsSet.iat = numericDate(value, "setIssuedAt"), this;
  }
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/jwt/sign.js




const SignJWT_base = JWTClaimsBuilder;
class SignJWT extends SignJWT_base {
  #protectedHeader;
  setProtectedHeader(protectedHeader) {
    return assertNotSet(this.#protectedHeader, "setProtectedHeader"), this.#protectedHeader = protectedHeader, this;
  }
  async sign(key, options) {
    return createCompactSignature(jwtClaimsSetBytes(this), this.#protectedHeader, options?.crit, key, () => {
      throw new JWTInvalid("JWTs MUST NOT use unencoded payload");
    });
  }
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/lib/jws_verify.js





function snapshotJws(jws, sharedPayload) {
  const encodedProtectedHeader = jws.protected, inputHeader = jws.header, header = isObject(inputHeader) ? { ...inputHeader } : inputHeader;
  let payload = sharedPayload ? sharedPayload[0] : jws.payload;
  !sharedPayload && payload instanceof Uint8Array && (payload = new Uint8Array(payload));
  const signature = jws.signature, snapshot = { payload, signature };
  if (encodedProtectedHeader !== void 0 && (snapshot.protected = encodedProtectedHeader), inputHeader !== void 0 && (snapshot.header = header), encodedProtectedHeader === void 0 && header === void 0)
    throw new JWSInvalid('Flattened JWS must have either of the "protected" or "header" members');
  if (encodedProtectedHeader !== void 0 && typeof encodedProtectedHeader != "string")
    throw new JWSInvalid("JWS Protected Header incorrect type");
  if (payload === void 0)
    throw new JWSInvalid("JWS Payload missing");
  if (typeof signature != "string")
    throw new JWSInvalid("JWS Signature missing or incorrect type");
  if (header !== void 0 && !isObject(header))
    throw new JWSInvalid("JWS Unprotected Header incorrect type");
  return snapshot;
}
function prepareVerify(options) {
  return [options && validateAlgorithms("algorithms", options.algorithms), options?.crit];
}
function parseProtectedHeader(encodedProtectedHeader) {
  return encodedProtectedHeader === void 0 ? {} : parseJoseHeader(encodedProtectedHeader, errors_JWSInvalid, "JWS Protected Header is invalid");
}
function encodeJsonUnencodedPayload(payload) {
  const invalid = /[\p{Cs}\p{Cn}]/u.exec(payload)?.[0];
  if (invalid !== void 0)
    throw new JWSInvalid(/\p{Cs}/u.test(invalid) ? "JWS Payload must be a well-formed Unicode string" : "JWS Payload must not contain unassigned Unicode code points");
  return encoder.encode(payload);
}
function encodeCompactUnencodedPayload(payload) {
  try {
    return encode(payload);
  } catch (cause) {
    throw new errors_JWSInvalid("JWS Compact Serialization payload must use only ASCII characters", {
      cause
    });
  }
}
async function verifySignature(jws, shared, key, encodeUnencodedPayload, parsedProtected) {
  const { protected: encodedProtectedHeader, header, payload: inputPayload } = jws, protectedHeader = parsedProtected ?? parseProtectedHeader(encodedProtectedHeader);
  if (!isDisjoint(protectedHeader, header))
    throw new errors_JWSInvalid("JWS Protected and JWS Unprotected Header Parameter names must be disjoint");
  const joseHeader = { ...protectedHeader, ...header }, b64 = validateB64(protectedHeader, validateCrit(errors_JWSInvalid, JWS_RECOGNIZED, shared[1], protectedHeader, joseHeader)), { alg } = joseHeader;
  if (typeof alg != "string" || !alg)
    throw new errors_JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  if (shared[0] && !shared[0].has(alg))
    throw new JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  if (b64) {
    if (typeof inputPayload != "string")
      throw new errors_JWSInvalid("JWS Payload must be a string");
  } else if (typeof inputPayload != "string" && !(inputPayload instanceof Uint8Array))
    throw new errors_JWSInvalid("JWS Payload must be a string or an Uint8Array instance");
  const signingPayload = b64 || typeof inputPayload != "string" ? inputPayload : encodeUnencodedPayload(inputPayload);
  let resolvedKey = !1;
  typeof key == "function" && (key = await key(protectedHeader, jws), resolvedKey = !0);
  const entry = jwsAlgorithm(alg), signingInput = concat(encodedProtectedHeader !== void 0 ? encode(encodedProtectedHeader) : new Uint8Array(), encode("."), typeof signingPayload == "string" ? shared[2] ??= encodeAsciiMember(signingPayload, "payload", errors_JWSInvalid) : signingPayload), signature = decodeBase64url(jws.signature, "signature", errors_JWSInvalid), verificationKey = await prepareKey(entry, key, "verify"), cryptoKey = await rawKey(verificationKey, entry.subtle, "verify");
  entry.minRsaBits && checkModulusLength(entry.alg, cryptoKey);
  let verified = !1;
  try {
    verified = await crypto.subtle.verify(entry.signing, cryptoKey, signature, signingInput);
  } catch (cause) {
    throw new JWSSignatureVerificationFailed(void 0, { cause });
  }
  if (!verified)
    throw new JWSSignatureVerificationFailed();
  const result = { payload: typeof signingPayload == "string" ? decodeBase64url(signingPayload, "payload", errors_JWSInvalid) : signingPayload };
  return encodedProtectedHeader !== void 0 && (result.protectedHeader = protectedHeader), header !== void 0 && (result.unprotectedHeader = header), resolvedKey ? [{ ...result, key: verificationKey }, b64] : [result, b64];
}
async function verifyCompact(jws, shared, key) {
  if (jws instanceof Uint8Array && (jws = decoder.decode(jws)), typeof jws != "string")
    throw new errors_JWSInvalid("Compact JWS must be a string or Uint8Array");
  const { 0: protectedHeader, 1: payload, 2: signature, length } = jws.split(".");
  if (length !== 3)
    throw new errors_JWSInvalid("Invalid Compact JWS");
  return verifySignature({ payload, protected: protectedHeader, signature }, shared, key, encodeCompactUnencodedPayload);
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/jwt/verify.js



async function jwtVerify(jwt, key, options) {
  const [verified, b64] = await verifyCompact(jwt, prepareVerify(options), key);
  if (!b64)
    throw new JWTInvalid("JWTs MUST NOT use unencoded payload");
  const payload = validateClaimsSet(verified.protectedHeader, verified.payload, options);
  return { ...verified, payload };
}


;// CONCATENATED MODULE: ./src/server/exchange/exchange-error.ts
/**
 * Why a token exchange or a cache token verification failed, free of HTTP: the HTTP layer maps the
 * kind to a status (src/server/http/exchange-status.ts). Messages name the problem, never the token.
 */
class ExchangeError extends Error {
    kind;
    reason;
    constructor(kind, message, 
    /** A short machine-readable reason, for metrics labels. */
    reason) {
        super(message);
        this.kind = kind;
        this.reason = reason;
    }
}

;// CONCATENATED MODULE: ./src/server/exchange/jwt-errors.ts
/**
 * Turns jose's verification errors into ExchangeErrors whose message says why a token is unusable, without
 * echoing the token. Shared by the OIDC ID token and the cache token verification.
 */


function unauthorized(what, problem, reason) {
    return new ExchangeError('unauthorized', `${what}: ${problem}`, reason);
}
function joseErrorToExchange(what, error) {
    if (error instanceof ExchangeError)
        return error;
    if (error instanceof JWTExpired)
        return unauthorized(what, 'expired', 'token_expired');
    if (error instanceof JWTClaimValidationFailed) {
        switch (error.claim) {
            case 'aud':
                return unauthorized(what, 'wrong audience', 'wrong_audience');
            case 'iss':
                return unauthorized(what, 'wrong issuer', 'wrong_issuer');
            case 'nbf':
                return unauthorized(what, 'not valid yet (nbf is in the future)', 'not_yet_valid');
            case 'iat':
                return unauthorized(what, 'issued in the future (iat)', 'not_yet_valid');
            default:
                return unauthorized(what, `claim '${error.claim}' is invalid`, 'invalid_claims');
        }
    }
    if (error instanceof JOSEAlgNotAllowed || error instanceof JOSENotSupported) {
        return unauthorized(what, 'signing algorithm not allowed', 'alg_not_allowed');
    }
    if (error instanceof JWSSignatureVerificationFailed)
        return unauthorized(what, 'bad signature', 'bad_signature');
    if (error instanceof JWKSNoMatchingKey || error instanceof JWKSMultipleMatchingKeys) {
        return unauthorized(what, 'signed with a key the issuer does not publish', 'unknown_key');
    }
    if (error instanceof errors_JWSInvalid || error instanceof JWTInvalid) {
        return unauthorized(what, 'malformed token', 'malformed_token');
    }
    // Not the token's fault: the keys could not be fetched (network, discovery, JWKS answer).
    const detail = error instanceof Error ? `: ${error.message}` : '';
    return new ExchangeError('unavailable', `${what}: cannot verify now, the issuer's keys are unavailable${detail}`, 'issuer_unavailable');
}

;// CONCATENATED MODULE: ./src/server/exchange/cache-token.ts
/**
 * Cache tokens: short JWTs this server signs (EdDSA, with the server token key) and only this
 * server verifies. They carry what the policy granted, so the cache protocol needs no policy lookup.
 */




const CACHE_TOKEN_ISSUER = 'sluice';
const CACHE_TOKEN_AUDIENCE = 'sluice-cache';
const CACHE_TOKEN = 'cache token';
/**
 * Verified tokens remembered, so a job's thousands of narinfo GETs do not each pay for an EdDSA
 * verification. Bounded (a job holds one token at a time; old entries go first) and never past
 * the token's own expiry.
 */
const VERIFIED_CACHE_SIZE = 1024;
function isOwnerRequirement(value) {
    if (!isStringRecord(value) || typeof value.issuer !== 'string')
        return false;
    return Object.keys(value).every((key) => ['issuer', 'repositoryId', 'repositoryOwnerId'].includes(key));
}
function isStringRecord(value) {
    return (typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every((item) => typeof item === 'string'));
}
/** Re-checks a signed payload's shape: defence in depth should the key ever sign something odd. */
function grantFromPayload(payload) {
    const { kind, read, write, identity, bind_write: bindWrite, read_owners: readOwners, jti, iat, exp, } = payload;
    const validKind = kind === 'ci' || kind === 'read';
    const validRead = Array.isArray(read) && read.every((item) => typeof item === 'string' && isSlicePattern(item));
    const validWrite = write === null || (typeof write === 'string' && isSliceName(write) && kind === 'ci');
    const validBind = bindWrite === undefined || typeof bindWrite === 'boolean';
    // Tokens issued before read grants carried owners have none: they read by name until they expire.
    const validOwners = readOwners === undefined ||
        (Array.isArray(readOwners) &&
            Array.isArray(read) &&
            readOwners.length === read.length &&
            readOwners.every((owner) => owner === null || isOwnerRequirement(owner)));
    const validIssued = kind !== 'read' || (typeof jti === 'string' && typeof iat === 'number');
    if (!validKind ||
        !validRead ||
        !validWrite ||
        !validBind ||
        !validOwners ||
        !validIssued ||
        !isStringRecord(identity)) {
        throw unauthorized(CACHE_TOKEN, 'malformed claims', 'malformed_token');
    }
    return {
        kind,
        read: read,
        write: write,
        bindWrite: bindWrite === true,
        ...(readOwners === undefined ? {} : { readOwners: readOwners }),
        identity: identity,
        ...(kind === 'read' ? { issued: { id: jti, at: iat } } : {}),
        ...(typeof exp === 'number' ? { expiresAt: exp } : {}),
    };
}
function subjectOf(grant) {
    if ('name' in grant.identity && grant.kind === 'read')
        return `read:${grant.identity.name}`;
    const identity = grant.identity;
    return `${identity.issuer}:${identity.repository ?? identity.sub ?? 'unknown'}`;
}
function createCacheTokens(tokenKey, now = Date.now) {
    if (tokenKey.type !== 'private' || tokenKey.asymmetricKeyType !== 'ed25519') {
        throw new TypeError('the token key must be an ed25519 private key');
    }
    const publicKey = (0,external_node_crypto_.createPublicKey)(tokenKey);
    const verified = new Map();
    const remember = (token, grant, expiresAtMs) => {
        if (verified.size >= VERIFIED_CACHE_SIZE)
            verified.delete(verified.keys().next().value);
        verified.set(token, { grant, expiresAtMs });
    };
    return {
        async issue(grant, ttlSeconds) {
            if (grant.kind === 'read' && grant.write !== null)
                throw new TypeError('a read token cannot write');
            const issuedAt = Math.floor(now() / 1000);
            const expiresAt = issuedAt + ttlSeconds;
            const id = (0,external_node_crypto_.randomUUID)();
            const token = await new SignJWT({
                kind: grant.kind,
                read: grant.read,
                write: grant.write,
                bind_write: grant.bindWrite === true,
                ...(grant.readOwners ? { read_owners: grant.readOwners } : {}),
                identity: grant.identity,
            })
                .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
                .setIssuer(CACHE_TOKEN_ISSUER)
                .setAudience(CACHE_TOKEN_AUDIENCE)
                .setSubject(subjectOf(grant))
                .setJti(id)
                .setIssuedAt(issuedAt)
                .setExpirationTime(expiresAt)
                .sign(tokenKey);
            return { token, expiresAt: new Date(expiresAt * 1000), id };
        },
        async verify(token) {
            const known = verified.get(token);
            // jose refuses a token once now >= exp: so does the cache, and the full check then names why.
            if (known && now() < known.expiresAtMs)
                return known.grant;
            if (known)
                verified.delete(token);
            try {
                const { payload } = await jwtVerify(token, publicKey, {
                    issuer: CACHE_TOKEN_ISSUER,
                    audience: CACHE_TOKEN_AUDIENCE,
                    algorithms: ['EdDSA'],
                    requiredClaims: ['exp', 'jti'],
                    currentDate: new Date(now()),
                });
                const grant = grantFromPayload(payload);
                remember(token, grant, payload.exp * 1000);
                return grant;
            }
            catch (error) {
                const refusal = joseErrorToExchange(CACHE_TOKEN, error);
                // Our own key is local: anything jose cannot attribute to a claim is a token we did not sign.
                if (refusal.kind === 'unavailable')
                    throw unauthorized(CACHE_TOKEN, 'not signed by this server', 'forged_token');
                throw refusal;
            }
        },
    };
}

;// CONCATENATED MODULE: ./src/server/exchange/identity.ts
/** The claims copied from the ID token: who ran what, where. Kept short so the token stays small. */
const IDENTITY_CLAIMS = [
    'sub',
    'repository',
    'repository_id',
    'repository_owner',
    'repository_owner_id',
    'ref',
    'ref_type',
    'sha',
    'event_name',
    'environment',
    'workflow',
    'workflow_ref',
    'job_workflow_ref',
    'run_id',
    'run_attempt',
    'actor',
    'actor_id',
    'runner_environment',
];
/** A claim as a string, for matching and templates: numbers and booleans are spelled out, others are absent. */
function claimString(value) {
    if (typeof value === 'string')
        return value;
    if (typeof value === 'number' || typeof value === 'boolean')
        return String(value);
    return undefined;
}
// Code points that end or shape a line or column in a terminal, a log or tab-separated output.
// eslint-disable-next-line no-control-regex
const identity_CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/**
 * `text` with every control character (tab, newline, escape\u2026) spelled `\uXXXX` and every
 * backslash doubled, so a claim printed in `sluice audit`'s columns stays one field of one row.
 */
function escapeControlCharacters(text) {
    return text
        .replace(/\\/g, '\\\\')
        .replace(identity_CONTROL_CHARACTERS, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
/** The identity claims, each escaped (claims are the CI's words: a workflow name can hold a tab). */
function identityFromClaims(issuerName, claims) {
    const identity = { issuer: issuerName };
    for (const claim of IDENTITY_CLAIMS) {
        const value = claimString(claims[claim]);
        if (value !== undefined)
            identity[claim] = escapeControlCharacters(value.slice(0, 500));
    }
    return identity;
}

;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/jwks/local.js




function isUsableJWK(jwk, entry, alg, kid) {
  const { kty, key_ops: keyOps, ext, kid: jwkKid, alg: jwkAlg, use, crv } = jwk;
  return (ext === void 0 || typeof ext == "boolean") && (keyOps === void 0 || Array.isArray(keyOps) && keyOps.every((operation, index) => typeof operation == "string" && keyOps.indexOf(operation) === index) && keyOps.includes("verify")) && entry.kty.includes(kty) && (kid === void 0 || typeof kid == "string" && kid === jwkKid) && (jwkAlg === void 0 ? kty !== "AKP" : alg === jwkAlg) && (use === void 0 || use === "sig") && (!entry.crv || crv === entry.crv);
}
async function importWithAlgCache(cache, jwk, entry) {
  const cached = cache.get(jwk) || cache.set(jwk, {}).get(jwk), { alg } = entry;
  if (cached[alg] === void 0) {
    const pending = jwkToKey(entry, jwk, !0).then((key) => {
      if (key.type !== "public")
        throw new JWKSInvalid("JSON Web Key Set members must be public keys");
      return cached[alg] = key, key;
    }).catch((error) => {
      throw cached[alg] === pending && delete cached[alg], error;
    });
    cached[alg] = pending;
  }
  return cached[alg];
}
function createLocalJWKSet(jwks) {
  let snapshot;
  try {
    snapshot = structuredClone(jwks);
  } catch (cause) {
    throw new JWKSInvalid("JSON Web Key Set malformed", { cause });
  }
  if (!isJwkSet(snapshot))
    throw new JWKSInvalid("JSON Web Key Set malformed");
  const metadata = snapshot.keys.map((jwk) => {
    const normalized = snapshotJwk(jwk);
    return Array.isArray(normalized.key_ops) && (normalized.key_ops = [...normalized.key_ops]), normalized;
  }), cached = /* @__PURE__ */ new WeakMap();
  return Object.defineProperty(async (protectedHeader, token) => {
    const { alg, kid } = { ...protectedHeader, ...token?.header }, entry = typeof alg == "string" ? JWS[alg] : void 0;
    if (!entry || entry.secret)
      throw new JOSENotSupported('Unsupported "alg" value for a JSON Web Key Set');
    const candidates = snapshot.keys.filter((_, index) => isUsableJWK(metadata[index], entry, alg, kid)), { 0: jwk, length } = candidates;
    if (!length)
      throw new JWKSNoMatchingKey();
    if (length !== 1) {
      const error = new JWKSMultipleMatchingKeys();
      throw error[Symbol.asyncIterator] = async function* () {
        for (const jwk2 of candidates)
          try {
            yield await importWithAlgCache(cached, jwk2, entry);
          } catch {
          }
      }, error;
    }
    return importWithAlgCache(cached, jwk, entry);
  }, "jwks", {
    value: () => structuredClone(snapshot)
  });
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/jwks/remote.js



function isCloudflareWorkers() {
  return typeof WebSocketPair < "u" || typeof navigator < "u" && navigator.userAgent === "Cloudflare-Workers" || typeof EdgeRuntime < "u" && EdgeRuntime === "vercel";
}
let USER_AGENT;
(typeof navigator > "u" || !navigator.userAgent?.startsWith?.("Mozilla/5.0 ")) && (USER_AGENT = "jose/v6.2.17");
const customFetch = /* @__PURE__ */ Symbol();
async function fetchJwks(url, headers, signal, fetchImpl = fetch) {
  const response = await fetchImpl(url, {
    method: "GET",
    signal,
    redirect: "manual",
    headers
  }).catch((err) => {
    throw err.name === "TimeoutError" ? new JWKSTimeout(void 0, { cause: err }) : err;
  });
  if (response.status !== 200)
    throw new JOSEError("Expected 200 OK from the JSON Web Key Set HTTP response");
  try {
    return await response.json();
  } catch (cause) {
    throw new JOSEError("Failed to parse the JSON Web Key Set HTTP response as JSON", { cause });
  }
}
const jwksCache = /* @__PURE__ */ Symbol();
function isFreshFor(timestamp, duration) {
  return Number.isFinite(timestamp) && Date.now() < timestamp + duration;
}
function validateDuration(value, fallback, option) {
  if (Number.isNaN(value))
    throw new TypeError(`"${option}" option must not be NaN`);
  if (typeof value == "number" && value < 0)
    throw new TypeError(`"${option}" option must not be negative`);
  return typeof value == "number" ? value : fallback;
}
function createRemoteJWKSet(url, options) {
  if (!(url instanceof URL))
    throw new TypeError("url must be an instance of URL");
  const href = new URL(url.href).href, opts = options ?? {}, timeoutOption = opts.timeoutDuration;
  if (typeof timeoutOption == "number" && (!Number.isInteger(timeoutOption) || timeoutOption < 0))
    throw new TypeError('"timeoutDuration" option must be a non-negative integer');
  const timeoutDuration = typeof timeoutOption == "number" ? timeoutOption : 5e3, cooldownDuration = validateDuration(opts.cooldownDuration, 3e4, "cooldownDuration"), cacheMaxAge = validateDuration(opts.cacheMaxAge, 6e5, "cacheMaxAge"), headers = new Headers(opts.headers);
  USER_AGENT && !headers.has("User-Agent") && headers.set("User-Agent", USER_AGENT), headers.has("accept") || headers.set("accept", "application/json, application/jwk-set+json");
  const fetchImpl = opts[customFetch], cache = opts[jwksCache];
  let jwksTimestamp, pendingFetch, reloadSequence = 0, appliedSequence = 0, local;
  if (cache && typeof cache == "object") {
    const { uat, jwks } = cache;
    isFreshFor(uat, cacheMaxAge) && isJwkSet(jwks) && (jwksTimestamp = uat, local = createLocalJWKSet(jwks));
  }
  const reload = async () => {
    if (pendingFetch && isCloudflareWorkers() && (pendingFetch = void 0), !pendingFetch) {
      const sequence = ++reloadSequence, current = pendingFetch = fetchJwks(href, headers, AbortSignal.timeout(timeoutDuration), fetchImpl).then((json) => {
        const next = createLocalJWKSet(json);
        if (sequence <= appliedSequence)
          return;
        local = next;
        const updatedAt = Date.now();
        cache && (cache.uat = updatedAt, cache.jwks = json), jwksTimestamp = updatedAt, appliedSequence = sequence;
      }).finally(() => {
        pendingFetch === current && (pendingFetch = void 0);
      });
    }
    await pendingFetch;
  };
  return Object.defineProperties(async (protectedHeader, token) => {
    (!local || !isFreshFor(jwksTimestamp, cacheMaxAge)) && await reload();
    try {
      return await local(protectedHeader, token);
    } catch (err) {
      if (err instanceof JWKSNoMatchingKey && !isFreshFor(jwksTimestamp, cooldownDuration))
        return await reload(), local(protectedHeader, token);
      throw err;
    }
  }, {
    coolingDown: {
      get: () => isFreshFor(jwksTimestamp, cooldownDuration),
      enumerable: !0
    },
    fresh: {
      get: () => isFreshFor(jwksTimestamp, cacheMaxAge),
      enumerable: !0
    },
    reload: {
      value: reload,
      enumerable: !0
    },
    reloading: {
      get: () => !!pendingFetch,
      enumerable: !0
    },
    jwks: {
      value: () => local?.jwks(),
      enumerable: !0
    }
  });
}


;// CONCATENATED MODULE: ./node_modules/jose/dist/webapi/util/decode_jwt.js




function decodeJwt(jwt) {
  if (typeof jwt != "string")
    throw new JWTInvalid("JWTs must use Compact JWS serialization, JWT must be a string");
  const { 1: encodedPayload, length } = jwt.split(".");
  if (length === 5)
    throw new JWTInvalid("Only JWTs using Compact JWS serialization can be decoded");
  if (length !== 3)
    throw new JWTInvalid("Invalid JWT");
  if (!encodedPayload)
    throw new JWTInvalid("JWTs must contain a payload");
  let claimsSetBytes;
  try {
    claimsSetBytes = decode(encodedPayload);
  } catch (cause) {
    throw new JWTInvalid("Failed to base64url decode the payload", { cause });
  }
  let claimsSet;
  try {
    claimsSet = JSON.parse(strictDecoder.decode(claimsSetBytes));
  } catch (cause) {
    throw new JWTInvalid("Failed to parse the decoded payload as JSON", { cause });
  }
  if (!validate_isObject(claimsSet))
    throw new JWTInvalid("Invalid JWT Claims Set");
  return claimsSet;
}


;// CONCATENATED MODULE: ./src/server/exchange/oidc.ts
/**
 * Verifies CI OIDC ID tokens (GitHub Actions' and any other configured issuer's) with jose: the
 * signature against the issuer's published keys, then `iss`, `aud`, `exp`, `nbf` and `iat`.
 */


/** Asymmetric algorithms only: `none` and HMAC (which a public key could forge) never pass. */
const ALLOWED_ID_TOKEN_ALGORITHMS = [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
    'Ed25519',
];
/** Clock skew tolerated between the issuer and this server. */
const CLOCK_LEEWAY_SECONDS = 60;
const FETCH_TIMEOUT_MS = 5000;
const ID_TOKEN = 'ID token';
/** Finds the JWKS URL through OIDC discovery; the document must name the same issuer. */
async function discoverJwksUri(issuer) {
    const url = `${issuer.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!response.ok)
        throw new Error(`OIDC discovery at ${url} answered ${response.status}`);
    const document = (await response.json());
    if (document.issuer !== issuer.issuer)
        throw new Error(`OIDC discovery at ${url} names another issuer`);
    if (typeof document.jwks_uri !== 'string')
        throw new Error(`OIDC discovery at ${url} has no jwks_uri`);
    const jwksUri = new URL(document.jwks_uri);
    if (jwksUri.protocol !== 'https:' && !(issuer.allowInsecureHttp && jwksUri.protocol === 'http:')) {
        throw new Error(`OIDC discovery at ${url} points to a non-https jwks_uri`);
    }
    return jwksUri;
}
function createOidcVerifier(issuers, options = {}) {
    const now = options.now ?? Date.now;
    const keySets = new Map();
    /** One cached key set per issuer; a failed discovery is retried on the next token. */
    function keySetFor(issuer) {
        let keySet = keySets.get(issuer.name);
        if (!keySet) {
            keySet = (issuer.jwksUri ? Promise.resolve(new URL(issuer.jwksUri)) : discoverJwksUri(issuer)).then((url) => createRemoteJWKSet(url, {
                timeoutDuration: FETCH_TIMEOUT_MS,
                ...(options.jwksCooldownMs !== undefined ? { cooldownDuration: options.jwksCooldownMs } : {}),
            }));
            keySet.catch(() => keySets.delete(issuer.name));
            keySets.set(issuer.name, keySet);
        }
        return keySet;
    }
    return {
        async verify(idToken) {
            let unverifiedIss;
            try {
                unverifiedIss = decodeJwt(idToken).iss;
            }
            catch {
                throw unauthorized(ID_TOKEN, 'malformed token', 'malformed_token');
            }
            const issuer = issuers.find((candidate) => candidate.issuer === unverifiedIss);
            if (!issuer) {
                const shown = typeof unverifiedIss === 'string' ? JSON.stringify(unverifiedIss.slice(0, 200)) : 'none';
                throw unauthorized(ID_TOKEN, `unknown issuer ${shown}`, 'unknown_issuer');
            }
            try {
                const currentDate = new Date(now());
                const { payload } = await jwtVerify(idToken, await keySetFor(issuer), {
                    issuer: issuer.issuer,
                    audience: issuer.audience,
                    algorithms: ALLOWED_ID_TOKEN_ALGORITHMS,
                    clockTolerance: CLOCK_LEEWAY_SECONDS,
                    requiredClaims: ['exp'],
                    currentDate,
                });
                // jose checks `iat` only together with maxTokenAge: refuse tokens minted in the future here.
                if (typeof payload.iat === 'number' &&
                    payload.iat > currentDate.getTime() / 1000 + CLOCK_LEEWAY_SECONDS) {
                    throw unauthorized(ID_TOKEN, 'issued in the future (iat)', 'not_yet_valid');
                }
                return { issuer, claims: payload };
            }
            catch (error) {
                throw joseErrorToExchange(ID_TOKEN, error);
            }
        },
    };
}

;// CONCATENATED MODULE: ./src/server/exchange/policy.ts




/**
 * A pull-request job's own slice, `<slice>/pr-<number>`, for a slice with `pull_requests` whose
 * read rules the job matched: only on `pull_request` (GitHub gives fork pull requests no ID token;
 * `pull_request_target` runs for forks with one, so it never qualifies).
 */
function pullRequestWriteSlice(slices, read, claims) {
    const number = /^refs\/pull\/(\d+)\/(?:merge|head)$/.exec(claimString(claims.ref) ?? '')?.[1];
    if (claimString(claims.event_name) !== 'pull_request' || number === undefined)
        return null;
    const slice = slices.find((candidate) => candidate.pullRequests && read.has(candidate.name));
    return slice ? pullRequestSlice(slice.name, number) : null;
}
/** Events whose workflows run trusted code of the repository: never pull_request(_target). */
const DEFAULT_WRITE_EVENTS = ['push', 'schedule', 'workflow_dispatch', 'merge_group', 'release'];
/**
 * With no `slices` configured: one slice per repository, written by its own workflows on trusted
 * events, read by every repository of the same owner. The first issuer's slices are named
 * `owner/repo`; every other issuer's get its name in front (`forgejo/owner/repo`), so no issuer
 * can take a name first that another's repository needs.
 */
function defaultSlices(issuers) {
    return issuers.flatMap((issuer, index) => {
        const prefix = index === 0 ? '' : `${issuer.name}/`;
        return [
            {
                name: `${prefix}\${repository}`,
                public: false,
                read: [],
                write: [{ issuer: issuer.name, claims: { event_name: DEFAULT_WRITE_EVENTS } }],
            },
            {
                name: `${prefix}\${repository_owner}/*`,
                public: false,
                read: [{ issuer: issuer.name, claims: {} }],
                write: [],
            },
        ];
    });
}
/** Why `rule` does not match, one entry per failing claim; empty when it matches. */
function ruleFailures(rule, issuerName, claims) {
    if (rule.issuer !== undefined && rule.issuer !== issuerName)
        return [`issuer is '${issuerName}', needs '${rule.issuer}'`];
    const failures = [];
    for (const [claim, globs] of Object.entries(rule.claims)) {
        const value = claimString(claims[claim]);
        if (value === undefined) {
            failures.push(`${claim} is missing`);
        }
        else if (!globs.some((glob) => globMatches(glob, value))) {
            failures.push(`${claim} is ${JSON.stringify(value.slice(0, 200))}, needs ${globs.map((glob) => JSON.stringify(glob)).join(' or ')}`);
        }
    }
    return failures;
}
/** Whether one of `rules` matches; otherwise what failed, per rule. */
function matchRules(rules, issuerName, claims) {
    const perRule = rules.map((rule) => ruleFailures(rule, issuerName, claims));
    if (perRule.some((failures) => failures.length === 0))
        return { matched: true, failures: '' };
    return { matched: false, failures: perRule.map((failures) => failures.join(', ')).join('; or ') };
}
/**
 * What a slice made by `template` must be bound to for this token to read it: the issuer, and the
 * ids behind the names the template uses (when the issuer's tokens carry them).
 */
function ownerRequirement(template, issuerName, claims) {
    const used = templateClaims(template);
    const repositoryId = claimString(claims.repository_id);
    const repositoryOwnerId = claimString(claims.repository_owner_id);
    return {
        issuer: issuerName,
        ...(used.includes('repository') && repositoryId ? { repositoryId } : {}),
        ...(used.includes('repository_owner') && repositoryOwnerId ? { repositoryOwnerId } : {}),
    };
}
/**
 * Fills a template, refusing a name the config itself lists: configured slices are governed by
 * their own rules, so a new repository called `acme/release` must not reach the slice
 * `acme/release` through `${repository}`.
 */
function sliceName(template, claims, configured) {
    if (!isTemplate(template))
        return { ok: true, name: template };
    const filled = fillTemplate(template, claims);
    if (filled.ok && configured.has(filled.name))
        return {
            ok: false,
            problem: `'${filled.name}' is a slice named in the config, which no template can make`,
        };
    return filled;
}
function createPolicy(slices) {
    const configured = new Set(slices
        .filter((slice) => !isTemplate(slice.name) && isSliceName(slice.name))
        .map((slice) => normalizeSliceName(slice.name)));
    return {
        evaluate(issuerName, claims) {
            const read = new Map();
            const addRead = (name, owner) => read.set(`${name} ${JSON.stringify(owner)}`, { name, owner });
            let write = null;
            let bindWrite = false;
            const refusals = [];
            for (const slice of slices) {
                const name = sliceName(slice.name, claims, configured);
                const owner = isTemplate(slice.name) ? ownerRequirement(slice.name, issuerName, claims) : null;
                for (const access of ['write', 'read']) {
                    const rules = slice[access];
                    if (rules.length === 0)
                        continue;
                    const { matched, failures } = matchRules(rules, issuerName, claims);
                    if (!matched) {
                        refusals.push(`slice '${slice.name}' ${access}: ${failures}`);
                    }
                    else if (!name.ok) {
                        refusals.push(`slice '${slice.name}' ${access}: ${name.problem}`);
                    }
                    else {
                        // The first matching write slice wins: a token writes exactly one slice.
                        if (access === 'write' && write === null) {
                            write = name.name;
                            bindWrite = isTemplate(slice.name);
                        }
                        if (access === 'read' || write === name.name)
                            addRead(name.name, owner);
                    }
                }
            }
            if (write === null) {
                const readNames = new Set([...read.values()].map((grant) => grant.name));
                write = pullRequestWriteSlice(slices, readNames, claims);
                if (write !== null)
                    addRead(write, null);
            }
            if (read.size === 0 && write === null) {
                throw new ExchangeError('forbidden', `no slice is granted to this token: ${refusals.join('; ')}`, 'policy_denied');
            }
            const grants = [...read.values()];
            return {
                read: grants.map((grant) => grant.name),
                readOwners: grants.map((grant) => grant.owner),
                write,
                bindWrite: write !== null && bindWrite,
            };
        },
        publicSlices() {
            return slices.filter((slice) => slice.public).map((slice) => slice.name);
        },
    };
}

;// CONCATENATED MODULE: ./src/server/exchange/token-state.ts
/**
 * What signed tokens cannot say about themselves, kept in the metadata store so every replica
 * agrees: which CI ID tokens were exchanged already (each may be exchanged once), and which read
 * tokens exist, were revoked or outlived `max_read_token_ttl`.
 */



/**
 * How long a replica trusts a read token's last check of the store. The store is asked at most once
 * a second per token per replica (a job's thousands of lookups do not each cost a query); a
 * revocation reaches every replica within that second.
 */
const READ_TOKEN_RECHECK_MS = 1000;
const REMEMBERED_READ_TOKENS = 1024;
/** The issuer's `jti` when it sets one (a re-encoded token keeps it), else a hash of the token. */
function idTokenKey(issuerName, claims, idToken) {
    if (typeof claims.jti === 'string' && claims.jti !== '')
        return `${issuerName}:jti:${claims.jti}`;
    return `${issuerName}:sha256:${(0,external_node_crypto_.createHash)('sha256').update(idToken).digest('hex')}`;
}
function createTokenState(store, options) {
    const { now } = options;
    const checked = new Map();
    function storedState(id) {
        const known = checked.get(id);
        if (known && now() - known.at < READ_TOKEN_RECHECK_MS)
            return known.state;
        if (checked.size >= REMEMBERED_READ_TOKENS)
            checked.delete(checked.keys().next().value);
        const state = store.touchReadToken(id, new Date(now()));
        checked.delete(id);
        checked.set(id, { at: now(), state });
        state.catch(() => checked.delete(id));
        return state;
    }
    return {
        async useIdTokenOnce(issuerName, claims, idToken) {
            // Kept past `exp` by the leeway the verifier grants, or a replay could pass in that window.
            const until = new Date((claims.exp + CLOCK_LEEWAY_SECONDS) * 1000);
            const first = await store.useIdTokenOnce(idTokenKey(issuerName, claims, idToken), until, new Date(now()));
            if (!first)
                throw unauthorized('ID token', 'already exchanged once (replay)', 'token_replayed');
        },
        async checkReadToken(grant) {
            if (grant.kind !== 'read')
                return;
            const issued = grant.issued;
            if (now() / 1000 > issued.at + options.maxReadTokenTtlSeconds)
                throw unauthorized('cache token', 'read token older than max_read_token_ttl', 'token_expired');
            const state = await storedState(issued.id);
            if (state === null)
                throw unauthorized('cache token', 'read token unknown to this server (create a new one)', 'unknown_token');
            if (state.revoked)
                throw unauthorized('cache token', 'read token revoked', 'token_revoked');
        },
    };
}

;// CONCATENATED MODULE: ./src/server/exchange/token-key.ts
/**
 * The server token key: the ed25519 key that signs cache tokens. It is not the narinfo signing key
 * (that one is public by design; this one only ever signs tokens), and it never leaves the data dir.
 */



/** The file name of the token key inside the data directory. */
const TOKEN_KEY_FILE = 'token-key.pem';
function tokenKeyPath(dataDir) {
    return (0,external_node_path_.join)(dataDir, TOKEN_KEY_FILE);
}
function parseTokenKey(pem, path) {
    const key = (0,external_node_crypto_.createPrivateKey)(pem);
    if (key.asymmetricKeyType !== 'ed25519')
        throw new Error(`${path}: the token key must be an ed25519 private key`);
    return key;
}
/**
 * Loads the token key at `path`, creating it (mode 0600) on first use. `created` tells the caller
 * that tokens signed by an earlier key (if any) no longer verify.
 */
async function loadOrCreateTokenKey(path) {
    try {
        return { key: parseTokenKey(await (0,promises_.readFile)(path, 'utf8'), path), created: false };
    }
    catch (error) {
        if (error.code !== 'ENOENT')
            throw error;
    }
    await (0,promises_.mkdir)((0,external_node_path_.dirname)(path), { recursive: true, mode: 0o700 });
    const { privateKey } = (0,external_node_crypto_.generateKeyPairSync)('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
    // Written whole to a private temp file, then linked into place: `link` fails if another process
    // created the key a moment ago, and nobody ever reads a half-written key.
    const temp = `${path}.${process.pid}.${(0,external_node_crypto_.randomBytes)(4).toString('hex')}.tmp`;
    const file = await (0,promises_.open)(temp, 'wx', 0o600);
    try {
        await file.writeFile(pem);
        await file.sync();
    }
    finally {
        await file.close();
    }
    try {
        await (0,promises_.link)(temp, path);
        return { key: privateKey, created: true };
    }
    catch (error) {
        if (error.code !== 'EEXIST')
            throw error;
        return { key: parseTokenKey(await (0,promises_.readFile)(path, 'utf8'), path), created: false };
    }
    finally {
        await (0,promises_.unlink)(temp);
    }
}

;// CONCATENATED MODULE: ./src/server/exchange/index.ts











const READ_TOKEN_NAME = /^[A-Za-z0-9._@-]{1,100}$/;
function createExchange(config, tokenKey, options = {}) {
    const verifier = createOidcVerifier(config.issuers, options);
    const policy = createPolicy(config.slices ?? defaultSlices(config.issuers));
    const now = options.now ?? Date.now;
    const cacheTokens = createCacheTokens(tokenKey, now);
    const maxReadTokenTtlSeconds = config.maxReadTokenTtlSeconds;
    const state = options.store ? createTokenState(options.store, { now, maxReadTokenTtlSeconds }) : undefined;
    return {
        async exchange(idToken) {
            const { issuer, claims } = await verifier.verify(idToken);
            const decision = policy.evaluate(issuer.name, claims);
            // After the policy: a token refused with 403 is not used up, the same answer comes again.
            await state?.useIdTokenOnce(issuer.name, claims, idToken);
            const grant = {
                kind: 'ci',
                ...decision,
                identity: identityFromClaims(issuer.name, claims),
            };
            return { ...(await cacheTokens.issue(grant, config.tokenTtlSeconds)), grant };
        },
        async verifyCacheToken(token) {
            const grant = await cacheTokens.verify(token);
            await state?.checkReadToken(grant);
            return grant;
        },
        async checkGrant(grant) {
            if (grant.expiresAt === undefined || now() >= grant.expiresAt * 1000)
                throw unauthorized('cache token', 'expired', 'token_expired');
            await state?.checkReadToken(grant);
        },
        async createReadToken({ read, ttlSeconds, name }) {
            if (read.length === 0)
                throw new TypeError('a read token needs at least one slice or pattern');
            const invalid = read.find((pattern) => !isSlicePattern(pattern));
            if (invalid !== undefined)
                throw new TypeError(`'${invalid}' is not a slice name or pattern`);
            if (!READ_TOKEN_NAME.test(name))
                throw new TypeError(`token name '${name}' must be 1-100 letters, digits, . _ @ -`);
            if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0)
                throw new TypeError('the lifetime must be a positive number of seconds');
            if (ttlSeconds > maxReadTokenTtlSeconds)
                throw new TypeError(`a lifetime of ${ttlSeconds} s is longer than max_read_token_ttl (${maxReadTokenTtlSeconds} s)`);
            const grant = {
                kind: 'read',
                read: read.map(normalizeSliceName),
                write: null,
                identity: { name },
            };
            const issued = await cacheTokens.issue(grant, ttlSeconds);
            await options.store?.addReadToken({
                id: issued.id,
                name,
                read: grant.read,
                createdAt: new Date(issued.expiresAt.getTime() - ttlSeconds * 1000), // its iat
                expiresAt: issued.expiresAt,
                lastUsedAt: null,
                revokedAt: null,
            });
            return issued;
        },
        publicSlices: () => policy.publicSlices(),
    };
}

// EXTERNAL MODULE: external "node:os"
var external_node_os_ = __nccwpck_require__(8161);
;// CONCATENATED MODULE: ./src/server/signing-key.ts
/**
 * The narinfo signing key, in the data directory in `nix-store --generate-binary-cache-key` format:
 * `signing-key.sec` (mode 0600) and `signing-key.pub`. Created on first start, reused after.
 */





const SIGNING_KEY_FILE = 'signing-key.sec';
const PUBLIC_KEY_FILE = 'signing-key.pub';
/**
 * A key name unlikely to clash with another cache's: Nix keeps trusted keys by name, so two caches
 * both calling their key `sluice-1` could not both be trusted.
 */
function defaultKeyName(publicUrl) {
    const host = publicUrl ? new URL(publicUrl).hostname : (0,external_node_os_.hostname)();
    const safe = host.replace(/[^A-Za-z0-9.-]/g, '-').replace(/^-+|-+$/g, '') || 'localhost';
    return `${safe}-sluice-1`;
}
async function loadOrCreateSigningKey(dataDir, name) {
    const path = (0,external_node_path_.join)(dataDir, SIGNING_KEY_FILE);
    try {
        return parseSecretKey(await (0,promises_.readFile)(path, 'utf8'));
    }
    catch (error) {
        if (error.code !== 'ENOENT')
            throw new Error(`${path}: ${error.message}`);
    }
    await (0,promises_.mkdir)(dataDir, { recursive: true, mode: 0o700 });
    const key = generateSecretKey(name);
    // Whole file first, then linked into place: `link` fails if another process just created one.
    const temp = `${path}.${(0,external_node_crypto_.randomBytes)(4).toString('hex')}.tmp`;
    const file = await (0,promises_.open)(temp, 'wx', 0o600);
    try {
        await file.writeFile(key.text);
        await file.sync();
    }
    finally {
        await file.close();
    }
    try {
        await (0,promises_.link)(temp, path);
    }
    catch (error) {
        if (error.code !== 'EEXIST')
            throw error;
        return parseSecretKey(await (0,promises_.readFile)(path, 'utf8'));
    }
    finally {
        await (0,promises_.unlink)(temp);
    }
    await (0,promises_.writeFile)((0,external_node_path_.join)(dataDir, PUBLIC_KEY_FILE), `${key.publicKey.text}\n`, { mode: 0o644 });
    return key;
}

;// CONCATENATED MODULE: ./src/server/keys.ts
/**
 * The server's two keys: the narinfo signing key and the token key. By default both live in the
 * data directory (created on first start). Replicas share them through files named in the config
 * (`keys.signing_key_file`, `keys.token_key_file`), which `sluice keys generate DIR` writes; a named
 * file must exist, as a replica that made up its own key would sign what the others cannot verify.
 */







async function readKeyFile(key, path, parse) {
    let text;
    try {
        text = await (0,promises_.readFile)(path, 'utf8');
    }
    catch (error) {
        const code = error.code;
        const why = code === 'ENOENT' ? 'no such file (sluice keys generate DIR writes one)' : (code ?? String(error));
        throw new ConfigError(`keys.${key}: cannot read ${path}: ${why}`);
    }
    try {
        return parse(text.trim());
    }
    catch (error) {
        throw new ConfigError(`keys.${key}: ${path}: ${error.message.split('\n', 1)[0]}`);
    }
}
async function loadServerKeys(config, dataDir) {
    const { signingKeyFile, tokenKeyFile } = config.keys;
    const signingKey = signingKeyFile
        ? await readKeyFile('signing_key_file', signingKeyFile, parseSecretKey)
        : await loadOrCreateSigningKey(dataDir, defaultKeyName(config.publicUrl));
    const tokenKey = tokenKeyFile
        ? await readKeyFile('token_key_file', tokenKeyFile, (pem) => parseTokenKey(pem, tokenKeyFile))
        : (await loadOrCreateTokenKey(tokenKeyPath(dataDir))).key;
    return { signingKey, tokenKey };
}
/** The token key's file for tools that sign tokens (`sluice token create`): the config's, else the data dir's. */
function tokenKeyFileOf(config) {
    return config.keys.tokenKeyFile ?? tokenKeyPath(config.data);
}
const GENERATED_KEY_FILES = {
    signing: 'signing-key.sec',
    public: 'signing-key.pub',
    token: 'token-key.pem',
};
/** Writes a new key pair set into `dir`; refuses to overwrite (a replaced key breaks every replica). */
async function generateKeyFiles(dir, name) {
    await (0,promises_.mkdir)(dir, { recursive: true, mode: 0o700 });
    const signingKey = generateSecretKey(name);
    const { privateKey } = (0,external_node_crypto_.generateKeyPairSync)('ed25519');
    const files = [
        [GENERATED_KEY_FILES.signing, signingKey.text, 0o600],
        [GENERATED_KEY_FILES.token, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600],
        [GENERATED_KEY_FILES.public, `${signingKey.publicKey.text}\n`, 0o644],
    ];
    for (const [file] of files) {
        const existing = await (0,promises_.open)((0,external_node_path_.join)(dir, file), 'r').catch(() => undefined);
        if (existing) {
            await existing.close();
            throw new Error(`${(0,external_node_path_.join)(dir, file)} exists: keys are never overwritten (move it away first)`);
        }
    }
    for (const [file, text, mode] of files) {
        const handle = await (0,promises_.open)((0,external_node_path_.join)(dir, file), 'wx', mode);
        try {
            await handle.writeFile(text);
            await handle.sync();
        }
        finally {
            await handle.close();
        }
    }
    return { publicKey: signingKey.publicKey.text, files: files.map(([file]) => (0,external_node_path_.join)(dir, file)) };
}

;// CONCATENATED MODULE: ./src/cli/keys-command.ts
/**
 * `sluice keys generate DIR [--name NAME]`: writes the narinfo signing key (`signing-key.sec`,
 * `signing-key.pub`) and the token key (`token-key.pem`) into DIR, for replicas that must all sign
 * with the same keys (`keys.signing_key_file`, `keys.token_key_file` in the config).
 */



const KEYS_USAGE = `usage: sluice keys generate DIR [--name NAME]

  Writes DIR/${GENERATED_KEY_FILES.signing} (narinfo signing key), DIR/${GENERATED_KEY_FILES.public} and
  DIR/${GENERATED_KEY_FILES.token} (token key); never overwrites. Name them in the config:
    keys: { signing_key_file: DIR/${GENERATED_KEY_FILES.signing}, token_key_file: DIR/${GENERATED_KEY_FILES.token} }

  --name NAME   the signing key's name, as Nix shows it (default: <host>-sluice-1)
`;
async function runKeys(argv, io = process) {
    let parsed;
    try {
        parsed = (0,external_node_util_.parseArgs)({ args: argv, options: { name: { type: 'string' } }, allowPositionals: true });
    }
    catch (error) {
        io.stderr.write(`sluice keys: ${error.message}\n${KEYS_USAGE}`);
        return 2;
    }
    const [subcommand, dir, ...extra] = parsed.positionals;
    if (subcommand !== 'generate' || dir === undefined || extra.length > 0) {
        io.stderr.write(KEYS_USAGE);
        return 2;
    }
    try {
        const { publicKey, files } = await generateKeyFiles(dir, parsed.values.name ?? defaultKeyName());
        io.stderr.write(`wrote ${files.join(', ')}\n`);
        io.stdout.write(`public key (for trusted-public-keys): ${publicKey}\n`);
        return 0;
    }
    catch (error) {
        io.stderr.write(`sluice keys generate: ${error.message}\n`);
        return 1;
    }
}

;// CONCATENATED MODULE: ./src/contracts/daemon-config.ts
/**
 * The daemon's config file, written by the Action's main step and the benchmark (mode 0600: it
 * holds the token), read by the daemon. Parsed strictly: a bad file is a clear error naming the
 * field, before anything starts.
 */





/** Pin names, as the server's `POST /_api/v1/pins` and `sluice pin` take them. */
const PIN_NAME_PATTERN = /^[A-Za-z0-9._@+-]{1,100}$/;
class DaemonConfigError extends (/* unused pure expression or super */ null && (Error)) {
}
const DAEMON_CONFIG_FILE = 'daemon.json';
const DEFAULT_UPSTREAM_CACHES = (/* unused pure expression or super */ null && (['https://cache.nixos.org']));
const DEFAULT_PUSH_CONCURRENCY = 4;
/** The daemon's `listen`: HOST:PORT on a loopback host (`localhost` listens on 127.0.0.1). */
function parseDaemonListen(listen) {
    let parsed;
    try {
        parsed = parseHostPort(listen);
    }
    catch (error) {
        if (error instanceof ListenError)
            throw new DaemonConfigError(`listen '${listen}' is not host:port`);
        throw error;
    }
    if (!isLoopbackHost(parsed.host)) {
        throw new DaemonConfigError(`listen host '${parsed.host}' is not a loopback address: the daemon only listens on 127.0.0.1`);
    }
    return { host: parsed.host === 'localhost' ? '127.0.0.1' : parsed.host, port: parsed.port };
}
/** An ISO 8601 date (the exchange's `expires_at`) \u2192 unix milliseconds; a DaemonConfigError otherwise. */
function parseExpiry(value, field = 'tokenExpiresAt') {
    const ms = typeof value === 'string' && !/^\d+$/.test(value) ? Date.parse(value) : NaN;
    if (Number.isNaN(ms))
        throw new DaemonConfigError(`${field} '${String(value)}' is not an ISO 8601 date`);
    return ms;
}
function isRecord(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function requireString(obj, key, where = '') {
    const value = obj[key];
    if (typeof value !== 'string' || value.length === 0) {
        throw new DaemonConfigError(`${where}${key} must be a non-empty string`);
    }
    return value;
}
function requireUrl(value, field) {
    let url;
    try {
        url = new URL(value);
    }
    catch {
        throw new DaemonConfigError(`${field} '${value}' is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new DaemonConfigError(`${field} '${value}' must be an http(s) URL`);
    }
    return value.replace(/\/+$/, '');
}
function parsePush(value) {
    if (value === undefined) {
        return {
            enabled: false,
            upstreamCaches: DEFAULT_UPSTREAM_CACHES,
            compression: 'zstd',
            concurrency: DEFAULT_PUSH_CONCURRENCY,
        };
    }
    if (!isRecord(value))
        throw new DaemonConfigError('push must be an object');
    const push = {
        enabled: value.enabled === true,
        upstreamCaches: DEFAULT_UPSTREAM_CACHES,
        compression: 'zstd',
        concurrency: DEFAULT_PUSH_CONCURRENCY,
    };
    if (value.filter !== undefined && value.filter !== '') {
        if (typeof value.filter !== 'string')
            throw new DaemonConfigError('push.filter must be a string');
        try {
            new RegExp(value.filter);
        }
        catch (e) {
            throw new DaemonConfigError(`push.filter is not a valid regular expression: ${e.message}`);
        }
        push.filter = value.filter;
    }
    if (value.upstreamCaches !== undefined) {
        if (!Array.isArray(value.upstreamCaches) || value.upstreamCaches.some((u) => typeof u !== 'string')) {
            throw new DaemonConfigError('push.upstreamCaches must be an array of URLs');
        }
        push.upstreamCaches = value.upstreamCaches
            .filter((u) => u.trim() !== '')
            .map((u, i) => requireUrl(u.trim(), `push.upstreamCaches[${i}]`));
    }
    if (value.compression !== undefined) {
        if (value.compression !== 'zstd' && value.compression !== 'xz' && value.compression !== 'none') {
            throw new DaemonConfigError(`push.compression '${String(value.compression)}' is not one of zstd, xz, none`);
        }
        push.compression = value.compression;
    }
    if (value.concurrency !== undefined) {
        if (!Number.isInteger(value.concurrency) ||
            value.concurrency < 1 ||
            value.concurrency > 64) {
            throw new DaemonConfigError('push.concurrency must be an integer from 1 to 64');
        }
        push.concurrency = value.concurrency;
    }
    return push;
}
function parsePackConfig(value) {
    if (!isRecord(value))
        throw new DaemonConfigError('pack must be an object');
    const restoreKeys = value.restoreKeys;
    if (!Array.isArray(restoreKeys) || restoreKeys.some((k) => typeof k !== 'string' || k === ''))
        throw new DaemonConfigError('pack.restoreKeys must be an array of non-empty strings');
    const cacheEnv = value.cacheEnv ?? {};
    if (!isRecord(cacheEnv) || Object.values(cacheEnv).some((v) => typeof v !== 'string'))
        throw new DaemonConfigError('pack.cacheEnv must be an object of strings');
    return {
        signingKey: requireString(value, 'signingKey', 'pack.'),
        dir: requireString(value, 'dir', 'pack.'),
        restoreKey: requireString(value, 'restoreKey', 'pack.'),
        restoreKeys: restoreKeys,
        cacheEnv: cacheEnv,
    };
}
function parseAuth(value) {
    if (!isRecord(value))
        throw new DaemonConfigError('auth must be an object { cachePrefix, controlSecret }');
    const auth = {
        cachePrefix: requireString(value, 'cachePrefix', 'auth.'),
        controlSecret: requireString(value, 'controlSecret', 'auth.'),
    };
    for (const [key, secret] of Object.entries(auth)) {
        if (!SECRET_PATTERN.test(secret)) {
            throw new DaemonConfigError(`auth.${key} must be 32 to 128 characters of base64url`);
        }
    }
    if (auth.cachePrefix === auth.controlSecret) {
        throw new DaemonConfigError('auth.cachePrefix and auth.controlSecret must differ');
    }
    return auth;
}
function parseSecretFiles(value) {
    if (value === undefined)
        return [];
    if (!Array.isArray(value) || value.some((f) => typeof f !== 'string' || !isAbsolute(f))) {
        throw new DaemonConfigError('secretFiles must be an array of absolute paths');
    }
    return value;
}
function parseDaemonConfig(value) {
    if (!isRecord(value))
        throw new DaemonConfigError('config must be a JSON object');
    const listen = requireString(value, 'listen');
    parseDaemonListen(listen);
    const pack = value.pack === undefined ? undefined : parsePackConfig(value.pack);
    const config = {
        listen,
        ...(pack ? { pack } : {}),
        server: pack && !value.server ? '' : requireUrl(requireString(value, 'server'), 'server'),
        token: value.token === null || value.token === undefined ? null : requireString(value, 'token'),
        tokenExpiresAt: null,
        audience: typeof value.audience === 'string' && value.audience !== '' ? value.audience : DEFAULT_AUDIENCE,
        push: parsePush(value.push),
        stateDir: requireString(value, 'stateDir'),
        read: Array.isArray(value.read) ? value.read.filter((s) => typeof s === 'string') : [],
        write: typeof value.write === 'string' ? value.write : null,
        auth: parseAuth(value.auth),
        secretFiles: parseSecretFiles(value.secretFiles),
    };
    if (config.token !== null) {
        parseExpiry(value.tokenExpiresAt);
        config.tokenExpiresAt = value.tokenExpiresAt;
    }
    if (value.pin !== undefined && value.pin !== null) {
        if (!isRecord(value.pin))
            throw new DaemonConfigError('pin must be an object { name, ttl? }');
        const name = requireString(value.pin, 'name', 'pin.');
        if (!PIN_NAME_PATTERN.test(name))
            throw new DaemonConfigError(`pin.name '${name}' must be 1-100 letters, digits, . _ @ + -`);
        config.pin = { name, ...(value.pin.ttl ? { ttl: requireString(value.pin, 'ttl', 'pin.') } : {}) };
    }
    if (value.idTokenRequest !== undefined && config.token !== null) {
        if (!isRecord(value.idTokenRequest))
            throw new DaemonConfigError('idTokenRequest must be an object { url, token }');
        config.idTokenRequest = {
            url: requireUrl(requireString(value.idTokenRequest, 'url', 'idTokenRequest.'), 'idTokenRequest.url'),
            token: requireString(value.idTokenRequest, 'token', 'idTokenRequest.'),
        };
    }
    return config;
}
/** Written then renamed, so the token never sits in a file with wider permissions, even briefly. */
async function writeDaemonConfig(config) {
    const file = join(config.stateDir, DAEMON_CONFIG_FILE);
    await writeFile(`${file}.tmp`, JSON.stringify(config), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    return file;
}
async function readDaemonConfig(path) {
    let text;
    try {
        text = await readFile(path, 'utf8');
    }
    catch (e) {
        throw new DaemonConfigError(`cannot read config file ${path}: ${e.message}`);
    }
    let json;
    try {
        json = JSON.parse(text);
    }
    catch (e) {
        throw new DaemonConfigError(`config file ${path} is not JSON: ${e.message}`);
    }
    return parseDaemonConfig(json);
}

;// CONCATENATED MODULE: ./src/cli/pin.ts






const PIN_USAGE = `usage: sluice pin add SLICE NAME PATH... [--ttl DURATION]
       sluice pin list [SLICE] [--json]
       sluice pin rm SLICE NAME
  (each also takes --data DIR and --config FILE)

A pin keeps store paths and their closures in a slice whatever max_age says (they still count
against max_size). Adding to an existing pin adds the paths and sets the new expiry.

  --ttl DURATION   the pin expires after this long (30d, 1y); default: never
`;
async function runPin(argv, io = process) {
    let parsed;
    try {
        parsed = (0,external_node_util_.parseArgs)({
            args: argv,
            options: {
                ttl: { type: 'string' },
                json: { type: 'boolean' },
                data: { type: 'string' },
                config: { type: 'string' },
            },
            allowPositionals: true,
        });
    }
    catch (error) {
        io.stderr.write(`sluice pin: ${error.message}\n${PIN_USAGE}`);
        return 2;
    }
    const { values, positionals } = parsed;
    const [action, ...args] = positionals;
    try {
        if (action === 'add' && args.length >= 3)
            return await add(values, args, io);
        if (action === 'list' && args.length <= 1)
            return await list(values, args[0], io);
        if (action === 'rm' && args.length === 2)
            return await remove(values, args, io);
    }
    catch (error) {
        io.stderr.write(`sluice pin: ${error.message}\n`);
        return 1;
    }
    io.stderr.write(`sluice pin: expected add, list or rm with their arguments\n${PIN_USAGE}`);
    return 2;
}
function sliceArgument(text) {
    if (!isSliceName(text))
        throw new Error(`'${text}' is not a slice name`);
    return normalizeSliceName(text);
}
function pinName(text) {
    if (!PIN_NAME_PATTERN.test(text))
        throw new Error(`pin name '${text}' must be 1-100 letters, digits, . _ @ + -`);
    return text;
}
async function add(flags, [sliceText, nameText, ...pathTexts], io) {
    const slice = sliceArgument(sliceText);
    const name = pinName(nameText);
    const paths = pathTexts.map((text) => store_path_StorePath.parse(text).toPath());
    const ttlSeconds = flags.ttl === undefined ? undefined : parseDuration(flags.ttl);
    return withStores(flags, async ({ meta }) => {
        const rows = await meta.findNarInfos(paths.map((path) => path.slice(11, 43)), (candidate) => candidate === slice);
        const found = new Set(rows.map((row) => row.hashPart));
        const missing = paths.filter((path) => !found.has(path.slice(11, 43)));
        if (missing.length > 0)
            throw new Error(`not in slice '${slice}': ${missing.join(', ')}`);
        const now = Date.now();
        const expiresAt = ttlSeconds ? new Date(now + ttlSeconds * 1000) : null;
        await meta.putPin({ slice, name, storePaths: paths, createdAt: new Date(now), expiresAt });
        io.stdout.write(`pinned ${paths.length} path(s) in ${slice} as ${name}${expiresAt ? ` until ${expiresAt.toISOString()}` : ''}\n`);
        return 0;
    });
}
async function list(flags, sliceText, io) {
    const slice = sliceText === undefined ? undefined : sliceArgument(sliceText);
    const pins = await withStores(flags, ({ meta }) => meta.listPins(slice));
    if (!flags.json)
        io.stdout.write('slice\tname\tpaths\tcreated\texpires\n');
    for (const pin of pins) {
        io.stdout.write(flags.json
            ? `${JSON.stringify(pin)}\n`
            : `${pin.slice}\t${pin.name}\t${pin.storePaths.join(',')}\t${pin.createdAt.toISOString()}\t${pin.expiresAt?.toISOString() ?? 'never'}\n`);
    }
    return 0;
}
async function remove(flags, [sliceText, name], io) {
    const slice = sliceArgument(sliceText);
    const removed = await withStores(flags, ({ meta }) => meta.deletePin(slice, name));
    if (!removed) {
        io.stderr.write(`sluice pin: no pin '${name}' in slice '${slice}'\n`);
        return 1;
    }
    io.stdout.write(`removed pin ${name} from ${slice}\n`);
    return 0;
}

;// CONCATENATED MODULE: ./src/cli/slices.ts



const SLICES_USAGE = `usage: sluice slices [--json] [--data DIR] [--config FILE]

Lists every slice holding paths or pins: paths, size of its NAR files, use of its max_size, last
push, pin names (tab-separated columns, or one JSON object per line).
`;
async function runSlices(argv, io = process) {
    let values;
    try {
        ({ values } = (0,external_node_util_.parseArgs)({
            args: argv,
            options: { json: { type: 'boolean' }, data: { type: 'string' }, config: { type: 'string' } },
            allowPositionals: false,
        }));
    }
    catch (error) {
        io.stderr.write(`sluice slices: ${error.message}\n${SLICES_USAGE}`);
        return 2;
    }
    try {
        const summaries = await withStores(values, ({ meta, config }) => summarizeSlices(meta, config));
        if (!values.json)
            io.stdout.write(`${SLICE_COLUMNS.join('\t')}\n`);
        for (const summary of summaries)
            io.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${sliceRow(summary).join('\t')}\n`);
        return 0;
    }
    catch (error) {
        io.stderr.write(`sluice slices: ${error.message}\n`);
        return 1;
    }
}

// EXTERNAL MODULE: external "node:http"
var external_node_http_ = __nccwpck_require__(7067);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __nccwpck_require__(7075);
// EXTERNAL MODULE: ./src/contracts/http-error.ts
var http_error = __nccwpck_require__(7288);
;// CONCATENATED MODULE: ./src/nix/file-hash.ts
/** The sha256 and size of a file fed chunk by chunk: a narinfo's FileHash and FileSize. */


class FileHasher {
    hasher = (0,external_node_crypto_.createHash)('sha256');
    size = 0;
    update(chunk) {
        this.hasher.update(chunk);
        this.size += chunk.length;
    }
    /** Bytes fed so far. */
    get fileSize() {
        return this.size;
    }
    /** Once, after the last chunk. */
    digest() {
        return { fileHash: new Hash('sha256', this.hasher.digest()), fileSize: this.size };
    }
}

;// CONCATENATED MODULE: ./src/nix/nar-url.ts

/** File name extensions Nix gives compressed NARs. */
const NAR_EXTENSIONS = { none: '', zstd: '.zst', xz: '.xz' };
const COMPRESSION_OF_EXTENSION = new Map(Object.entries(NAR_EXTENSIONS).map(([compression, ext]) => [ext, compression]));
/** `<hash>.nar<ext>`, the file name part; the extension any `.[a-z0-9]+` so an unknown one can be named. */
const NAR_FILE_NAME = new RegExp(`^(${NIX32_CLASS}{52})\\.nar((?:\\.[a-z0-9]+)?)$`);
/** `<hash>.nar<ext>` \u2192 its parts; undefined when it is not that shape. */
function parseNarFileName(name) {
    const match = NAR_FILE_NAME.exec(name);
    if (!match)
        return undefined;
    const extension = match[2];
    return {
        hash: match[1],
        extension,
        compression: COMPRESSION_OF_EXTENSION.get(extension),
        key: name,
    };
}
/** A narinfo's `URL:` (`nar/<hash>.nar<ext>`) \u2192 its parts; undefined when it is not that shape. */
function parseNarUrl(url) {
    return url.startsWith('nar/') ? parseNarFileName(url.slice('nar/'.length)) : undefined;
}
function narFileName(hashNix32, compression) {
    return `${hashNix32}.nar${NAR_EXTENSIONS[compression]}`;
}
function narUrl(hashNix32, compression) {
    return `nar/${narFileName(hashNix32, compression)}`;
}

;// CONCATENATED MODULE: ./src/server/cache/nar-in-use.ts
/**
 * A push that uses a NAR (uploads it, or skips uploading it because the slice has it) marks it used
 * first, so a collector running at that moment leaves it alone; while a collector is deleting that
 * very file, the push waits for it to finish and then uploads the NAR again (docs/retention.md,
 * "Safety under concurrency").
 */

/** How long an upload waits for a collector to finish deleting the same NAR file (a few ms normally). */
const DELETION_WAIT_MS = 10_000;
const POLL_MS = 20;
/** Marks the NAR as used by this upload; while a collector is deleting that key, waits for it. */
async function markNarInUse(meta, key, now) {
    const started = Date.now();
    while (!(await meta.touchNar(key, new Date(now())))) {
        if (Date.now() - started > DELETION_WAIT_MS)
            throw new http_error/* HttpError */.j(503, `NAR ${key} is being deleted by the collector: retry`, 'nar_deleting', {
                'retry-after': '1',
            });
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
}

;// CONCATENATED MODULE: external "node:v8"
const external_node_v8_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:v8");
;// CONCATENATED MODULE: external "node:vm"
const external_node_vm_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:vm");
;// CONCATENATED MODULE: ./src/server/cache/gc-pacer.ts
/**
 * Young-generation collections paced by the bytes a thread has finished with. Node gives each
 * socket read and each decompressor output a fresh buffer; V8 frees one only when it collects its
 * small JS object, and a thread that allocates few JS objects (the server's upload path, once the
 * checks moved to workers) collects rarely: spent buffers piled up by tens of MB before V8's
 * external-memory limit started a collection. A young collection every few MiB frees them while
 * they are young, for well under a millisecond.
 *
 * `--expose-gc` is not allowed for workers and not passed to `sluice serve`, so it is turned on
 * here, for a context made after it (V8's flags are per process; the context is this thread's).
 */


let gc_pacer_collect;
class GcPacer {
    everyBytes;
    since = 0;
    constructor(everyBytes) {
        this.everyBytes = everyBytes;
    }
    /** `bytes` of buffers were used and dropped. */
    spent(bytes) {
        this.since += bytes;
        if (this.since < this.everyBytes)
            return;
        this.since = 0;
        if (!gc_pacer_collect) {
            (0,external_node_v8_namespaceObject.setFlagsFromString)('--expose-gc');
            gc_pacer_collect = (0,external_node_vm_namespaceObject.runInNewContext)('gc');
        }
        gc_pacer_collect({ type: 'minor' });
    }
}

;// CONCATENATED MODULE: ./src/server/cache/nar-verifier.ts
/**
 * The verifying pass every NAR upload goes through on its way to the BlobStore. It hands the
 * file's bytes on, and meanwhile has them hashed (FileHash/FileSize) and the NAR inside
 * decompressed and hashed (NarHash/NarSize) by a verification worker (verify-pool.ts). It ends in
 * an error, so the store commits nothing, when the file is larger than allowed, does not
 * decompress, or does not hash to the name it was uploaded as: the file's hash (Nix's
 * `PUT /nar/<filehash>`) or the NAR's (`PUT /_api/v1/nar/<narhash>`). Within the limits
 * (NarHasher's, checked on the worker): exactly one NAR, no padding, bounded size, ratio and
 * decoder memory, so that a few kilobytes cannot buy minutes of CPU, gigabytes of memory, or a
 * file larger than the NAR it holds.
 *
 * One loop on the main thread: the request's chunks are copied into one of two reused shared
 * buffers, and each full buffer goes to the worker and to storage at once. The worker reads it
 * where it is (no copy), so hashing and decompressing run on another core while this thread
 * receives and writes; few large writes cost fewer thread-pool round trips than a write per
 * received chunk, and reused buffers cost no allocations (page faults, garbage collections).
 */



/**
 * The two buffers an upload's bytes are gathered in, shared with the verification workers. 1 MiB:
 * with the checks on a worker, a quarter of the messages, writes and decompressor calls of 256 KiB
 * stages cost the server 12% less CPU on the 1 GiB push (6.6 -> 5.8 s), for no more memory.
 */
const stageBuffers = new buffer_pool/* BufferPool */.P(1024 * 1024, 16, undefined, true);
/** The request's chunks, each a fresh buffer from the socket, freed as they die young. */
const receivePacer = new GcPacer(8 * 1024 * 1024);
/** The error for a file or NAR that does not hash to its name, or undefined if it does. */
function nameMismatch(expected, digest) {
    const [what, actual, wanted, reason] = 'fileHash' in expected
        ? ['NAR file', digest.fileHash, expected.fileHash, 'file_hash_mismatch']
        : ['NAR', digest.narHash, expected.narHash, 'nar_hash_mismatch'];
    if (actual.equals(wanted))
        return undefined;
    return new http_error/* HttpError */.j(400, `${what} hashes to ${actual.toString()}, not to ${wanted.toString()} as its name says`, reason);
}
/**
 * What compressors add to incompressible data, with room to spare: zstd ~700 bytes on 30 MB,
 * xz ~2.5 KB (multi-threaded, level 0) on 30 MB, and ~60 bytes on an empty file. More is padding.
 */
function maxFileOverhead(narSize) {
    return Math.floor(narSize / 1024) + 4096;
}
function verifyNarUpload(source, expected, verifiers) {
    let digest;
    const { limits, compression } = expected;
    async function* body() {
        const check = verifiers.session(compression, limits);
        const stages = [stageBuffers.take()];
        let stage = stages[0];
        let filled = 0;
        let fileSize = 0;
        // The worker's check of the last full stage, which runs while the next one fills; it rejects
        // with the refusal (an HttpError).
        let checking;
        const send = (bytes) => {
            checking = check.write(bytes);
            // Its failure is taken up at the next await; until then it must not count as unhandled.
            checking.catch(() => undefined);
        };
        try {
            for await (const chunk of source) {
                fileSize += chunk.length;
                receivePacer.spent(chunk.length);
                if (fileSize > limits.maxNarSize) {
                    throw new http_error/* HttpError */.j(413, `NAR file is larger than the limit of ${limits.maxNarSize} bytes`, 'too_large');
                }
                for (let offset = 0; offset < chunk.length;) {
                    const copied = chunk.copy(stage, filled, offset);
                    offset += copied;
                    filled += copied;
                    if (filled < stage.length)
                        continue;
                    // The other stage must be checked before it is filled again.
                    await checking;
                    send(stage);
                    // Resumed once the store has written the stage.
                    yield stage;
                    if (stages.length < 2)
                        stages.push(stageBuffers.take());
                    stage = stages[stage === stages[0] ? 1 : 0];
                    filled = 0;
                }
            }
            await checking;
            if (filled > 0) {
                send(stage.subarray(0, filled));
                yield stage.subarray(0, filled);
                await checking;
            }
            const result = await check.end();
            if (compression !== 'none' && fileSize > result.narSize + maxFileOverhead(result.narSize)) {
                throw new http_error/* HttpError */.j(400, `NAR file of ${fileSize} bytes holds a NAR of ${result.narSize} bytes: more than ${compression} adds, ` +
                    'and padding is not accepted', 'padding');
            }
            const mismatch = nameMismatch(expected, result);
            if (mismatch)
                throw mismatch;
            digest = result;
        }
        finally {
            check.destroy();
            // A stopped check may still be reading its last stage: harmless, it only reads, and its
            // session is gone.
            stageBuffers.give(stages);
        }
    }
    return {
        body: body(),
        digest: () => {
            if (!digest)
                throw new Error('the upload digest is only known once its body has ended');
            return digest;
        },
    };
}

;// CONCATENATED MODULE: ./src/server/cache/verified-nar.ts
/**
 * What the server verified about a stored NAR file, as typed values: the form the cache service
 * works with. The MetadataStore keeps the same facts as text (`NarFacts`); the two conversions
 * below are the only places one becomes the other.
 */

function toNarFacts(nar) {
    return { ...nar, fileHash: nar.fileHash.toString(), narHash: nar.narHash.toString() };
}
function fromNarFacts(facts) {
    return { ...facts, fileHash: Hash.parse(facts.fileHash), narHash: Hash.parse(facts.narHash) };
}

;// CONCATENATED MODULE: ./src/server/cache/narinfo-check.ts
/**
 * An uploaded narinfo checked against the name it was uploaded as and against the NAR its slice
 * uploaded: a writer can only publish what it proved it holds.
 */




function mismatch(message, reason = 'narinfo_mismatch') {
    return new http_error/* HttpError */.j(400, message, reason);
}
/** The NAR the narinfo describes, as the slice uploaded it; a 400 naming the first field that disagrees. */
async function checkNarInfo(stores, slice, hashPart, info) {
    const storePath = store_path_StorePath.parse(info.storePath);
    if (storePath.hashPart !== hashPart) {
        throw mismatch(`StorePath ${info.storePath} does not match the uploaded name ${hashPart}.narinfo`);
    }
    const url = parseNarUrl(info.url);
    if (!url)
        throw mismatch(`URL '${info.url}' is not nar/<hash>.nar[.zst|.xz]`);
    if (url.compression !== info.compression) {
        throw mismatch(`Compression '${info.compression}' does not match the URL '${info.url}'`);
    }
    const facts = await stores.meta.uploadedNar(slice, url.key);
    if (!facts)
        throw mismatch(`its NAR ${info.url} was not uploaded to slice '${slice}': upload the NAR first`, 'nar_missing');
    const nar = fromNarFacts(facts);
    if (info.fileHash && !info.fileHash.equals(nar.fileHash)) {
        throw mismatch(`FileHash ${info.fileHash.toString()} does not match the file uploaded (${nar.fileHash.toString()})`);
    }
    if (info.fileSize !== undefined && info.fileSize !== nar.fileSize) {
        throw mismatch(`FileSize ${info.fileSize} does not match the ${nar.fileSize} bytes uploaded`);
    }
    if (!info.narHash.equals(nar.narHash)) {
        throw mismatch(`NarHash ${info.narHash.toString()} does not match the uploaded NAR (${nar.narHash.toString()})`);
    }
    if (info.narSize !== nar.narSize) {
        throw mismatch(`NarSize ${info.narSize} does not match the uploaded NAR (${nar.narSize} bytes)`);
    }
    if (!(await stores.blobs.head(url.key)))
        throw mismatch(`its NAR ${info.url} is no longer stored`, 'nar_missing');
    return nar;
}

;// CONCATENATED MODULE: ./src/server/cache/union-read.ts

/** Whether a slice's binding satisfies a read grant that came from a template. */
function ownerMatches(owner, required) {
    if (owner === null || owner.issuer !== required.issuer)
        return false;
    if (required.repositoryId !== undefined && owner.repositoryId !== required.repositoryId)
        return false;
    return required.repositoryOwnerId === undefined || owner.repositoryOwnerId === required.repositoryOwnerId;
}
/** The ranking of one cache token's grant (public slices come after everything it was granted). */
function grantRanking(grant) {
    const identity = grant.identity;
    const writeOwner = grant.bindWrite
        ? { issuer: identity.issuer, ...(identity.repository_id ? { repositoryId: identity.repository_id } : {}) }
        : null;
    return (slice, owner) => {
        if (slice === grant.write && (writeOwner === null || ownerMatches(owner, writeOwner)))
            return 0;
        for (const [index, pattern] of grant.read.entries()) {
            const required = grant.readOwners?.[index] ?? null;
            if (readCovers(pattern, slice) && (required === null || ownerMatches(owner, required)))
                return index + 1;
        }
        return null;
    };
}
/** `ranking`, then the public slices after it. */
function withPublicSlices(ranking, isPublic) {
    return (slice, owner) => ranking(slice, owner) ?? (isPublic(slice) ? Number.MAX_SAFE_INTEGER : null);
}
const readableBy = (rank) => (slice, owner) => rank(slice, owner) !== null;
const narHashOf = (record) => /^NarHash: (\S+)$/m.exec(record.narinfo)?.[1] ?? '';
/** Picks, per hash part, the narinfo of the highest-precedence slice among `records`. */
function chooseNarInfos(records, rank) {
    const ranked = records
        .map((record) => ({ record, rank: rank(record.slice, record.owner ?? null) }))
        .filter((entry) => entry.rank !== null)
        .sort((a, b) => a.rank - b.rank || (a.record.slice < b.record.slice ? -1 : 1));
    const chosen = new Map();
    for (const { record } of ranked) {
        const earlier = chosen.get(record.hashPart);
        if (!earlier)
            chosen.set(record.hashPart, { record, conflicts: [] });
        else if (narHashOf(record) !== narHashOf(earlier.record))
            earlier.conflicts.push(record);
    }
    return chosen;
}

;// CONCATENATED MODULE: ./src/server/cache/narinfo-lookup.ts

const REPORTED_LIMIT = 10_000;
const reported = new WeakMap();
function reportConflict(deps, choice) {
    deps.metrics.narinfoConflicts.inc();
    const slices = choice.conflicts.map((record) => record.slice).sort();
    const key = `${choice.record.hashPart} ${choice.record.slice} ${slices.join(' ')}`;
    let seen = reported.get(deps);
    if (!seen)
        reported.set(deps, (seen = new Set()));
    if (seen.has(key))
        return;
    if (seen.size >= REPORTED_LIMIT)
        seen.clear();
    seen.add(key);
    deps.log.warn({ storePath: choice.record.storePath, served: choice.record.slice, conflicting: slices }, 'readable slices hold different narinfos for one store path: serving the one with precedence');
}
/** The narinfos to answer, each read recorded for retention (retention/access.ts) first. */
async function lookupNarInfos(deps, access, hashParts) {
    const choose = async () => chooseNarInfos(await deps.meta.findNarInfos(hashParts, access.canRead), access.rank);
    let choices = await choose();
    // A row removed by a collector between the lookup and the recording of the read: look again.
    if (!(await deps.reads.record([...choices.values()].map((choice) => choice.record))))
        choices = await choose();
    const found = new Map();
    for (const [hashPart, choice] of choices) {
        if (choice.conflicts.length > 0)
            reportConflict(deps, choice);
        found.set(hashPart, choice.record);
    }
    return found;
}

;// CONCATENATED MODULE: ./src/contracts/narinfo-set.ts
/**
 * The narinfo set route as server and proxy both know it: `GET /_api/v1/narinfo-set[?since=<cursor>]`
 * answers the store-path hashes the token's readable slices hold, as sorted 32-bit prefixes, so the
 * proxy answers most misses from memory. A prefix is the first 32 of the hash part's 160 bits, so a
 * hash the set does not hold is claimed with probability count / 2^32 (2.3e-4 for a million paths):
 * a claimed path is still asked of the server, which has the last word.
 *
 * Body: one JSON header line `{"format", "cursor", "count", "full"}`, then `count` LEB128 varints:
 * the first prefix, then the gaps between successive prefixes (strictly increasing). `full: false`
 * answers `?since=`: the prefixes of narinfos committed after that cursor (maybe some already sent).
 */

const NARINFO_SET_PATH = '/_api/v1/narinfo-set';
const NARINFO_SET_FORMAT = 'sluice-narinfo-set-1';
const NARINFO_SET_CONTENT_TYPE = 'application/vnd.sluice.narinfo-set';
/** A cursor is opaque to the proxy: the store's position (a counter or a transaction id), in digits. */
const SET_CURSOR_PATTERN = /^[0-9]{1,20}$/;
const DIGIT = new Int8Array(128).fill(-1);
for (const [i, c] of [...NIX32_ALPHABET].entries())
    DIGIT[c.charCodeAt(0)] = i;
/**
 * The first 32 bits of a hash part (32 nix32 characters of 5 bits each, most significant first):
 * the alphabet is in ASCII order, so hash parts sorted as strings have sorted prefixes. `text` may
 * hold many hash parts back to back; `offset` says which characters to read.
 */
function hashPrefix(text, offset = 0) {
    let value = 0;
    for (let i = 0; i < 7; i++)
        value = value * 32 + DIGIT[text.charCodeAt(offset + i)];
    // 35 bits read; the top 32 are the prefix.
    return Math.floor(value / 8);
}
/** Sorts in place and drops repeats: the strictly increasing form the set is sent in. */
function sortedUnique(prefixes) {
    prefixes.sort();
    let n = 0;
    for (let i = 0; i < prefixes.length; i++) {
        if (n === 0 || prefixes[i] !== prefixes[n - 1])
            prefixes[n++] = prefixes[i];
    }
    return prefixes.subarray(0, n);
}
/** Whether a strictly increasing array holds `prefix` (binary search). */
function hasPrefix(sorted, prefix) {
    let low = 0;
    let high = sorted.length - 1;
    while (low <= high) {
        const middle = (low + high) >>> 1;
        const value = sorted[middle];
        if (value === prefix)
            return true;
        if (value < prefix)
            low = middle + 1;
        else
            high = middle - 1;
    }
    return false;
}
function encodeNarInfoSet(set) {
    const header = Buffer.from(`${JSON.stringify({ format: NARINFO_SET_FORMAT, cursor: set.cursor, count: set.prefixes.length, full: set.full })}\n`);
    // Gaps of a million random prefixes average 4,295: two bytes each, at most five.
    const body = Buffer.allocUnsafe(header.length + set.prefixes.length * 5);
    header.copy(body);
    let at = header.length;
    let previous = 0;
    for (let i = 0; i < set.prefixes.length; i++) {
        const value = set.prefixes[i];
        let gap = value - previous;
        previous = value;
        while (gap >= 0x80) {
            body[at++] = (gap & 0x7f) | 0x80;
            gap = Math.floor(gap / 128);
        }
        body[at++] = gap;
    }
    return body.subarray(0, at);
}
class NarInfoSetError extends (/* unused pure expression or super */ null && (Error)) {
}
/** Reads a body `encodeNarInfoSet` wrote; throws NarInfoSetError naming what is wrong. */
function decodeNarInfoSet(body) {
    const newline = body.indexOf(10);
    if (newline === -1)
        throw new NarInfoSetError('narinfo set has no header line');
    let header;
    try {
        header = JSON.parse(body.subarray(0, newline).toString('utf8'));
    }
    catch {
        throw new NarInfoSetError('narinfo set header is not JSON');
    }
    const { format, cursor, count, full } = header ?? {};
    if (format !== NARINFO_SET_FORMAT)
        throw new NarInfoSetError(`unknown narinfo set format ${String(format)}`);
    if (typeof cursor !== 'string' || !SET_CURSOR_PATTERN.test(cursor))
        throw new NarInfoSetError('narinfo set cursor is not digits');
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0)
        throw new NarInfoSetError('narinfo set count is not a count');
    if (typeof full !== 'boolean')
        throw new NarInfoSetError('narinfo set says neither full nor not');
    const prefixes = new Uint32Array(count);
    let at = newline + 1;
    let value = 0;
    for (let i = 0; i < count; i++) {
        let gap = 0;
        let scale = 1;
        for (;;) {
            if (at >= body.length)
                throw new NarInfoSetError(`narinfo set ends after ${i} of ${count} prefixes`);
            const byte = body[at++];
            gap += (byte & 0x7f) * scale;
            scale *= 128;
            if (byte < 0x80)
                break;
            if (scale > 2 ** 35)
                throw new NarInfoSetError('narinfo set holds an overlong number');
        }
        if (i > 0 && gap === 0)
            throw new NarInfoSetError('narinfo set prefixes are not strictly increasing');
        value += gap;
        if (value > 0xffffffff)
            throw new NarInfoSetError('narinfo set prefix beyond 32 bits');
        prefixes[i] = value;
    }
    if (at !== body.length)
        throw new NarInfoSetError('narinfo set has bytes after its last prefix');
    return { cursor, full, prefixes };
}

;// CONCATENATED MODULE: ./src/server/cache/narinfo-set-index.ts
/**
 * The narinfo set (src/contracts/narinfo-set.ts) for a reader: the sorted 32-bit hash prefixes of
 * every narinfo in the slices it may read. The server keeps each slice's prefixes in memory (4
 * bytes a path), loaded once from the store and brought up to date by a delta query before every
 * answer, so a full answer costs a merge of the reader's slices and an encoding, both cached per
 * set of slices until something changes. Only slices the reader's filter admits contribute: a
 * slice it may not read never shows in its set.
 */

/** Encoded unions kept: jobs that start together mostly read the same slices. */
const CACHED_UNIONS = 8;
const narinfo_set_index_HASH_PART_LENGTH = 32;
function prefixesOf(hashParts) {
    const prefixes = new Uint32Array(hashParts.length / narinfo_set_index_HASH_PART_LENGTH);
    for (let i = 0; i < prefixes.length; i++)
        prefixes[i] = hashPrefix(hashParts, i * narinfo_set_index_HASH_PART_LENGTH);
    return prefixes;
}
/** The strictly increasing union of strictly increasing arrays. */
function union(arrays) {
    if (arrays.length === 1)
        return arrays[0];
    const all = new Uint32Array(arrays.reduce((sum, array) => sum + array.length, 0));
    let at = 0;
    for (const array of arrays) {
        all.set(array, at);
        at += array.length;
    }
    return sortedUnique(all);
}
class NarInfoSetIndex {
    meta;
    slices = new Map();
    /** The store's cursor the slices are up to date with; null before the first load. */
    cursor = null;
    /** Bumped whenever a slice changed, so cached unions know they are stale. */
    version = 0;
    unions = new Map();
    running;
    next;
    constructor(meta) {
        this.meta = meta;
    }
    /** The whole set for `canRead`, covering every narinfo committed before this call. */
    async full(canRead) {
        await this.refresh();
        const readable = [...this.slices.entries()]
            .filter(([slice, entry]) => entry.prefixes.length > 0 && canRead(slice, entry.owner))
            .sort(([a], [b]) => (a < b ? -1 : 1));
        const key = readable.map(([slice]) => slice).join('\n');
        const cached = this.unions.get(key);
        if (cached?.version === this.version)
            return cached;
        const prefixes = union(readable.map(([, entry]) => entry.prefixes));
        const answer = {
            version: this.version,
            body: encodeNarInfoSet({ cursor: this.cursor ?? '0', full: true, prefixes }),
            count: prefixes.length,
        };
        this.unions.delete(key);
        this.unions.set(key, answer);
        if (this.unions.size > CACHED_UNIONS)
            this.unions.delete(this.unions.keys().next().value);
        return answer;
    }
    /** What `canRead` gained since `cursor`, asked of the store directly (small, and exact for any cursor). */
    async since(canRead, cursor) {
        const answer = await this.meta.narInfoHashParts(cursor);
        const readable = answer.slices.filter(({ slice, owner }) => canRead(slice, owner));
        const prefixes = union(readable.map(({ hashParts }) => sortedUnique(prefixesOf(hashParts))));
        return {
            body: encodeNarInfoSet({ cursor: answer.cursor, full: false, prefixes }),
            count: prefixes.length,
        };
    }
    /**
     * Brings the slices up to date with a snapshot taken after this call: a refresh already running
     * may have taken its snapshot before, so one more is queued after it (shared by all who wait).
     */
    refresh() {
        if (!this.running)
            return this.start();
        this.next ??= this.running
            .catch(() => undefined)
            .then(() => {
            this.next = undefined;
            return this.start();
        });
        return this.next;
    }
    start() {
        const run = this.load().finally(() => {
            if (this.running === run)
                this.running = undefined;
        });
        this.running = run;
        return run;
    }
    async load() {
        const answer = await this.meta.narInfoHashParts(this.cursor);
        for (const part of answer.slices)
            this.apply(part);
        if (answer.slices.length > 0)
            this.version++;
        this.cursor = answer.cursor;
    }
    apply({ slice, owner, hashParts }) {
        const added = sortedUnique(prefixesOf(hashParts));
        const entry = this.slices.get(slice);
        if (!entry)
            this.slices.set(slice, { owner, prefixes: added });
        else {
            entry.owner = owner;
            entry.prefixes = union([entry.prefixes, added]);
        }
    }
}

;// CONCATENATED MODULE: ./src/server/cache/pins.ts
/**
 * Pins added by a writer (the Action's `pin` input, through `POST /_api/v1/pins`): only into its
 * own write slice, and only paths that slice holds, so a pin is possible exactly where the policy
 * lets the job write. Pinned closures ignore `max_age` (docs/retention.md).
 */

const hashPartOf = (path) => path.slice(path.lastIndexOf('/') + 1).slice(0, 32);
async function addPin(deps, writer, pin) {
    const { slice } = writer;
    const rows = await deps.meta.findNarInfos(pin.paths.map(hashPartOf), (candidate) => candidate === slice);
    const found = new Set(rows.map((row) => row.hashPart));
    const missing = pin.paths.filter((path) => !found.has(hashPartOf(path)));
    const present = pin.paths.filter((path) => found.has(hashPartOf(path)));
    if (missing.length > 0 && (!pin.skipMissing || present.length === 0)) {
        throw new http_error/* HttpError */.j(400, `${missing.length} of the paths are not in slice '${slice}' (push them first): ${missing.slice(0, 5).join(', ')}`, 'pin_missing_path');
    }
    const now = deps.now();
    const expiresAt = pin.ttlSeconds ? new Date(now + pin.ttlSeconds * 1000) : null;
    await deps.meta.putPin({ slice, name: pin.name, storePaths: present, createdAt: new Date(now), expiresAt });
    deps.log.info({ slice, pin: pin.name, paths: present.length, expiresAt }, 'pin added');
    return { pinned: present.length, missing: missing.length, expiresAt };
}

;// CONCATENATED MODULE: ./src/server/cache/slice-owner.ts
/**
 * Slice ownership: a template slice (`${repository}`) belongs to the repository, of its issuer,
 * that wrote it first (names change hands on GitHub; ids do not; two issuers may both have an
 * `acme`). Slices named in the config follow their write rules alone.
 */

/**
 * Refuses a write into a slice another repository owns. Uploads only check (`bind` false); an
 * accepted narinfo binds the slice, so a refused request changes nothing.
 */
async function checkSliceOwner(meta, writer, bind) {
    if (!writer.bindWrite)
        return;
    const { issuer = '', repositoryId = '', repositoryOwnerId = '' } = writer.identity;
    const owner = bind
        ? await meta.bindSlice(writer.slice, { issuer, repositoryId, repositoryOwnerId })
        : await meta.sliceOwner(writer.slice);
    if (owner && owner.issuer !== issuer) {
        throw new http_error/* HttpError */.j(403, `slice '${writer.slice}' belongs to a repository of another issuer ('${owner.issuer}')`, 'slice_owner');
    }
    if (owner && owner.repositoryId !== repositoryId) {
        throw new http_error/* HttpError */.j(403, `slice '${writer.slice}' belongs to another repository (id ${owner.repositoryId})`, 'slice_owner');
    }
}

;// CONCATENATED MODULE: ./src/server/cache/cache-service.ts
/**
 * The Nix binary cache as a service, free of HTTP: lookups in the union of readable slices, NAR
 * uploads verified on their way into the BlobStore, narinfos checked against what their slice
 * uploaded, slice ownership, signing. The HTTP handlers (src/server/http/cache-handlers.ts) only
 * read requests and write answers; storage backends plug in as BlobStore and MetadataStore.
 */













class CacheService {
    deps;
    sets;
    constructor(deps) {
        this.deps = deps;
        this.sets = new NarInfoSetIndex(deps.meta);
    }
    /** The narinfo set of the reader's slices (src/contracts/narinfo-set.ts): whole, or what came after `since`. */
    narInfoSet(reader, since) {
        return since === null ? this.sets.full(reader.canRead) : this.sets.since(reader.canRead, since);
    }
    get maxNarSize() {
        return this.deps.narLimits.maxNarSize;
    }
    /** The signed narinfo of `hashPart` in a readable slice, or undefined. */
    async narInfo(hashPart, reader) {
        const record = (await lookupNarInfos(this.deps, reader, [hashPart])).get(hashPart);
        this.deps.metrics.narinfoLookups.inc({ result: record ? 'hit' : 'miss' });
        return record ? this.deps.narinfoSigner.served(record) : undefined;
    }
    /** The signed narinfos of the readable hits among `hashParts`. */
    async narInfos(hashParts, reader) {
        const records = await lookupNarInfos(this.deps, reader, hashParts);
        const narinfos = {};
        for (const [hashPart, record] of records)
            narinfos[hashPart] = this.deps.narinfoSigner.served(record);
        const { narinfoLookups } = this.deps.metrics;
        if (records.size > 0)
            narinfoLookups.inc({ result: 'hit' }, records.size);
        if (hashParts.length > records.size)
            narinfoLookups.inc({ result: 'miss' }, hashParts.length - records.size);
        return narinfos;
    }
    /**
     * Whether the reader may see this NAR. Readers see NARs a readable narinfo points to. A writer's
     * HEAD answers from its own slice: if it said yes for a NAR only another slice holds, `nix copy`
     * would skip the upload and the narinfo would then be refused for lack of it.
     */
    async narVisible(reader, key, head) {
        const { meta } = this.deps;
        const ownUpload = reader.write !== null &&
            (await meta.uploadedNar(reader.write, key)) !== null &&
            (await this.holdsWriteSlice(reader, reader.write));
        // A writer that sees the NAR will not upload it: mark it used so a collector leaves it alone
        // (or, when one is deleting it right now, say no so the writer uploads it again).
        if (head && reader.write !== null)
            return ownUpload && (await meta.touchNar(key, new Date(this.deps.now())));
        return ownUpload || (await meta.isNarReadable(key, reader.canRead));
    }
    /** Whether the write slice is this writer's: not bound yet, or bound to its issuer and repository. */
    async holdsWriteSlice(reader, slice) {
        if (!reader.bindWrite)
            return true;
        const owner = await this.deps.meta.sliceOwner(slice);
        return owner === null || reader.rank(slice, owner) === 0;
    }
    get blobs() {
        return this.deps.blobs;
    }
    /** Where a visible NAR's bytes are to be fetched instead of from this server (a presigned URL), if anywhere. */
    narRedirectUrl(key) {
        return this.deps.narRedirect ? this.deps.narRedirect(key) : Promise.resolve(undefined);
    }
    /** How long the URLs of `narRedirectUrl` work, when there are any. */
    get narRedirectTtlSeconds() {
        return this.deps.narRedirect ? this.deps.narRedirectTtlSeconds : undefined;
    }
    countBytesOut(bytes) {
        this.deps.metrics.bytesOut.inc(bytes);
    }
    /** The checks a write passes before its body is read: the slice is the writer's to write. */
    checkWriter(writer) {
        return checkSliceOwner(this.deps.meta, writer, false);
    }
    /** Pins paths of the writer's slice (with their closures, as the collector keeps them). */
    pin(writer, pin) {
        return addPin(this.deps, writer, pin);
    }
    /** Before an upload's body is read: marks its NAR used, waiting while a collector deletes it. */
    markNarInUse(key) {
        return markNarInUse(this.deps.meta, key, this.deps.now);
    }
    /**
     * Streams an upload through the verification into the BlobStore and records it for the writer's
     * slice. `aborted` tells a client that went away from a failing store. The outcome depends only
     * on the slice's own uploads: `exists` if it had uploaded this NAR before, else `created`,
     * whether or not another slice holds the same file (which a writer must not learn).
     */
    async storeNar(writer, upload, body, aborted) {
        const { blobs, meta, metrics, log, narLimits } = this.deps;
        const hadIt = (await meta.uploadedNar(writer.slice, upload.key)) !== null;
        const verified = verifyNarUpload(body, { ...upload.name, compression: upload.compression, limits: narLimits }, this.deps.verifiers);
        let outcome;
        try {
            outcome = await blobs.put(upload.key, verified.body);
        }
        catch (error) {
            if (error instanceof http_error/* HttpError */.j)
                throw error;
            if (aborted() || error.code === 'ERR_STREAM_PREMATURE_CLOSE') {
                throw new http_error/* HttpError */.j(400, 'the upload ended before its body was complete', 'truncated');
            }
            throw error;
        }
        const digest = verified.digest();
        metrics.bytesIn.inc(digest.fileSize);
        // A key named by FileHash holds these very bytes. One named by NarHash is the slice's own
        // (narHashKey), but may hold other bytes it uploaded before (another compressor or level): the
        // narinfo must describe the file that is served, so that one is hashed.
        const stored = outcome === 'exists' && 'narHash' in upload.name ? await this.storedFileDigest(upload.key) : digest;
        const nar = {
            key: upload.key,
            compression: upload.compression,
            fileHash: stored.fileHash,
            fileSize: stored.fileSize,
            narHash: digest.narHash,
            narSize: digest.narSize,
        };
        await meta.recordUpload(writer.slice, toNarFacts(nar));
        log.info({ slice: writer.slice, nar: upload.key, fileSize: nar.fileSize, stored: outcome }, 'NAR uploaded');
        return { outcome: hadIt ? 'exists' : 'created', nar };
    }
    async storedFileDigest(key) {
        const body = await this.deps.blobs.open(key);
        if (!body)
            throw new Error(`NAR file ${key} vanished while being uploaded again`);
        const hasher = new FileHasher();
        const sink = new external_node_stream_.Writable({
            write: (chunk, _encoding, done) => {
                hasher.update(chunk);
                done();
            },
        });
        await body.writeTo(sink);
        return hasher.digest();
    }
    /** Checks an uploaded narinfo (parsed once, by the caller) and stores it for the writer's slice. */
    async storeNarInfo(writer, hashPart, info) {
        const { meta, log, narinfoSigner } = this.deps;
        const { slice, identity } = writer;
        const nar = await checkNarInfo(this.deps, slice, hashPart, info);
        await checkSliceOwner(meta, writer, true);
        const now = new Date(this.deps.now());
        // The references this path needs in the slice count as used now, so a collection running at
        // this moment keeps them (its batch that holds one of them is refused).
        await meta.touchNarInfos(info.references.map((name) => ({ slice, hashPart: name.slice(0, 32) })), now);
        const stored = {
            ...info,
            url: `nar/${nar.key}`,
            fileHash: nar.fileHash,
            fileSize: nar.fileSize,
            sigs: [],
        };
        // Signed once here, from the narinfo parsed once, so the lookups that follow need not.
        const signed = narinfoSigner.signForStorage(stored);
        const outcome = await meta.putNarInfo({
            slice,
            hashPart,
            storePath: info.storePath,
            narKey: nar.key,
            narinfo: signed.narinfo,
            signedBy: signed.signedBy,
            createdAt: now,
        }, {
            ...identity,
            time: now,
            slice,
            storePath: info.storePath,
            narSize: nar.narSize,
            fileSize: nar.fileSize,
        });
        if (outcome === 'nar_missing')
            throw new http_error/* HttpError */.j(400, `its NAR ${info.url} was removed by the collector meanwhile: upload it again`, 'nar_missing');
        log.info({ slice, storePath: info.storePath, stored: outcome, repository: identity.repository }, 'narinfo uploaded');
        return outcome;
    }
}
/**
 * The blob key of a NAR uploaded by its NarHash: one per slice and NAR. Keyed by the NarHash alone,
 * the first slice to upload a NAR would choose the bytes (and their size) every later uploader's
 * narinfo must describe, and a 200 would tell the next uploader that someone holds it. A file
 * named by its FileHash (Nix's uploads) is shared: the same name means the same bytes.
 */
function narHashKey(slice, narHash, compression) {
    const hash = Hash.of('sha256', Buffer.from(`sluice nar upload\0${slice}\0${narHash}`));
    return narFileName(hash.nix32, compression);
}

;// CONCATENATED MODULE: ./src/nix/narinfo.ts
/**
 * `.narinfo` files: parse strictly (every problem named), serialize in the field order Nix writes,
 * so what `nix copy` uploads round-trips byte for byte. Unknown fields are kept for forward
 * compatibility and written after the known ones.
 */


/** Far above any real narinfo (even thousands of references), low enough to refuse abuse. */
const NARINFO_MAX_BYTES = 1024 * 1024;
// Field names as Nix writes them; anything else in a key (spaces, colons) is a corrupt line.
const KEY_PATTERN = /^[A-Za-z][A-Za-z0-9-]*$/;
/** Compression methods Nix can read from a binary cache. */
const COMPRESSIONS = ['none', 'xz', 'bzip2', 'zstd', 'br', 'gzip', 'lz4', 'lzip'];
class NarInfoError extends Error {
}
const KNOWN_FIELDS = new Set([
    'StorePath',
    'URL',
    'Compression',
    'FileHash',
    'FileSize',
    'NarHash',
    'NarSize',
    'References',
    'Deriver',
    'System',
    'Sig',
    'CA',
]);
function narinfo_parseSize(field, value) {
    if (!/^\d+$/.test(value))
        throw new NarInfoError(`${field} '${value}' is not a non-negative integer`);
    const size = Number(value);
    if (!Number.isSafeInteger(size))
        throw new NarInfoError(`${field} '${value}' is too large`);
    return size;
}
/** A `sha256:...` (or SRI) hash, the only kind Nix writes into narinfos. */
function parseHash(field, value) {
    let hash;
    try {
        hash = Hash.parse(value);
    }
    catch (e) {
        if (e instanceof HashError)
            throw new NarInfoError(`${field}: ${e.message}`);
        throw e;
    }
    if (hash.algorithm !== 'sha256')
        throw new NarInfoError(`${field} '${value}' is not a sha256 hash`);
    return hash;
}
function checkBaseName(field, value) {
    try {
        return store_path_StorePath.fromBaseName(value).baseName;
    }
    catch (e) {
        if (e instanceof StorePathError)
            throw new NarInfoError(`${field}: ${e.message}`);
        throw e;
    }
}
function parseNarInfo(text, options = {}) {
    const storeDir = options.storeDir ?? store_path_DEFAULT_STORE_DIR;
    const maxBytes = options.maxBytes ?? NARINFO_MAX_BYTES;
    if (Buffer.byteLength(text) > maxBytes)
        throw new NarInfoError(`narinfo is larger than ${maxBytes} bytes`);
    if (!text.endsWith('\n'))
        throw new NarInfoError(`narinfo does not end with a newline`);
    const fields = new Map();
    const seen = new Set();
    const sigs = [];
    const extra = [];
    const lines = text.split('\n');
    lines.pop();
    lines.forEach((line, index) => {
        const sep = line.indexOf(': ');
        const key = line.slice(0, Math.max(sep, 0));
        if (sep <= 0 || !KEY_PATTERN.test(key)) {
            throw new NarInfoError(`line ${index + 1} is not 'Key: value': '${line.slice(0, 80)}'`);
        }
        const value = line.slice(sep + 2);
        if (key === 'Sig') {
            if (!/^[^:\s]+:[A-Za-z0-9+/]+={0,2}$/.test(value))
                throw new NarInfoError(`Sig '${value}' is not 'keyname:base64'`);
            sigs.push(value);
            return;
        }
        if (seen.has(key))
            throw new NarInfoError(`duplicate field '${key}'`);
        seen.add(key);
        if (KNOWN_FIELDS.has(key))
            fields.set(key, value);
        else
            extra.push([key, value]);
    });
    const required = (key) => {
        const value = fields.get(key);
        if (value === undefined)
            throw new NarInfoError(`missing required field '${key}'`);
        return value;
    };
    const storePath = required('StorePath');
    try {
        store_path_StorePath.parse(storePath, storeDir);
    }
    catch (e) {
        if (e instanceof StorePathError)
            throw new NarInfoError(`StorePath: ${e.message}`);
        throw e;
    }
    const url = required('URL');
    if (url.length === 0)
        throw new NarInfoError(`URL is empty`);
    const compression = fields.get('Compression') ?? 'bzip2';
    if (!COMPRESSIONS.includes(compression)) {
        throw new NarInfoError(`unknown Compression '${compression}'`);
    }
    const info = {
        storePath,
        url,
        compression: compression,
        narHash: parseHash('NarHash', required('NarHash')),
        narSize: narinfo_parseSize('NarSize', required('NarSize')),
        references: [],
        sigs,
        extra,
    };
    if (info.narSize === 0)
        throw new NarInfoError(`NarSize is 0: no NAR is empty`);
    const fileHash = fields.get('FileHash');
    if (fileHash !== undefined)
        info.fileHash = parseHash('FileHash', fileHash);
    const fileSize = fields.get('FileSize');
    if (fileSize !== undefined)
        info.fileSize = narinfo_parseSize('FileSize', fileSize);
    const references = fields.get('References');
    if (references)
        info.references = references.split(' ').map((r) => checkBaseName('References', r));
    const deriver = fields.get('Deriver');
    // Old caches write `unknown-deriver`; Nix reads that as no deriver, and so do we.
    if (deriver !== undefined && deriver !== 'unknown-deriver')
        info.deriver = checkBaseName('Deriver', deriver);
    const system = fields.get('System');
    if (system !== undefined)
        info.system = system;
    const ca = fields.get('CA');
    if (ca !== undefined)
        info.ca = ca;
    return info;
}
/** Writes `info` in the order Nix writes; refuses values that would break the line format. */
function serializeNarInfo(info) {
    const lines = [];
    const line = (key, value) => {
        if (value === undefined)
            return;
        const text = String(value);
        if (text.includes('\n'))
            throw new NarInfoError(`field '${key}' contains a newline`);
        lines.push(`${key}: ${text}\n`);
    };
    line('StorePath', info.storePath);
    line('URL', info.url);
    line('Compression', info.compression);
    line('FileHash', info.fileHash);
    line('FileSize', info.fileSize);
    line('NarHash', info.narHash);
    line('NarSize', info.narSize);
    // A malformed base name (one with a space, say) would read back as other references.
    line('References', info.references.map((r) => checkBaseName('References', r)).join(' '));
    line('Deriver', info.deriver === undefined ? undefined : checkBaseName('Deriver', info.deriver));
    line('System', info.system);
    for (const sig of info.sigs)
        line('Sig', sig);
    line('CA', info.ca);
    for (const [key, value] of info.extra) {
        if (!KEY_PATTERN.test(key) || KNOWN_FIELDS.has(key))
            throw new NarInfoError(`cannot write extra field '${key}'`);
        line(key, value);
    }
    return lines.join('');
}
/** The hash part of the narinfo's store path, which names the `.narinfo` file. */
function narInfoHashPart(info, storeDir = DEFAULT_STORE_DIR) {
    return StorePath.parse(info.storePath, storeDir).hashPart;
}

;// CONCATENATED MODULE: ./src/server/cache/narinfo-signer.ts
/**
 * The server's signature on stored narinfos. Parsing, fingerprinting and ed25519-signing cost more
 * than the rest of a narinfo GET together, so a narinfo is signed once, as it is stored, and the
 * record keeps the public key that signed it. Reads serve the stored text as it is.
 *
 * A record signed by another key (the signing key was replaced) or by none (stored before
 * signatures were) is signed when read, as every read once was: those results are kept, bounded,
 * oldest first out, so a closure asked for by every job is signed once per key.
 */


/** About 1 KiB each (stored text as the key, signed text as the value). */
const SIGNED_NARINFO_CACHE_SIZE = 10_000;
class NarInfoSigner {
    key;
    capacity;
    signed = new Map();
    constructor(key, capacity = SIGNED_NARINFO_CACHE_SIZE) {
        this.key = key;
        this.capacity = capacity;
    }
    /** The public key this signer signs for, as records name it. */
    get publicKey() {
        return this.key.publicKey.text;
    }
    /** A narinfo (parsed once, by the upload) as it is to be stored: signed now, with the key that signed it. */
    signForStorage(info) {
        const narinfo = serializeNarInfo({
            ...info,
            sigs: [signFingerprint(narInfoFingerprint(info), this.key)],
        });
        return { narinfo, signedBy: this.publicKey };
    }
    /** What to serve for a record: its stored text when this key signed it, else signed now. */
    served(record) {
        return record.signedBy === this.publicKey ? record.narinfo : this.sign(record.narinfo);
    }
    /** The stored narinfo with the server's signature in place of any other. */
    sign(stored) {
        let body = this.signed.get(stored);
        if (body === undefined) {
            const info = parseNarInfo(stored);
            body = serializeNarInfo({ ...info, sigs: [signFingerprint(narInfoFingerprint(info), this.key)] });
            if (this.signed.size >= this.capacity)
                this.signed.delete(this.signed.keys().next().value);
            this.signed.set(stored, body);
        }
        return body;
    }
}

// EXTERNAL MODULE: external "node:url"
var external_node_url_ = __nccwpck_require__(3136);
;// CONCATENATED MODULE: external "node:worker_threads"
const external_node_worker_threads_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:worker_threads");
;// CONCATENATED MODULE: ./src/server/cache/verify-pool.ts
/**
 * The server's verification threads: a few workers (verify-worker.ts), started on first use, that
 * hash, decompress and check uploads while the main thread receives and stores them. Each upload
 * is a session on the worker with the fewest; a worker that stops (a crash, its heap limit) fails
 * the uploads it held with a 503, so their bodies fail and the store keeps nothing, and the next
 * upload starts a new one.
 */






/** Seconds a client waits before retrying an upload whose worker stopped. */
const RETRY_AFTER_SECONDS = '2';
/** A worker's heap holds a few sessions' hashers and decompressor buffers; past this it is stopped. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 4 };
const here = (0,external_node_url_.fileURLToPath)(import.meta.url);
/**
 * Bundled (dist/cli/...), the worker is its own bundle, dist/verify-worker/index.js. Run from the
 * TypeScript sources (the tests, `sluice` from a checkout), it is the entry point's source, loaded
 * with types stripped and `.js` imports mapped to `.ts` as ts-jest and the bench do.
 */
function workerStart(script) {
    if (script !== undefined)
        return { script, eval: script.endsWith('.ts') };
    if (!here.endsWith('.ts'))
        return { script: (0,external_node_path_.join)((0,external_node_path_.dirname)(here), '..', 'verify-worker', 'index.js'), eval: false };
    return { script: (0,external_node_path_.join)((0,external_node_path_.dirname)(here), '..', '..', 'entrypoints', 'verify-worker.ts'), eval: true };
}
const FROM_SOURCES = `
const { registerHooks } = require('node:module');
const { pathToFileURL } = require('node:url');
registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context);
    } catch (error) {
      if (/^\\.\\.?\\/.*\\.js$/.test(specifier)) return next(specifier.slice(0, -3) + '.ts', context);
      throw error;
    }
  },
});
import(pathToFileURL(require('node:worker_threads').workerData.script).href);
`;
/** The main thread's side of a session: what it waits for, and how it ended. */
class Session {
    id;
    slot;
    consumed = [];
    digest;
    failure;
    done = false;
    constructor(id, slot) {
        this.id = id;
        this.slot = slot;
    }
    write(chunk) {
        if (this.failure)
            return Promise.reject(this.failure);
        const bytes = chunk.buffer;
        if (!(bytes instanceof SharedArrayBuffer) || chunk.byteOffset !== 0) {
            throw new Error('upload checks take chunks at the start of a SharedArrayBuffer');
        }
        return new Promise((resolve, reject) => {
            this.consumed.push({ resolve: resolve, reject });
            this.slot.send({ type: 'chunk', id: this.id, bytes, length: chunk.length });
        });
    }
    end() {
        if (this.failure)
            return Promise.reject(this.failure);
        return new Promise((resolve, reject) => {
            this.digest = { resolve: resolve, reject };
            this.slot.send({ type: 'end', id: this.id });
        }).then((digest) => ({
            fileHash: new Hash('sha256', Buffer.from(digest.fileHash)),
            fileSize: digest.fileSize,
            narHash: new Hash('sha256', Buffer.from(digest.narHash)),
            narSize: digest.narSize,
        }));
    }
    destroy() {
        if (this.done)
            return;
        this.done = true;
        this.slot.sessions.delete(this.id);
        if (!this.failure)
            this.slot.send({ type: 'destroy', id: this.id });
        this.fail(new http_error/* HttpError */.j(500, 'the upload check was stopped', 'stopped'));
    }
    /** A message from the worker about this session. */
    receive(message) {
        switch (message.type) {
            case 'consumed':
                this.consumed.shift()?.resolve(undefined);
                return;
            case 'digest':
                this.done = true;
                this.slot.sessions.delete(this.id);
                this.digest?.resolve(message.digest);
                return;
            case 'refused': {
                const { status, message: text, reason } = message.refusal;
                this.fail(new http_error/* HttpError */.j(status, text, reason));
                return;
            }
        }
    }
    fail(error) {
        this.failure ??= error;
        for (const waiter of this.consumed.splice(0))
            waiter.reject(this.failure);
        this.digest?.reject(this.failure);
        this.digest = undefined;
    }
}
/** A worker and the sessions it holds. */
class Slot {
    worker;
    sessions = new Map();
    stopped;
    constructor(worker, onExit) {
        this.worker = worker;
        worker.on('message', (message) => this.sessions.get(message.id)?.receive(message));
        let cause = 'it exited';
        worker.on('error', (error) => (cause = error.message));
        worker.on('exit', (code) => {
            this.stopped = new http_error/* HttpError */.j(503, `the upload could not be verified: its verification thread stopped (${cause}, code ${code}); ` +
                'nothing was stored, retry', 'verifier_stopped', { 'retry-after': RETRY_AFTER_SECONDS });
            for (const session of this.sessions.values())
                session.fail(this.stopped);
            this.sessions.clear();
            onExit(this);
        });
        // Uploads keep the process alive while they run; an idle worker must not.
        worker.unref();
    }
    send(message) {
        if (this.stopped) {
            // The exit handler failed every session already; a late message has nowhere to go.
            return;
        }
        this.worker.postMessage(message);
    }
    /** Stops the thread (its sessions fail as for a crash). */
    terminate() {
        return this.worker.terminate();
    }
}
class VerifyPool {
    slots = [];
    nextId = 1;
    threads;
    start;
    constructor(options = {}) {
        this.threads = Math.max(1, options.threads ?? Math.min(4, (0,external_node_os_.availableParallelism)() - 1));
        this.start = workerStart(options.script);
    }
    /** A check for one upload, on the least busy worker (a new one while there are fewer than `threads`). */
    session(compression, limits) {
        let slot = this.slots.reduce((best, candidate) => (best && best.sessions.size <= candidate.sessions.size ? best : candidate), undefined);
        if (!slot || (slot.sessions.size > 0 && this.slots.length < this.threads))
            slot = this.spawn();
        const session = new Session(this.nextId++, slot);
        slot.sessions.set(session.id, session);
        slot.send({ type: 'start', id: session.id, compression, limits });
        return session;
    }
    /** Workers running now. */
    get running() {
        return this.slots.length;
    }
    /** Stops every worker; uploads still being checked fail with a 503. */
    async close() {
        await Promise.all(this.slots.map((slot) => slot.terminate()));
    }
    spawn() {
        const { script, eval: fromSources } = this.start;
        const worker = fromSources
            ? new external_node_worker_threads_namespaceObject.Worker(FROM_SOURCES, {
                eval: true,
                workerData: { script },
                execArgv: ['--experimental-transform-types', '--disable-warning=ExperimentalWarning'],
                resourceLimits: WORKER_LIMITS,
            })
            : new external_node_worker_threads_namespaceObject.Worker(script, { execArgv: [], resourceLimits: WORKER_LIMITS });
        const slot = new Slot(worker, (stopped) => this.slots.splice(this.slots.indexOf(stopped), 1));
        this.slots.push(slot);
        return slot;
    }
}

;// CONCATENATED MODULE: ./src/server/cache/nar-link-signer.ts
/**
 * Signed NAR links: a URL that carries a cache token's read right for one NAR, for a short time,
 * so that Nix can fetch the bytes from this server without the proxy in between and without the
 * token. The link holds the grant the token carried (never the token), the NAR's key and an expiry,
 * MACed with a key derived from the server's token key (HMAC-SHA256: replicas sharing the token key
 * accept each other's links; a MAC is checked in about a microsecond, an EdDSA signature in ~50).
 * A link's read is checked exactly as the token's would be: the grant's slices must read the NAR
 * at the time of the GET, the token must not have expired (nor, for read tokens, been revoked),
 * and the link works for its NAR only and not after its own expiry.
 */


/** How long a link works. Nix follows a redirect at once; the proxy asks again for a late one. */
const NAR_LINK_TTL_SECONDS = 120;
const MAC_CONTEXT = 'sluice signed NAR link v1';
function refused(problem) {
    return new http_error/* HttpError */.j(403, `signed NAR link ${problem}`, 'bad_link');
}
/** The grant without what a read does not need: the identity beyond what ranks slices. */
function readGrant(grant) {
    const identity = grant.identity;
    const kept = grant.kind === 'read'
        ? { name: identity.name ?? '' }
        : {
            issuer: identity.issuer ?? '',
            ...(identity.repository_id ? { repository_id: identity.repository_id } : {}),
        };
    return {
        kind: grant.kind,
        read: grant.read,
        ...(grant.readOwners ? { readOwners: grant.readOwners } : {}),
        write: grant.write,
        bindWrite: grant.bindWrite === true,
        identity: kept,
        ...(grant.issued ? { issued: grant.issued } : {}),
        ...(grant.expiresAt !== undefined ? { expiresAt: grant.expiresAt } : {}),
    };
}
class NarLinkSigner {
    now;
    ttlSeconds;
    macKey;
    constructor(tokenKey, now = Date.now, ttlSeconds = NAR_LINK_TTL_SECONDS) {
        this.now = now;
        this.ttlSeconds = ttlSeconds;
        const secret = tokenKey.export({ type: 'pkcs8', format: 'der' });
        this.macKey = Buffer.from((0,external_node_crypto_.hkdfSync)('sha256', secret, Buffer.alloc(0), MAC_CONTEXT, 32));
    }
    /**
     * When links made now expire (seconds): after the link's lifetime (or `ttlSeconds`, if shorter),
     * never after the token of `grant`.
     */
    expiry(grant, ttlSeconds = this.ttlSeconds) {
        const own = this.nowSeconds() + Math.min(ttlSeconds, this.ttlSeconds);
        return grant?.expiresAt === undefined ? own : Math.min(own, grant.expiresAt);
    }
    nowSeconds() {
        return Math.floor(this.now() / 1000);
    }
    /** The value of the link's `sig` parameter for the NAR `key`. */
    sign(key, grant, expiresAt = this.expiry(grant)) {
        const payload = { k: key, e: expiresAt, g: readGrant(grant) };
        const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
        return `${encoded}.${this.mac(encoded).toString('base64url')}`;
    }
    /** The grant a link carries for the NAR `key`; throws 403 naming what is wrong with it. */
    verify(key, value) {
        const dot = value.indexOf('.');
        if (dot <= 0 || dot !== value.lastIndexOf('.'))
            throw refused('is malformed');
        const encoded = value.slice(0, dot);
        const given = Buffer.from(value.slice(dot + 1), 'base64url');
        const expected = this.mac(encoded);
        if (given.length !== expected.length || !(0,external_node_crypto_.timingSafeEqual)(given, expected))
            throw refused('has a bad signature (altered, or signed with another key)');
        let payload;
        try {
            payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
        }
        catch {
            throw refused('is malformed');
        }
        if (payload.k !== key)
            throw refused('is for another NAR');
        if (typeof payload.e !== 'number' || this.now() >= payload.e * 1000)
            throw refused(`expired at ${new Date((payload.e || 0) * 1000).toISOString()}`);
        return payload.g;
    }
    mac(encoded) {
        return (0,external_node_crypto_.createHmac)('sha256', this.macKey).update(encoded).digest();
    }
}

;// CONCATENATED MODULE: ./src/server/http/rate-limit.ts



/** Addresses tracked at most; beyond it the longest-tracked is forgotten (it starts afresh). */
const TRACKED_ADDRESSES = 10_000;
class Buckets {
    rate;
    now;
    buckets = new Map();
    constructor(rate, now) {
        this.rate = rate;
        this.now = now;
    }
    /** Tokens in the address's bucket now (a full bucket for an address not tracked). */
    level(address) {
        const perMs = this.rate.count / (this.rate.periodSeconds * 1000);
        const bucket = this.buckets.get(address) ?? { tokens: this.rate.count, at: this.now() };
        const now = this.now();
        return { tokens: Math.min(this.rate.count, bucket.tokens + (now - bucket.at) * perMs), at: now };
    }
    /** Seconds until one more is allowed, or 0 when one is allowed now. */
    wait(address) {
        if (!this.buckets.has(address))
            return 0;
        const { tokens } = this.level(address);
        return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * this.rate.periodSeconds) / this.rate.count);
    }
    take(address) {
        const bucket = this.level(address);
        bucket.tokens = Math.max(0, bucket.tokens - 1);
        this.buckets.delete(address);
        if (this.buckets.size >= TRACKED_ADDRESSES)
            this.buckets.delete(this.buckets.keys().next().value);
        this.buckets.set(address, bucket);
    }
}
function plain(address) {
    return address.startsWith('::ffff:') && (0,external_node_net_namespaceObject.isIP)(address.slice(7)) === 4 ? address.slice(7) : address;
}
/**
 * The client's address: the connection's peer, unless that peer is a trusted proxy; then the
 * nearest address in X-Forwarded-For (read from the right) that is not a trusted proxy. Without
 * `trusted`, X-Forwarded-For is ignored: anyone can write it.
 */
function clientAddress(req, trusted) {
    let address = plain(req.socket.remoteAddress ?? 'unknown');
    if (!trusted)
        return address;
    const isTrusted = (ip) => (0,external_node_net_namespaceObject.isIP)(ip) !== 0 && trusted.check(ip, (0,external_node_net_namespaceObject.isIP)(ip) === 6 ? 'ipv6' : 'ipv4');
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
        .split(',')
        .map((hop) => hop.trim());
    while (isTrusted(address) && hops.length > 0) {
        const next = plain(hops.pop());
        if ((0,external_node_net_namespaceObject.isIP)(next) === 0)
            break; // a malformed entry: stop at the last address we can vouch for
        address = next;
    }
    return address;
}
/** Whether the request tries to authenticate: a token exchange, or any request with credentials. */
function authenticates(req, route) {
    return route === 'token' || req.headers.authorization !== undefined;
}
function tooMany(what, rate, address, seconds) {
    return new http_error/* HttpError */.j(429, `too many ${what} from ${address} (at most ${rate.count} per ${rate.periodSeconds} s): retry in ${seconds} s`, 'rate_limited', { 'retry-after': String(seconds) });
}
function createRequestGuard(limits, trustProxy, now = Date.now, onLimited = () => { }) {
    const trusted = trustProxy.length > 0 ? trustedProxies(trustProxy) : null;
    const exchanges = limits.tokenExchanges && new Buckets(limits.tokenExchanges, now);
    const failures = limits.failedAuth && new Buckets(limits.failedAuth, now);
    return {
        admit(req, route) {
            if (!authenticates(req, route))
                return;
            const address = clientAddress(req, trusted);
            const failedWait = failures?.wait(address) ?? 0;
            if (failedWait > 0) {
                onLimited('failed_auth');
                throw tooMany('failed authentications', limits.failedAuth, address, failedWait);
            }
            if (route !== 'token' || !exchanges)
                return;
            const wait = exchanges.wait(address);
            if (wait > 0) {
                onLimited('token_exchanges');
                throw tooMany('token exchanges', limits.tokenExchanges, address, wait);
            }
            exchanges.take(address);
        },
        refused(req, route) {
            if (failures && authenticates(req, route))
                failures.take(clientAddress(req, trusted));
        },
    };
}

;// CONCATENATED MODULE: ./src/server/http/exchange-status.ts
/** The token exchange's errors as HTTP answers: the one place their statuses are chosen. */


const STATUS = { unauthorized: 401, forbidden: 403, unavailable: 503 };
/** An ExchangeError as the HttpError the router answers with; any other error unchanged. */
function exchangeErrorToHttp(error) {
    if (!(error instanceof ExchangeError))
        return error;
    const headers = error.kind === 'unauthorized' ? { 'www-authenticate': 'Bearer' } : {};
    return new http_error/* HttpError */.j(STATUS[error.kind], error.message, error.reason, headers);
}
/** Runs `action`, turning an ExchangeError it throws into its HttpError. */
async function asHttp(action) {
    try {
        return await action();
    }
    catch (error) {
        throw exchangeErrorToHttp(error);
    }
}

;// CONCATENATED MODULE: ./src/server/http/auth.ts



/** The one reading of `Authorization: Bearer <token>`: the token ('' if empty), or undefined for another scheme. */
function bearerCredential(header) {
    const match = /^bearer(?:\s+(.*))?$/i.exec(header?.trim() ?? '');
    return match ? (match[1] ?? '').trim() : undefined;
}
/** The token in the request, or null when there is no Authorization header. */
function requestToken(req) {
    const header = req.headers.authorization;
    if (header === undefined || header === '')
        return null;
    const bearer = bearerCredential(header);
    if (bearer !== undefined) {
        if (!bearer)
            throw new http_error/* HttpError */.j(401, 'empty Bearer token', 'bad_token', { 'www-authenticate': 'Bearer' });
        return bearer;
    }
    const space = header.indexOf(' ');
    const scheme = space === -1 ? header : header.slice(0, space);
    const value = space === -1 ? '' : header.slice(space + 1).trim();
    if (/^basic$/i.test(scheme)) {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const password = colon === -1 ? '' : decoded.slice(colon + 1);
        if (!password)
            throw new http_error/* HttpError */.j(401, 'Basic auth without a password: put the cache token in the password', 'bad_token');
        return password;
    }
    throw new http_error/* HttpError */.j(401, `unsupported Authorization scheme '${scheme}' (use Bearer or Basic)`, 'bad_token');
}
async function resolveAccess(req, verify, isPublic) {
    const token = requestToken(req);
    if (token === null) {
        const rank = withPublicSlices(() => null, isPublic);
        return {
            authenticated: false,
            rank,
            canRead: readableBy(rank),
            write: null,
            bindWrite: false,
            identity: {},
        };
    }
    return verifiedAccess(() => verify(token), isPublic);
}
/** The access a signed NAR link's grant gives, checked as its token would be now. */
function resolveGrantAccess(grant, verify, isPublic) {
    return verifiedAccess(() => verify(grant), isPublic);
}
async function verifiedAccess(verify, isPublic) {
    let access;
    try {
        access = await verify();
    }
    catch (caught) {
        const error = exchangeErrorToHttp(caught);
        if (error instanceof http_error/* HttpError */.j && error.status === 401)
            throw error; // already names the problem
        const reason = error instanceof Error ? error.message : String(error);
        throw new http_error/* HttpError */.j(401, `invalid cache token: ${reason}`, 'bad_token', { 'www-authenticate': 'Bearer' });
    }
    const rank = withPublicSlices(access.rank, isPublic);
    return { ...access, authenticated: true, rank, canRead: readableBy(rank) };
}
/** The write slice, or the reason there is none: 401 without a token, 403 with a read-only one. */
function requireWriteSlice(access) {
    if (!access.authenticated) {
        throw new http_error/* HttpError */.j(401, 'uploads need a cache token with a write slice', 'unauthenticated', {
            'www-authenticate': 'Bearer',
        });
    }
    if (access.write === null)
        throw new http_error/* HttpError */.j(403, 'this cache token grants no write slice', 'read_only_token');
    return access.write;
}

;// CONCATENATED MODULE: ./src/contracts/nar-links.ts
/**
 * NAR links: where Nix may fetch a NAR's bytes without the proxy in between. The daemon asks the
 * server for links to the NARs of the narinfos it answered and redirects Nix's NAR GETs to them.
 * A link is either a path below the server's URL (`nar/<file>?sig=\u2026`: the read right of the
 * daemon's token for that NAR alone, signed by the server, short-lived) or an absolute URL (a
 * presigned bucket URL, when the server keeps NARs in one and presigns downloads).
 */
/** `POST` `{"nars": ["nar/<file hash>.nar[.ext]", ...]}` \u2192 `NarLinksResponse`. */
const NAR_LINKS_PATH = '/_api/v1/nar-links';
/** NAR URLs per request: the closures Nix substitutes at once. */
const NAR_LINKS_LIMIT = 1000;
/** The query parameter of a signed NAR link. */
const NAR_LINK_PARAM = 'sig';
/** The answer as the daemon uses it, or undefined when the body is not one. */
function parseNarLinksResponse(text) {
    let json;
    try {
        json = JSON.parse(text);
    }
    catch {
        return undefined;
    }
    const { links, expires_in: expiresIn } = (json ?? {});
    if (typeof links !== 'object' || links === null || Array.isArray(links))
        return undefined;
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn))
        return undefined;
    const entries = Object.entries(links).filter((entry) => typeof entry[1] === 'string');
    return { links: new Map(entries), expiresInSeconds: expiresIn };
}

;// CONCATENATED MODULE: ./src/server/http/body.ts

/** Refuses a declared Content-Length over `limit` before any of the body is read. */
function checkDeclaredLength(req, limit, what) {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
        throw new http_error/* HttpError */.j(413, `${what} of ${declared} bytes is larger than the limit of ${limit} bytes`, 'too_large');
    }
}
/** Tells a client waiting on `Expect: 100-continue` to send the body: every check before it passed. */
function acceptBody(req, res) {
    if (/100-continue/i.test(req.headers.expect ?? ''))
        res.writeContinue();
}
async function readSmallBody(body, limit, what) {
    const chunks = [];
    let size = 0;
    for await (const chunk of body) {
        size += chunk.length;
        if (size > limit)
            throw new http_error/* HttpError */.j(413, `${what} is larger than the limit of ${limit} bytes`, 'too_large');
        chunks.push(chunk);
    }
    return Buffer.concat(chunks);
}
/**
 * `source`, failing with 408 when a chunk takes longer than `idleMs` to arrive. Only the wait for
 * the client counts: while the consumer is busy (writing to storage, decompressing) nothing is
 * asked for and no timer runs. After a timeout the request is left as it is, so that the 408 can
 * still be sent on its connection (which the router then closes).
 */
function withIdleTimeout(source, idleMs) {
    return {
        [Symbol.asyncIterator]() {
            const inner = source[Symbol.asyncIterator]();
            let timedOut = false;
            return {
                next() {
                    const next = inner.next();
                    let timer;
                    const timeout = new Promise((_resolve, reject) => {
                        timer = setTimeout(() => {
                            timedOut = true;
                            // The chunk asked for may still come, or the connection fail: neither matters now.
                            next.catch(() => undefined);
                            reject(new http_error/* HttpError */.j(408, `the request body sent nothing for ${idleMs / 1000} s (body_idle_timeout): abandoned`, 'idle_body'));
                        }, idleMs);
                    });
                    return Promise.race([next, timeout]).finally(() => clearTimeout(timer));
                },
                return(value) {
                    // Ending the inner iterator destroys the request, and with it the socket the 408 needs.
                    if (timedOut)
                        return Promise.resolve({ done: true, value: undefined });
                    return inner.return?.(value) ?? Promise.resolve({ done: true, value: undefined });
                },
            };
        },
    };
}

;// CONCATENATED MODULE: ./src/server/http/range.ts
/** Single byte ranges (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`), which is what download tools ask for. */

/** The range to send, or null for the whole body (no header, or several ranges, which we may ignore). */
function parseRange(header, size) {
    if (header === undefined)
        return null;
    const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
    if (!match)
        return null;
    const [, first, last] = match;
    let start;
    let end;
    if (first === '') {
        if (last === '')
            return null;
        start = Math.max(0, size - Number(last));
        end = size - 1;
    }
    else {
        start = Number(first);
        end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
    }
    if (start > end || start >= size) {
        throw new http_error/* HttpError */.j(416, `range ${header} is outside the ${size} bytes of the file`, 'bad_range', {
            'content-range': `bytes */${size}`,
        });
    }
    return { start, end };
}

;// CONCATENATED MODULE: ./src/contracts/narinfo-batch.ts
/**
 * The batch narinfo lookup route as server and proxy both know it: where it is, how many hash
 * parts one request may name, and which slices a lookup may ask.
 */
const NARINFO_BATCH_PATH = '/_api/v1/narinfos';
/** Hash parts per request: far more than Nix has in flight (http-connections, 25 by default). */
const NARINFO_BATCH_LIMIT = 1000;
const NARINFO_LOOKUP_SCOPES = ['union', 'write'];

;// CONCATENATED MODULE: ./src/server/http/lookup-scope.ts



/** A scope as a request names it (`where` says where, for the error); absent means the union. */
function parseLookupScope(value, where) {
    if (value === undefined || value === null)
        return 'union';
    if (!NARINFO_LOOKUP_SCOPES.includes(value)) {
        throw new http_error/* HttpError */.j(400, `${where} ${JSON.stringify(value)?.slice(0, 40)} is not one of ${NARINFO_LOOKUP_SCOPES.map((s) => `"${s}"`).join(', ')}`, 'bad_scope');
    }
    return value;
}
/** The `?scope=` of a narinfo GET/HEAD. */
function queryLookupScope(req) {
    const query = new URL(req.url ?? '/', 'http://sluice.invalid').searchParams;
    return parseLookupScope(query.get('scope'), 'query parameter scope');
}
/**
 * `access` narrowed to `scope`: for "write", only the slice that ranks first because it is the
 * token's own write slice (held by this writer). Without a write slice "write" names nothing.
 */
function scopedAccess(access, scope) {
    if (scope === 'union')
        return access;
    if (access.write === null) {
        const why = access.authenticated
            ? 'this cache token grants no write slice'
            : 'the request has no cache token';
        throw new http_error/* HttpError */.j(400, `lookup scope "write" asks the token's write slice, but ${why}`, 'no_write_slice');
    }
    const rank = (slice, owner) => (access.rank(slice, owner) === 0 ? 0 : null);
    return { ...access, rank, canRead: readableBy(rank) };
}

;// CONCATENATED MODULE: ./src/server/http/cache-handlers.ts








/** Narinfos can change which slice answers (a new push, a policy change): a CDN may keep them briefly. */
const NARINFO_MAX_AGE_SECONDS = 60;
/**
 * Caching for answers that depend on who asks: `public` only for requests without a token (what
 * they see, public slices hold, so a shared cache may keep it), `private` otherwise.
 */
function cacheScope(access) {
    return access.authenticated ? 'private' : 'public';
}
/** The upload limit for narinfos (and nix-cache-info), as the issue sets it. */
const NARINFO_UPLOAD_LIMIT = 64 * 1024;
const NIX_CACHE_INFO = 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n';
function send(res, status, headers, body = '') {
    res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
}
function getNixCacheInfo({ res }) {
    send(res, 200, { 'content-type': 'text/x-nix-cache-info' }, NIX_CACHE_INFO);
}
/** Nix PUTs a nix-cache-info when it finds none: ours is fixed, so the upload is read and dropped. */
async function putNixCacheInfo({ req, res, body }) {
    checkDeclaredLength(req, NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
    acceptBody(req, res);
    await readSmallBody(body(), NARINFO_UPLOAD_LIMIT, 'nix-cache-info');
    send(res, 204, {});
}
function notFound(what) {
    return new http_error/* HttpError */.j(404, `${what} not found`, 'not_found');
}
async function getNarInfo(cache, request, hashPart) {
    const access = scopedAccess(await request.access(), queryLookupScope(request.req));
    const body = await cache.narInfo(hashPart, access);
    if (body === undefined)
        throw notFound(`${hashPart}.narinfo`);
    send(request.res, 200, {
        'content-type': 'text/x-nix-narinfo',
        'cache-control': `${cacheScope(access)}, max-age=${NARINFO_MAX_AGE_SECONDS}`,
    }, body);
}
async function getNar(cache, request, key) {
    const { req, res } = request;
    const access = await request.access();
    const visible = await cache.narVisible(access, key, req.method === 'HEAD');
    const redirect = visible && req.method === 'GET' ? await cache.narRedirectUrl(key) : undefined;
    if (redirect !== undefined) {
        // The bytes come from the bucket, not through this server. The redirect itself lives only as
        // long as its signature, so nothing may keep it.
        res.writeHead(302, { location: redirect, 'cache-control': 'no-store', 'content-length': 0 });
        res.end();
        return;
    }
    const head = visible ? await cache.blobs.head(key) : null;
    if (!head)
        throw notFound(`nar/${key}`);
    const etag = `"${key}"`;
    const headers = {
        'content-type': 'application/x-nix-nar',
        // Content-addressed: the bytes under this name never change.
        'cache-control': `${cacheScope(access)}, max-age=31536000, immutable`,
        etag,
        'accept-ranges': 'bytes',
    };
    if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers).end();
        return;
    }
    const range = parseRange(req.headers.range, head.size);
    const status = range ? 206 : 200;
    const length = range ? range.end - range.start + 1 : head.size;
    if (range)
        headers['content-range'] = `bytes ${range.start}-${range.end}/${head.size}`;
    headers['content-length'] = length;
    if (req.method === 'HEAD') {
        res.writeHead(status, headers).end();
        return;
    }
    const body = await cache.blobs.open(key, range ?? undefined);
    if (!body)
        throw notFound(`nar/${key}`);
    res.writeHead(status, headers);
    try {
        await body.writeTo(res, (bytes) => cache.countBytesOut(bytes));
    }
    catch (error) {
        // The client went away mid-download: nothing to answer, nothing to report.
        if (!res.destroyed)
            throw error;
        return;
    }
    res.end();
}
/**
 * The preamble of every write, before its body is read: a token with a write slice, a declared
 * size within `limit`, a slice the writer may write; then `100 Continue` (unless `accept` is false:
 * the caller sends it once it has taken what else the write needs).
 */
async function beginWrite(cache, request, limit, what, accept = true) {
    const access = await request.access();
    const writer = {
        slice: requireWriteSlice(access),
        bindWrite: access.bindWrite,
        identity: access.identity,
    };
    checkDeclaredLength(request.req, limit, what);
    await cache.checkWriter(writer);
    if (accept)
        acceptBody(request.req, request.res);
    return writer;
}
/** A NAR upload: the preamble, an upload slot (429/503 when none is free), then the service. */
async function storeNar(deps, request, writer, upload) {
    const { req, res } = request;
    await deps.cache.markNarInUse(upload.key);
    const release = deps.uploadSlots.acquire(requestToken(req) ?? '');
    try {
        acceptBody(req, res);
        return await deps.cache.storeNar(writer, upload, request.body(), () => req.readableAborted);
    }
    finally {
        release();
    }
}
/** `PUT /nar/<filehash>.nar[.ext]`, as Nix uploads: the file must hash to its name. */
async function putNar(deps, request, nar) {
    const writer = await beginWrite(deps.cache, request, deps.cache.maxNarSize, 'NAR file', false);
    const { outcome } = await storeNar(deps, request, writer, {
        key: nar.key,
        compression: nar.compression,
        name: { fileHash: Hash.parse(`sha256:${nar.fileHash}`) },
    });
    send(request.res, outcome === 'created' ? 201 : 200, {});
}
/**
 * `PUT /_api/v1/nar/<narhash>.nar[.ext]`, as the Action's proxy uploads: the NAR inside must hash to
 * the name, which the uploader knows before compressing, so it streams without a FileHash pass of
 * its own. It is stored under the slice's own key (narHashKey), and the answer tells the uploader
 * what its narinfo must say about the file: its URL, FileHash and FileSize.
 */
async function putNarByNarHash(deps, request, nar) {
    const writer = await beginWrite(deps.cache, request, deps.cache.maxNarSize, 'NAR file', false);
    const { outcome, nar: stored } = await storeNar(deps, request, writer, {
        key: narHashKey(writer.slice, nar.narHash, nar.compression),
        compression: nar.compression,
        name: { narHash: Hash.parse(`sha256:${nar.narHash}`) },
    });
    const answer = {
        url: `nar/${stored.key}`,
        compression: stored.compression,
        file_hash: stored.fileHash.toString(),
        file_size: stored.fileSize,
        nar_hash: stored.narHash.toString(),
        nar_size: stored.narSize,
    };
    const body = JSON.stringify(answer);
    send(request.res, outcome === 'created' ? 201 : 200, { 'content-type': 'application/json' }, body);
}
async function putNarInfo(cache, request, hashPart) {
    const writer = await beginWrite(cache, request, NARINFO_UPLOAD_LIMIT, 'narinfo');
    const text = (await readSmallBody(request.body(), NARINFO_UPLOAD_LIMIT, 'narinfo')).toString('utf8');
    let info;
    try {
        info = parseNarInfo(text, { maxBytes: NARINFO_UPLOAD_LIMIT });
    }
    catch (error) {
        if (error instanceof NarInfoError)
            throw new http_error/* HttpError */.j(400, `malformed narinfo: ${error.message}`, 'bad_narinfo');
        throw error;
    }
    const outcome = await cache.storeNarInfo(writer, hashPart, info);
    send(request.res, outcome === 'created' ? 201 : 200, {});
}

;// CONCATENATED MODULE: ./src/server/http/nar-links-handler.ts
/**
 * NAR links (src/contracts/nar-links.ts): `POST /_api/v1/nar-links` answers, for each NAR the
 * request's token may read, where Nix may fetch it without the proxy: a presigned bucket URL, or
 * `nar/<file>?sig=\u2026` on this server, which carries the token's read right for that NAR alone
 * (`NarLinkSigner`). A NAR GET with `?sig=` is read with the link's grant instead of a header.
 */






/** 1000 NAR URLs as JSON are ~70 KB. */
const NAR_LINKS_BODY_LIMIT = 128 * 1024;
function badRequest(message) {
    return new http_error/* HttpError */.j(400, message, 'bad_request');
}
/** `{"nars": ["nar/<file>", ...]}` \u2192 NAR URL \u2192 blob key, each checked; errors name the bad one. */
function parseNarLinksRequest(body) {
    let json;
    try {
        json = JSON.parse(body.toString('utf8'));
    }
    catch (error) {
        throw badRequest(`request body is not JSON: ${error.message}`);
    }
    const nars = json?.nars;
    if (typeof json !== 'object' || Array.isArray(json) || !Array.isArray(nars))
        throw badRequest('request body must be {"nars": ["nar/<52-character nix32 hash>.nar[.ext]", ...]}');
    if (nars.length > NAR_LINKS_LIMIT)
        throw new http_error/* HttpError */.j(413, `${nars.length} NARs in one request; at most ${NAR_LINKS_LIMIT}`, 'too_many');
    const keys = new Map();
    nars.forEach((nar, index) => {
        const name = typeof nar === 'string' ? parseNarUrl(nar) : undefined;
        if (!name || name.compression === undefined)
            throw badRequest(`nars[${index}] ${JSON.stringify(nar)?.slice(0, 100)} is not nar/<52-character nix32 hash>.nar[.zst|.xz]`);
        keys.set(nar, name.key);
    });
    return keys;
}
async function postNarLinks(deps, request) {
    const { req, res } = request;
    const access = await request.access();
    checkDeclaredLength(req, NAR_LINKS_BODY_LIMIT, 'NAR link request');
    acceptBody(req, res);
    const keys = parseNarLinksRequest(await readSmallBody(request.body(), NAR_LINKS_BODY_LIMIT, 'NAR link request'));
    const { cache, signer } = deps;
    const expiresAt = signer.expiry(access.grant, cache.narRedirectTtlSeconds);
    const links = {};
    await Promise.all([...keys].map(async ([nar, key]) => {
        if (!(await cache.narVisible(access, key, false)))
            return;
        links[nar] =
            (await cache.narRedirectUrl(key)) ??
                // Without a token only public slices are read: the plain URL needs nothing more.
                (access.grant
                    ? `nar/${key}?${NAR_LINK_PARAM}=${signer.sign(key, access.grant, expiresAt)}`
                    : `nar/${key}`);
    }));
    const answer = { links, expires_in: Math.max(0, expiresAt - signer.nowSeconds()) };
    send(res, 200, { 'content-type': 'application/json', 'cache-control': 'no-store' }, JSON.stringify(answer));
}
/** The `sig` of a NAR GET's query, if it has one. */
function linkSignature(url) {
    const query = url?.split('?', 2)[1];
    return query === undefined ? undefined : (new URLSearchParams(query).get(NAR_LINK_PARAM) ?? undefined);
}
/**
 * The request as a NAR read sees it: with `?sig=`, the link's grant (checked now, as its token
 * would be) is the access, whatever else the request carries; otherwise the request's token.
 */
function narReadRequest(deps, request, key) {
    const signature = linkSignature(request.req.url);
    if (signature === undefined)
        return request;
    let access;
    return {
        ...request,
        access: () => (access ??= (async () => resolveGrantAccess(deps.signer.verify(key, signature), deps.verifyGrant, deps.isPublic))()),
    };
}

;// CONCATENATED MODULE: ./src/server/http/narinfo-batch-handler.ts
/**
 * `POST /_api/v1/narinfos`: many narinfo lookups in one request, for the Action's proxy, which
 * gathers the lookups Nix makes at the same moment. The access rules are those of
 * `GET /<hash>.narinfo` (the union of readable slices, public slices without a token; only the
 * write slice with `"scope": "write"`); the answer holds the signed narinfo of every hit and nothing
 * for a miss.
 */






/** 1000 hash parts as JSON are ~35 KB. */
const NARINFO_BATCH_BODY_LIMIT = 64 * 1024;
function narinfo_batch_handler_badRequest(message) {
    return new http_error/* HttpError */.j(400, message, 'bad_request');
}
/**
 * `{"hashParts": [...], "scope"?: "union" | "write"}` \u2192 the distinct hash parts, each checked, and
 * the scope; errors name the bad one.
 */
function parseBatchRequest(body) {
    let json;
    try {
        json = JSON.parse(body.toString('utf8'));
    }
    catch (error) {
        throw narinfo_batch_handler_badRequest(`request body is not JSON: ${error.message}`);
    }
    const hashParts = json?.hashParts;
    if (typeof json !== 'object' || Array.isArray(json) || !Array.isArray(hashParts))
        throw narinfo_batch_handler_badRequest('request body must be {"hashParts": ["<32-character nix32 hash>", ...]}');
    if (hashParts.length > NARINFO_BATCH_LIMIT) {
        throw new http_error/* HttpError */.j(413, `${hashParts.length} hash parts in one request; at most ${NARINFO_BATCH_LIMIT}`, 'too_many');
    }
    hashParts.forEach((hashPart, index) => {
        if (typeof hashPart !== 'string' || !HASH_PART_PATTERN.test(hashPart)) {
            throw narinfo_batch_handler_badRequest(`hashParts[${index}] ${JSON.stringify(hashPart)?.slice(0, 80)} is not a 32-character nix32 store path hash`);
        }
    });
    const scope = parseLookupScope(json.scope, 'scope');
    return { hashParts: [...new Set(hashParts)], scope };
}
async function postNarInfos(cache, request, publicReads) {
    const { req, res } = request;
    const access = await request.access();
    // A GET without a token is answered from public slices; with none, say what is missing
    // rather than answer every lookup with a miss.
    if (!access.authenticated && !publicReads) {
        throw new http_error/* HttpError */.j(401, 'narinfo lookups need a cache token: no slice is public', 'unauthenticated', {
            'www-authenticate': 'Bearer',
        });
    }
    checkDeclaredLength(req, NARINFO_BATCH_BODY_LIMIT, 'narinfo lookup request');
    acceptBody(req, res);
    const { hashParts, scope } = parseBatchRequest(await readSmallBody(request.body(), NARINFO_BATCH_BODY_LIMIT, 'narinfo lookup request'));
    const narinfos = await cache.narInfos(hashParts, scopedAccess(access, scope));
    send(res, 200, { 'content-type': 'application/json', 'cache-control': 'private, no-cache' }, JSON.stringify({ narinfos }));
}

;// CONCATENATED MODULE: ./src/server/http/narinfo-set-handler.ts
/**
 * `GET /_api/v1/narinfo-set[?since=<cursor>]`: the hash prefixes of the narinfos the token may read
 * (src/contracts/narinfo-set.ts), for the Action's proxy, which answers most of Nix's misses from
 * it. The access rules are those of the narinfo lookups (the union of readable slices, public
 * slices without a token).
 */


/** The largest cursor any store hands out (xid8 and SQLite integers both fit below 2^63). */
const CURSOR_LIMIT = 2n ** 63n;
/** `?since=`: absent for the whole set, else a cursor an earlier answer gave. */
function narinfo_set_handler_parseSince(url) {
    const query = new URL(url ?? '/', 'http://sluice.invalid').searchParams;
    const since = query.get('since');
    if (since === null)
        return null;
    if (!SET_CURSOR_PATTERN.test(since) || BigInt(since) >= CURSOR_LIMIT) {
        throw new http_error/* HttpError */.j(400, `query parameter since ${JSON.stringify(since.slice(0, 40))} is not a cursor (the digits of an earlier answer's "cursor")`, 'bad_cursor');
    }
    return since;
}
async function getNarInfoSet(cache, request, publicReads) {
    const { req, res } = request;
    const since = narinfo_set_handler_parseSince(req.url);
    const access = await request.access();
    if (!access.authenticated && !publicReads) {
        throw new http_error/* HttpError */.j(401, 'the narinfo set needs a cache token: no slice is public', 'unauthenticated', {
            'www-authenticate': 'Bearer',
        });
    }
    const { body, count } = await cache.narInfoSet(access, since);
    res.writeHead(200, {
        'content-type': NARINFO_SET_CONTENT_TYPE,
        'content-length': body.length,
        'cache-control': 'private, no-store',
        'x-sluice-set-count': count,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
}

;// CONCATENATED MODULE: ./src/server/http/paths.ts
/**
 * Request paths \u2192 routes. Every name the protocol uses is plain ASCII (nix32 hashes, fixed
 * suffixes), so anything encoded, any dot segment or backslash is refused before routing: there is
 * no decoding step for a traversal to hide behind.
 */







/** Repeatedly percent-decodes (bounded), so double encoding cannot hide a `..` or a separator. */
function fullyDecoded(path) {
    let current = path;
    for (let i = 0; i < 4; i++) {
        let next;
        try {
            next = decodeURIComponent(current);
        }
        catch {
            return current;
        }
        if (next === current)
            break;
        current = next;
    }
    return current;
}
function checkPath(rawUrl) {
    if (!rawUrl.startsWith('/'))
        throw new http_error/* HttpError */.j(400, `request target '${rawUrl.slice(0, 100)}' is not a path`, 'bad_path');
    const path = rawUrl.split('?', 1)[0];
    const decoded = fullyDecoded(path);
    if (decoded.includes('\\') ||
        decoded.split('/').some((segment) => segment === '..' || segment === '.') ||
        /\0/.test(decoded)) {
        throw new http_error/* HttpError */.j(400, 'path traversal is not allowed', 'bad_path');
    }
    if (path.includes('%'))
        throw new http_error/* HttpError */.j(400, 'percent-encoded characters are not allowed in cache paths', 'bad_path');
    if (path.includes('//'))
        throw new http_error/* HttpError */.j(400, 'empty path segments are not allowed', 'bad_path');
    return path;
}
function compressionOf(name) {
    if (name.compression === undefined) {
        throw new http_error/* HttpError */.j(400, `unsupported NAR compression '${name.extension}' (use .nar, .nar.zst or .nar.xz)`, 'bad_name');
    }
    return name.compression;
}
function matchRoute(rawUrl) {
    const path = checkPath(rawUrl);
    switch (path) {
        case '/nix-cache-info':
            return { name: 'nix-cache-info' };
        case HEALTH_PATH:
            return { name: 'health' };
        case TOKEN_EXCHANGE_PATH:
            return { name: 'token' };
        case NARINFO_BATCH_PATH:
            return { name: 'narinfos' };
        case NAR_LINKS_PATH:
            return { name: 'nar-links' };
        case NARINFO_SET_PATH:
            return { name: 'narinfo-set' };
        case '/metrics':
            return { name: 'metrics' };
        case '/_api/v1/pins':
            return { name: 'pins' };
    }
    const hashPart = path.endsWith('.narinfo') ? path.slice(1, -'.narinfo'.length) : undefined;
    if (hashPart !== undefined && HASH_PART_PATTERN.test(hashPart))
        return { name: 'narinfo', hashPart };
    if (path.endsWith('.narinfo') && !path.slice(1).includes('/')) {
        throw new http_error/* HttpError */.j(400, `'${path.slice(1, 120)}' is not <32-character nix32 store path hash>.narinfo`, 'bad_name');
    }
    const nar = path.startsWith('/nar/') ? parseNarFileName(path.slice('/nar/'.length)) : undefined;
    if (nar)
        return { name: 'nar', fileHash: nar.hash, compression: compressionOf(nar), key: nar.key };
    if (path.startsWith('/nar/')) {
        throw new http_error/* HttpError */.j(400, `'${path.slice(1, 120)}' is not nar/<52-character nix32 sha256>.nar[.zst|.xz]`, 'bad_name');
    }
    const upload = path.startsWith(NAR_UPLOAD_PREFIX)
        ? parseNarFileName(path.slice(NAR_UPLOAD_PREFIX.length))
        : undefined;
    if (upload)
        return { name: 'nar-upload', narHash: upload.hash, compression: compressionOf(upload), key: upload.key };
    if (path.startsWith(NAR_UPLOAD_PREFIX)) {
        throw new http_error/* HttpError */.j(400, `'${path.slice(1, 120)}' is not ${NAR_UPLOAD_PREFIX.slice(1)}<52-character nix32 NarHash>.nar[.zst|.xz]`, 'bad_name');
    }
    throw new http_error/* HttpError */.j(404, `no such endpoint: ${path.slice(0, 120)}`, 'not_found');
}

;// CONCATENATED MODULE: ./src/server/http/pins.ts
/**
 * `POST /_api/v1/pins`: the Action's daemon pins what its job pushed (input `pin: NAME`), with its
 * cache token: into the token's write slice only, so a pin is possible exactly where the policy
 * lets the job write. Body `{ "name": "v1.2", "paths": ["/nix/store/\u2026"], "ttl": "1y" }`, and
 * `"skip_missing": true` to pin those of the paths the slice holds (the daemon sends every path
 * the job built; some were not pushed because another slice or an upstream cache has them).
 */






const MAX_PATHS = 10_000;
const BODY_LIMIT = 2 * 1024 * 1024;
function bad(message) {
    return new http_error/* HttpError */.j(400, message, 'bad_pin');
}
function parsePinRequest(body) {
    let json;
    try {
        json = JSON.parse(body.toString('utf8'));
    }
    catch (error) {
        throw bad(`request body is not JSON: ${error.message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json))
        throw bad('request body must be {"name": "...", "paths": ["/nix/store/..."], "ttl"?: "1y"}');
    if (typeof json.name !== 'string' || !PIN_NAME_PATTERN.test(json.name))
        throw bad(`pin name ${JSON.stringify(json.name)} must be 1-100 letters, digits, . _ @ + -`);
    if (!Array.isArray(json.paths) || json.paths.length === 0)
        throw bad('paths must be a non-empty list of store paths');
    if (json.paths.length > MAX_PATHS)
        throw bad(`${json.paths.length} paths in one pin; at most ${MAX_PATHS}`);
    const paths = json.paths.map((path, index) => {
        try {
            return store_path_StorePath.parse(String(path)).toPath();
        }
        catch (error) {
            throw bad(`paths[${index}] ${JSON.stringify(path)?.slice(0, 120)} is not a store path: ${error.message}`);
        }
    });
    let ttlSeconds;
    if (json.ttl !== undefined) {
        try {
            ttlSeconds = parseDuration(json.ttl);
        }
        catch (error) {
            throw bad(`ttl: ${error.message}`);
        }
    }
    if (json.skip_missing !== undefined && typeof json.skip_missing !== 'boolean')
        throw bad('skip_missing must be true or false');
    return {
        name: json.name,
        paths: [...new Set(paths)],
        ...(ttlSeconds ? { ttlSeconds } : {}),
        skipMissing: json.skip_missing === true,
    };
}
async function postPin(cache, request) {
    const writer = await beginWrite(cache, request, BODY_LIMIT, 'pin request');
    const pin = parsePinRequest(await readSmallBody(request.body(), BODY_LIMIT, 'pin request'));
    const outcome = await cache.pin(writer, pin);
    send(request.res, 201, { 'content-type': 'application/json' }, JSON.stringify({
        slice: writer.slice,
        name: pin.name,
        paths: outcome.pinned,
        ...(outcome.missing ? { missing: outcome.missing } : {}),
        expires_at: outcome.expiresAt?.toISOString() ?? null,
    }));
}

;// CONCATENATED MODULE: ./src/server/http/router.ts









function routeTable(deps) {
    const narinfo = (route, request) => getNarInfo(deps.cache, request, route.hashPart);
    const links = {
        cache: deps.cache,
        signer: deps.narLinkSigner,
        verifyGrant: deps.verifyGrant,
        isPublic: deps.isPublic,
    };
    const nar = (route, request) => {
        const { key } = route;
        return getNar(deps.cache, narReadRequest(links, request, key), key);
    };
    return {
        'nix-cache-info': {
            GET: (_route, request) => getNixCacheInfo(request),
            HEAD: (_route, request) => getNixCacheInfo(request),
            PUT: (_route, request) => putNixCacheInfo(request),
        },
        narinfo: {
            GET: narinfo,
            HEAD: narinfo,
            PUT: (route, request) => putNarInfo(deps.cache, request, route.hashPart),
        },
        nar: {
            GET: nar,
            HEAD: nar,
            PUT: (route, request) => putNar(deps, request, route),
        },
        narinfos: {
            POST: (_route, request) => postNarInfos(deps.cache, request, deps.publicReads),
        },
        'nar-links': {
            POST: (_route, request) => postNarLinks(links, request),
        },
        'narinfo-set': {
            GET: (_route, request) => getNarInfoSet(deps.cache, request, deps.publicReads),
        },
        pins: {
            POST: (_route, request) => postPin(deps.cache, request),
        },
        'nar-upload': {
            PUT: (route, request) => putNarByNarHash(deps, request, route),
        },
        health: {
            GET: (_route, { res }) => {
                const body = JSON.stringify(deps.health());
                res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
                res.end(body);
            },
        },
        token: {
            POST: (_route, { req, res }) => {
                acceptBody(req, res);
                return deps.tokenHandler(req, res);
            },
        },
        metrics: {
            GET: async (_route, { res }) => {
                const body = await deps.metrics.registry.metrics();
                res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
                res.end(body);
            },
        },
    };
}
/** A narinfo (or nix-cache-info) read, alone or batched: Nix asks thousands per job. */
function isLookup(req, routeName) {
    if (routeName === 'narinfos' || routeName === 'narinfo-set')
        return true;
    return ((req.method === 'GET' || req.method === 'HEAD') &&
        (routeName === 'narinfo' || routeName === 'nix-cache-info'));
}
/** A request with a body: one we did not read must close the connection. */
function hasBody(req) {
    return req.method === 'PUT' || req.method === 'POST';
}
function createRouter(deps) {
    const table = routeTable(deps);
    return async (req, res) => {
        const started = performance.now();
        const path = (req.url ?? '/').split('?', 1)[0]?.slice(0, 200);
        let routeName = 'unknown';
        // 'close' rather than 'finish': a download the client abandons is counted and logged too.
        res.once('close', () => {
            const status = res.writableFinished ? res.statusCode : 499;
            deps.metrics.requests.inc({ route: routeName, method: req.method ?? '', status });
            // A lookup's log line cost as much CPU as the lookup: hits and misses go to debug (the
            // metrics count them all the same); errors and everything else stay at info.
            const level = isLookup(req, routeName) && (status === 200 || status === 404) ? 'debug' : 'info';
            if (deps.log.isLevelEnabled(level))
                deps.log[level]({ method: req.method, path, route: routeName, status, ms: Math.round(performance.now() - started) }, 'request');
        });
        try {
            const route = matchRoute(req.url ?? '/');
            routeName = route.name;
            deps.guard?.admit(req, route.name);
            const methods = table[route.name];
            const handler = methods[req.method ?? ''];
            if (!handler) {
                const allow = Object.keys(methods).join(', ');
                throw new http_error/* HttpError */.j(405, `${req.method} is not allowed on ${path} (allowed: ${allow})`, 'bad_method', { allow });
            }
            let access;
            const request = {
                req,
                res,
                access: () => (access ??= resolveAccess(req, deps.verifyToken, deps.isPublic)),
                body: () => withIdleTimeout(req, deps.bodyIdleTimeoutMs),
            };
            await handler(route, request);
        }
        catch (error) {
            if (error instanceof http_error/* HttpError */.j && error.status === 401)
                deps.guard?.refused(req, routeName);
            if (!(error instanceof http_error/* HttpError */.j))
                deps.log.error({ err: error, path }, 'request failed');
            else if (error.status === 503)
                deps.log.warn({ path, reason: error.message }, 'unavailable');
            else if (hasBody(req) && !['token', 'narinfos', 'nar-links'].includes(routeName))
                deps.metrics.rejectedUploads.inc({ reason: error.reason });
            // A body we did not read would be parsed as the next request: close the connection instead.
            if (hasBody(req) && !req.complete && !res.headersSent)
                res.setHeader('connection', 'close');
            (0,http_error/* sendError */.n)(res, error);
        }
    };
}

;// CONCATENATED MODULE: ./src/server/http/upload-slots.ts
/**
 * How many NAR uploads run at once, in all and per token. Each holds a decompressor (up to
 * `max_decompression_memory`) and two stage buffers for as long as its body takes, so the count is
 * what bounds the memory uploads can cost. Beyond it a new upload is refused before its body is
 * asked for: 429 when its own token has too many (that client should slow down), 503 when the
 * server is full; both with Retry-After, which the Action's proxy honours and Nix retries through.
 */


/** Seconds: an upload slot frees up as soon as any upload ends. */
const UPLOAD_RETRY_AFTER_SECONDS = 2;
class UploadSlots {
    limits;
    active = 0;
    /** Uploads in progress per token, keyed by the token's hash (no token kept in memory). */
    perToken = new Map();
    constructor(limits) {
        this.limits = limits;
    }
    /** Takes a slot for an upload made with `token`, or throws 429/503; call the result once it ends. */
    acquire(token) {
        const key = (0,external_node_crypto_.createHash)('sha256').update(token).digest('base64url');
        const mine = this.perToken.get(key) ?? 0;
        const retryAfter = { 'retry-after': String(UPLOAD_RETRY_AFTER_SECONDS) };
        if (mine >= this.limits.maxConcurrentUploadsPerToken) {
            throw new http_error/* HttpError */.j(429, `this token already has ${mine} uploads in progress, the most one token may have ` +
                '(max_concurrent_uploads_per_token): retry once one has ended', 'token_upload_limit', retryAfter);
        }
        if (this.active >= this.limits.maxConcurrentUploads) {
            throw new http_error/* HttpError */.j(503, `the server has ${this.active} uploads in progress, the most it takes at once ` +
                '(max_concurrent_uploads): retry shortly', 'server_upload_limit', retryAfter);
        }
        this.active++;
        this.perToken.set(key, mine + 1);
        let released = false;
        return () => {
            if (released)
                return;
            released = true;
            this.active--;
            const left = (this.perToken.get(key) ?? 1) - 1;
            if (left === 0)
                this.perToken.delete(key);
            else
                this.perToken.set(key, left);
        };
    }
}

;// CONCATENATED MODULE: ./src/server/http/token-handler.ts



/** The token of an `Authorization: Bearer \u2026` header, or a 401 saying what is missing. */
function bearerToken(req) {
    const token = bearerCredential(req.headers.authorization);
    if (!token) {
        throw new http_error/* HttpError */.j(401, 'missing Authorization: Bearer <CI OIDC ID token>', 'missing_token', {
            'www-authenticate': 'Bearer',
        });
    }
    return token;
}
function createTokenHandler(options) {
    return async (req, res) => {
        req.resume(); // the request body, if any, carries nothing
        const idToken = bearerToken(req);
        const { token, expiresAt, grant } = await asHttp(() => options.exchange.exchange(idToken));
        const body = {
            token,
            expires_at: expiresAt.toISOString(),
            read: grant.read,
            write: grant.write,
            public_keys: options.publicKeys,
            cache_url: options.cacheUrl,
        };
        const text = JSON.stringify(body);
        res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
            'cache-control': 'no-store',
        });
        res.end(text);
    };
}

// EXTERNAL MODULE: ./node_modules/prom-client/index.js
var prom_client = __nccwpck_require__(5222);
;// CONCATENATED MODULE: ./src/server/metrics.ts
/** Prometheus metrics on a registry of the server's own (so two servers in one process don't mix). */

class ServerMetrics {
    registry = new prom_client.Registry();
    requests = new prom_client.Counter({
        name: 'sluice_http_requests_total',
        help: 'HTTP requests by route, method and status',
        labelNames: ['route', 'method', 'status'],
        registers: [this.registry],
    });
    narinfoLookups = new prom_client.Counter({
        name: 'sluice_narinfo_lookups_total',
        help: 'narinfo GET/HEAD lookups by result (hit or miss)',
        labelNames: ['result'],
        registers: [this.registry],
    });
    bytesIn = new prom_client.Counter({
        name: 'sluice_bytes_in_total',
        help: 'Request body bytes received for uploads',
        registers: [this.registry],
    });
    bytesOut = new prom_client.Counter({
        name: 'sluice_bytes_out_total',
        help: 'NAR bytes sent',
        registers: [this.registry],
    });
    narinfoConflicts = new prom_client.Counter({
        name: 'sluice_narinfo_conflicts_total',
        help: 'Lookups where readable slices hold different narinfos (NarHash) for one store path; answered by precedence',
        registers: [this.registry],
    });
    rejectedUploads = new prom_client.Counter({
        name: 'sluice_rejected_uploads_total',
        help: 'Uploads (NARs and narinfos) refused, by reason',
        labelNames: ['reason'],
        registers: [this.registry],
    });
    rateLimited = new prom_client.Counter({
        name: 'sluice_rate_limited_total',
        help: 'Requests answered 429, by limit (token_exchanges, failed_auth)',
        labelNames: ['limit'],
        registers: [this.registry],
    });
    sliceBytes = new prom_client.Gauge({
        name: 'sluice_slice_bytes',
        help: 'Bytes of NAR files per slice, as of the last collection',
        labelNames: ['slice'],
        registers: [this.registry],
    });
    slicePaths = new prom_client.Gauge({
        name: 'sluice_slice_paths',
        help: 'Store paths per slice, as of the last collection',
        labelNames: ['slice'],
        registers: [this.registry],
    });
    gcCollectedBytes = new prom_client.Counter({
        name: 'sluice_gc_collected_bytes_total',
        help: 'Bytes removed by garbage collection: narinfos by reason (age, size, pr-ttl), NAR files (orphan, unused)',
        labelNames: ['reason'],
        registers: [this.registry],
    });
    gcRuns = new prom_client.Counter({
        name: 'sluice_gc_runs_total',
        help: 'Garbage collections by result (done, skipped, failed)',
        labelNames: ['result'],
        registers: [this.registry],
    });
    constructor() {
        (0,prom_client.collectDefaultMetrics)({ register: this.registry, prefix: 'sluice_' });
    }
}

;// CONCATENATED MODULE: ./src/server/retention/access.ts
class ReadRecorder {
    store;
    now;
    refreshMs;
    constructor(store, now, refreshMs) {
        this.store = store;
        this.now = now;
        this.refreshMs = refreshMs;
    }
    /**
     * Records the reads of these rows before they are answered; false when one of them was deleted
     * meanwhile (by a collector), so the caller looks it up again rather than serve a removed path.
     */
    async record(records) {
        const now = this.now();
        const stale = [...records].filter((record) => +(record.lastAccessedAt ?? record.createdAt) < now - this.refreshMs);
        if (stale.length === 0)
            return true;
        const found = await this.store.touchNarInfos(stale, new Date(now));
        return found === stale.length;
    }
}

;// CONCATENATED MODULE: ./src/server/retention/scheduler.ts

const MAX_TIMER_MS = 2 ** 31 - 1;
function recordReport(metrics, report) {
    if (report.skipped) {
        metrics.gcRuns.inc({ result: 'skipped' });
        return;
    }
    metrics.gcRuns.inc({ result: 'done' });
    for (const slice of report.slices) {
        metrics.sliceBytes.set({ slice: slice.slice }, slice.kept.bytes);
        metrics.slicePaths.set({ slice: slice.slice }, slice.kept.paths);
        for (const [reason, tally] of Object.entries(slice.removed))
            metrics.gcCollectedBytes.inc({ reason }, tally.bytes);
        // A slice emptied by this run no longer exists.
        if (slice.kept.paths === 0) {
            metrics.sliceBytes.remove({ slice: slice.slice });
            metrics.slicePaths.remove({ slice: slice.slice });
        }
    }
    for (const nar of report.nars)
        metrics.gcCollectedBytes.inc({ reason: nar.reason }, nar.bytes);
}
function startGcScheduler(deps, intervalSeconds, metrics, log) {
    let running;
    const run = (options = {}) => {
        const previous = running ?? Promise.resolve(undefined);
        const next = previous
            .catch(() => undefined)
            .then(() => collectGarbage(deps, options))
            .then((report) => {
            if (!report.dryRun)
                recordReport(metrics, report);
            log.info({
                dryRun: report.dryRun,
                skipped: report.skipped,
                removedPaths: report.slices.reduce((sum, slice) => sum + slice.removedPaths.length, 0),
                removedNars: report.nars.length,
                removedNarBytes: report.nars.reduce((sum, nar) => sum + nar.bytes, 0),
                abortedUploads: report.abortedUploads,
            }, 'garbage collection');
            return report;
        });
        running = next;
        next.catch((error) => {
            metrics.gcRuns.inc({ result: 'failed' });
            log.error({ err: error }, 'garbage collection failed');
        });
        return next;
    };
    // Node runs a longer delay than 2^31-1 ms (24.8 days) after 1 ms instead: cap it.
    const timer = setInterval(() => void run().catch(() => undefined), Math.min(intervalSeconds * 1000, MAX_TIMER_MS));
    timer.unref();
    return {
        run,
        async stop() {
            clearInterval(timer);
            await running?.catch(() => undefined);
        },
    };
}

;// CONCATENATED MODULE: ./src/server/index.ts
/**
 * `startServer(config)`: opens the keys and the stores (the data directory, or PostgreSQL and a bucket), wires the
 * token exchange and the cache protocol, listens. `close()` stops accepting connections and lets
 * requests in flight (uploads included) finish before the database closes.
 */



















function writerIdentity(grant) {
    if (grant.kind !== 'ci')
        return {};
    const id = grant.identity;
    return {
        issuer: id.issuer,
        repository: id.repository,
        repositoryId: id.repository_id,
        repositoryOwnerId: id.repository_owner_id,
        ref: id.ref,
        workflow: id.workflow,
        runId: id.run_id,
        sha: id.sha,
    };
}
function accessFromGrant(grant) {
    return {
        grant,
        rank: grantRanking(grant),
        write: grant.write,
        bindWrite: grant.bindWrite === true,
        identity: writerIdentity(grant),
    };
}
function urlOf(address) {
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
}
async function startServer(config, options = {}) {
    const log = createLogger(options.logDestination);
    const paths = dataPaths(config.data);
    const dataDir = paths.root;
    const { signingKey, tokenKey } = await loadServerKeys(config, dataDir);
    const storage = await openStorage(config, paths, log);
    const { blobs, meta } = storage;
    const metrics = new ServerMetrics();
    const now = options.clock ?? Date.now;
    const gc = startGcScheduler({
        blobs,
        meta,
        config,
        now,
        ...(options.beforeBlobDelete ? { beforeBlobDelete: options.beforeBlobDelete } : {}),
    }, config.gcIntervalSeconds, metrics, log);
    const exchange = createExchange(config, tokenKey, { ...options.exchange, store: meta });
    const publicSlices = exchange.publicSlices();
    const isPublic = (slice) => publicSlices.some((pattern) => readCovers(pattern, slice));
    let cacheUrl = config.publicUrl ?? '';
    let tokenHandler;
    const server = (0,external_node_http_.createServer)();
    const verifiers = options.verifiers ?? new VerifyPool();
    const cache = new CacheService({
        blobs,
        meta,
        narinfoSigner: new NarInfoSigner(signingKey),
        ...(storage.s3?.config.presignedDownloads
            ? {
                narRedirect: (key) => storage.s3.store.presignedGetUrl(key, storage.s3.config.presignTtlSeconds),
                narRedirectTtlSeconds: storage.s3.config.presignTtlSeconds,
            }
            : {}),
        narLimits: {
            maxNarSize: config.maxNarSize,
            maxRatio: config.uploads.maxCompressionRatio,
            maxDecompressionMemory: config.uploads.maxDecompressionMemory,
        },
        verifiers,
        metrics,
        log,
        now,
        reads: new ReadRecorder(meta, now, (config.gcGraceSeconds * 1000) / 4),
    });
    const router = createRouter({
        cache,
        uploadSlots: new UploadSlots(config.uploads),
        bodyIdleTimeoutMs: config.uploads.bodyIdleTimeoutMs,
        metrics,
        log,
        verifyToken: async (token) => accessFromGrant(await exchange.verifyCacheToken(token)),
        verifyGrant: async (grant) => {
            await exchange.checkGrant(grant);
            return accessFromGrant(grant);
        },
        narLinkSigner: new NarLinkSigner(tokenKey, options.exchange?.now),
        isPublic,
        publicReads: publicSlices.length > 0,
        guard: createRequestGuard(config.rateLimits, config.trustProxy, options.exchange?.now, (limit) => metrics.rateLimited.inc({ limit })),
        // Made on first use: the cache URL is known only once listening (port 0).
        tokenHandler: (req, res) => (tokenHandler ??= createTokenHandler({ exchange, publicKeys: [signingKey.publicKey.text], cacheUrl }))(req, res),
        // public_reads tells the Action whether a job without an ID token (a fork's pull request) can
        // still read: only when some slice is public.
        health: () => ({
            status: 'ok',
            public_key: signingKey.publicKey.text,
            public_keys: [signingKey.publicKey.text],
            public_reads: publicSlices.length > 0,
        }),
    });
    let stopping = false;
    const handle = (req, res) => {
        // Draining: answer, then let the keep-alive connection go instead of waiting for its timeout.
        if (stopping)
            res.setHeader('connection', 'close');
        res.on('finish', () => {
            if (stopping)
                setImmediate(() => server.closeIdleConnections());
        });
        void router(req, res);
    };
    server.on('request', handle);
    // With a 'checkContinue' listener Node leaves the 100 Continue to us: handlers send it only once
    // the token and the declared size passed, so a refused upload's body is never sent.
    server.on('checkContinue', handle);
    await new Promise((resolveListen, reject) => {
        server.once('error', reject);
        server.listen(config.listen.port, config.listen.host, () => {
            server.off('error', reject);
            resolveListen();
        });
    }).catch(async (error) => {
        await gc.stop();
        await storage.close();
        throw error;
    });
    const url = urlOf(server.address());
    cacheUrl ||= url;
    log.info({ url, dataDir, publicKey: signingKey.publicKey.text }, 'sluice server listening');
    let closing;
    return {
        url,
        publicKey: signingKey.publicKey.text,
        dataDir,
        log,
        collectGarbage: (collectOptions) => gc.run(collectOptions),
        close: () => (closing ??= (async () => {
            stopping = true;
            await gc.stop();
            await new Promise((done) => {
                server.close(() => done());
                server.closeIdleConnections();
            });
            await verifiers.close();
            await storage.close();
            log.info('sluice server stopped');
        })()),
    };
}

;// CONCATENATED MODULE: ./src/cli/serve-command.ts
/**
 * `sluice serve [--config FILE] [--listen HOST:PORT] [--data DIR]`: runs the cache server until
 * SIGTERM or SIGINT, then lets requests in flight (uploads included) finish before exiting.
 * JSON logs go to stdout; the human banner (URL, public key) goes to stderr, so log shippers
 * reading stdout only ever see JSON.
 */



const SERVE_USAGE = `usage: sluice serve [--config sluice.yml] [--listen HOST:PORT] [--data DIR]

  --config FILE       YAML configuration (every key optional; see docs/server.md)
  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080)
  --data DIR          data directory: keys, sluice.db, NAR files (default ./sluice-data)

environment:
  SLUICE_DATABASE_URL  PostgreSQL URL; overrides the config's 'database'
  AWS_*                S3 credentials for storage.blobs type s3 (the AWS SDK's standard chain)
`;
/** Starts the server from command-line flags; resolves to the running server, or an exit code for bad usage. */
async function startFromArgs(argv, io) {
    let values;
    try {
        ({ values } = (0,external_node_util_.parseArgs)({
            args: argv,
            options: {
                config: { type: 'string' },
                listen: { type: 'string' },
                data: { type: 'string' },
                help: { type: 'boolean', short: 'h' },
            },
            allowPositionals: false,
        }));
    }
    catch (error) {
        io.stderr.write(`sluice serve: ${error.message}\n${SERVE_USAGE}`);
        return 2;
    }
    if (values.help) {
        io.stdout.write(SERVE_USAGE);
        return 0;
    }
    try {
        const config = applyEnvironment(applyCliOverrides(await loadConfig(values.config), { listen: values.listen, data: values.data }));
        const server = await startServer(config, {
            logDestination: io.stdout,
        });
        io.stderr.write(`Sluice is serving the cache at ${server.url}\n` +
            `data directory: ${server.dataDir}\n` +
            `public key (for trusted-public-keys): ${server.publicKey}\n`);
        return server;
    }
    catch (error) {
        // One line, never a stack: a ConfigError names the key and the problem.
        const message = error.message || String(error);
        io.stderr.write(`sluice serve: ${message.split('\n', 1)[0]}\n`);
        return 1;
    }
}
/** Runs `sluice serve \u2026` until a signal; returns the exit code. */
async function runServe(argv, io = process) {
    const started = await startFromArgs(argv, io);
    if (typeof started === 'number')
        return started;
    await new Promise((resolve) => {
        const stop = (signal) => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            io.stderr.write(`sluice serve: ${signal}, finishing requests in flight\n`);
            resolve();
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
    });
    await started.close();
    return 0;
}

;// CONCATENATED MODULE: ./src/cli/token-command.ts
/**
 * `sluice token create | list | revoke`: read-only cache tokens for people and machines, signed with
 * the server token key in the data directory and recorded in its database, where every replica
 * checks them (so a revoked token stops working everywhere).
 */










const TOKEN_USAGE = `usage: sluice token create --read 'owner/*' [--read \u2026] [--ttl 30d] [--name NAME] [--data DIR] [--config FILE]
       sluice token list [--all] [--json] [--data DIR] [--config FILE]
       sluice token revoke ID [--data DIR] [--config FILE]

  create   print a new read-only token (its lifetime at most the config's max_read_token_ttl)
  list     tokens still valid: id, name, patterns, created, expires, last used (--all: also
           revoked and expired ones)
  revoke   refuse the token with this id from now on, on every server sharing the database
`;
const DEFAULT_READ_TOKEN_TTL = '30d';
const COMMON_OPTIONS = { data: { type: 'string' }, config: { type: 'string' } };
/** Runs `sluice token \u2026` (argv after `token`); returns the exit code. */
async function runToken(argv, io = process) {
    const [subcommand, ...rest] = argv;
    const run = subcommand === undefined ? undefined : SUBCOMMANDS[subcommand];
    if (!run) {
        io.stderr.write(subcommand === undefined
            ? TOKEN_USAGE
            : `sluice token: unknown subcommand '${subcommand}'\n${TOKEN_USAGE}`);
        return 2;
    }
    try {
        return await run(rest, io);
    }
    catch (error) {
        const usage = error.code?.startsWith('ERR_PARSE_ARGS') ? TOKEN_USAGE : '';
        io.stderr.write(`sluice token ${subcommand}: ${error.message}\n${usage}`);
        return usage ? 2 : 1;
    }
}
const SUBCOMMANDS = {
    create: createToken,
    list: listTokens,
    revoke: revokeToken,
};
async function configFor(values) {
    return applyEnvironment(applyCliOverrides(await loadConfig(values.config), { data: values.data }));
}
/** The data directory's database; `mustExist` for commands that only read or change records. */
async function withStore(config, mustExist, use) {
    let store;
    if (config.database) {
        // The replicas' PostgreSQL (`database`, SLUICE_DATABASE_URL), loaded only when configured.
        const { PgMetadataStore } = await Promise.all(/* import() */[__nccwpck_require__.e(849), __nccwpck_require__.e(493)]).then(__nccwpck_require__.bind(__nccwpck_require__, 3493));
        store = await PgMetadataStore.open(config.database.url);
    }
    else {
        const { database } = dataPaths(config.data);
        if (mustExist && !(0,external_node_fs_.existsSync)(database))
            throw new Error(`no Sluice database at ${database} (is --data right?)`);
        store = new SqliteMetadataStore(database);
    }
    try {
        return await use(store);
    }
    finally {
        await store.close();
    }
}
async function createToken(argv, io) {
    const { values } = (0,external_node_util_.parseArgs)({
        args: argv,
        options: {
            read: { type: 'string', multiple: true },
            ttl: { type: 'string', default: DEFAULT_READ_TOKEN_TTL },
            name: { type: 'string', default: 'read-token' },
            ...COMMON_OPTIONS,
        },
        allowPositionals: false,
    });
    const read = (values.read ?? [])
        .flatMap((item) => item.split(','))
        .map((item) => item.trim())
        .filter(Boolean);
    if (read.length === 0) {
        io.stderr.write(`sluice token create: --read is required (a slice name or pattern such as 'acme/*')\n${TOKEN_USAGE}`);
        return 2;
    }
    const ttlSeconds = parseTtl(values.ttl);
    const config = await configFor(values);
    const keyPath = tokenKeyFileOf(config);
    // A key file named in the config is shared by replicas: used as it is, never created here.
    const { key, created } = config.keys.tokenKeyFile
        ? { key: parseTokenKey((await (0,promises_.readFile)(keyPath, 'utf8')).trim(), keyPath), created: false }
        : await loadOrCreateTokenKey(keyPath);
    if (created)
        io.stderr.write(`sluice: created a new token key at ${keyPath}: tokens verify only on a server using this data directory\n`);
    const { token, expiresAt, id } = await withStore(config, false, (store) => createExchange(config, key, { store }).createReadToken({ read, ttlSeconds, name: values.name }));
    io.stderr.write(`read token '${values.name}' (id ${id}) for ${read.join(', ')}, expires ${expiresAt.toISOString()}\n`);
    io.stdout.write(`${token}\n`);
    return 0;
}
const LIST_COLUMNS = ['id', 'name', 'read', 'created', 'expires', 'last_used', 'status'];
function listRecord(token, now) {
    const iso = (date) => (date ? date.toISOString() : null);
    return {
        id: token.id,
        name: token.name,
        read: token.read.join(','),
        created: iso(token.createdAt),
        expires: iso(token.expiresAt),
        last_used: iso(token.lastUsedAt),
        status: token.revokedAt ? 'revoked' : token.expiresAt <= now ? 'expired' : 'valid',
    };
}
async function listTokens(argv, io) {
    const { values } = (0,external_node_util_.parseArgs)({
        args: argv,
        options: { all: { type: 'boolean' }, json: { type: 'boolean' }, ...COMMON_OPTIONS },
        allowPositionals: false,
    });
    const config = await configFor(values);
    const now = new Date();
    const records = (await withStore(config, true, (store) => store.listReadTokens()))
        .map((token) => listRecord(token, now))
        .filter((record) => values.all || record.status === 'valid');
    if (!values.json)
        io.stdout.write(`${LIST_COLUMNS.join('\t')}\n`);
    for (const record of records) {
        io.stdout.write(values.json
            ? `${JSON.stringify(record)}\n`
            : `${LIST_COLUMNS.map((column) => record[column] ?? '-').join('\t')}\n`);
    }
    return 0;
}
async function revokeToken(argv, io) {
    const { values, positionals } = (0,external_node_util_.parseArgs)({ args: argv, options: COMMON_OPTIONS, allowPositionals: true });
    if (positionals.length !== 1) {
        io.stderr.write(`sluice token revoke: give exactly one token id (see 'sluice token list')\n${TOKEN_USAGE}`);
        return 2;
    }
    const id = positionals[0];
    const config = await configFor(values);
    const found = await withStore(config, true, (store) => store.revokeReadToken(id, new Date()));
    if (!found) {
        io.stderr.write(`sluice token revoke: no token with id '${id}' (see 'sluice token list --all')\n`);
        return 1;
    }
    io.stderr.write(`revoked read token ${id}\n`);
    return 0;
}
function parseTtl(text) {
    try {
        return parseDuration(text);
    }
    catch (error) {
        if (error instanceof ConfigError)
            throw new ConfigError(`--ttl: ${error.message}`);
        throw error;
    }
}

;// CONCATENATED MODULE: ./src/cli/index.ts
/** The `sluice` command line: `serve`, `token create`, `audit`, `keys generate`, `gc`, `pin`, `slices`. */







const COMMANDS = {
    serve: { usage: SERVE_USAGE, run: runServe },
    token: { usage: TOKEN_USAGE, run: runToken },
    audit: { usage: AUDIT_USAGE, run: runAudit },
    keys: { usage: KEYS_USAGE, run: runKeys },
    gc: { usage: GC_USAGE, run: runGc },
    pin: { usage: PIN_USAGE, run: runPin },
    slices: { usage: SLICES_USAGE, run: runSlices },
};
const USAGE = `usage: sluice <command> [options]

commands:
  serve          run the cache server
  token create   print a read-only cache token (for people and machines)
  token list     list read tokens; token revoke ID: refuse one from now on
  audit          list accepted writes
  keys generate  write key files for replicas that share one signing key
  gc             collect garbage now (retention, pins, orphans); --dry-run shows what would go
  pin            pin store paths and their closures in a slice (add, list, rm)
  slices         list slices: size, paths, quota use, last push, pins

'sluice <command> --help' explains a command.
`;
async function run(argv) {
    const [command, ...rest] = argv;
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
        process.stdout.write(USAGE);
        return;
    }
    const entry = COMMANDS[command];
    if (!entry) {
        process.stderr.write(`sluice: unknown command '${command}'\n${USAGE}`);
        process.exitCode = 2;
        return;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(entry.usage);
        return;
    }
    process.exitCode = await entry.run(rest);
}


/***/ }),

/***/ 793:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* unused harmony export NODE_NEEDED */
/**
 * Imported first by the CLI bundle: a Node without `node:sqlite` (Node 20) would otherwise die with
 * a stack trace while the bundle loads. Bundled modules run in import order, so this check runs
 * before any module that needs Node 24.
 */
const NODE_NEEDED = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < NODE_NEEDED) {
    process.stderr.write(`sluice needs Node.js ${NODE_NEEDED} or later; this is Node.js ${process.version}\n`);
    process.exit(1);
}


/***/ }),

/***/ 7288:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* harmony export */ __nccwpck_require__.d(__webpack_exports__, {
/* harmony export */   j: () => (/* binding */ HttpError),
/* harmony export */   n: () => (/* binding */ sendError)
/* harmony export */ });
class HttpError extends Error {
    status;
    reason;
    headers;
    constructor(status, message, 
    /** A short machine-readable reason, for metrics labels (`rejected_uploads{reason=\u2026}`). */
    reason = 'error', headers = {}) {
        super(message);
        this.status = status;
        this.reason = reason;
        this.headers = headers;
    }
}
/**
 * Answers with the error's status and a plain-text message. When headers were already sent the
 * response cannot change status any more, so it is destroyed instead.
 */
function sendError(res, error) {
    const status = error instanceof HttpError ? error.status : 500;
    const message = error instanceof HttpError ? error.message : 'internal server error';
    if (res.headersSent) {
        res.destroy(error instanceof Error ? error : undefined);
        return;
    }
    const body = `${message}\n`;
    res.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        ...(error instanceof HttpError ? error.headers : {}),
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
}


/***/ }),

/***/ 9921:
/***/ ((module, __unused_webpack___webpack_exports__, __nccwpck_require__) => {

__nccwpck_require__.a(module, async (__webpack_handle_async_dependencies__, __webpack_async_result__) => { try {
/* harmony import */ var _cli_node_version_js__WEBPACK_IMPORTED_MODULE_0__ = __nccwpck_require__(793);
/* harmony import */ var _cli_index_js__WEBPACK_IMPORTED_MODULE_1__ = __nccwpck_require__(2513);


await (0,_cli_index_js__WEBPACK_IMPORTED_MODULE_1__/* .run */ .e)(process.argv.slice(2));

__webpack_async_result__();
} catch(e) { __webpack_async_result__(e); } }, 1);

/***/ }),

/***/ 6212:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* harmony export */ __nccwpck_require__.d(__webpack_exports__, {
/* harmony export */   M: () => (/* binding */ written),
/* harmony export */   P: () => (/* binding */ BufferPool)
/* harmony export */ });
/**
 * Buffers of one size that NAR bytes pass through, kept for reuse. On the machines Sluice runs
 * on, a fresh buffer per chunk costs more than the copying it serves: its pages fault in, and
 * V8 runs full collections over the churn. Only a bounded number are kept, and with `idleMs`
 * none once the pool has gone unused that long.
 */
class BufferPool {
    size;
    maxKept;
    idleMs;
    shared;
    free = [];
    idleTimer;
    constructor(size, maxKept, idleMs, 
    /** Each buffer a whole SharedArrayBuffer, which worker threads can read without a copy. */
    shared = false) {
        this.size = size;
        this.maxKept = maxKept;
        this.idleMs = idleMs;
        this.shared = shared;
    }
    take() {
        const kept = this.free.pop();
        if (kept)
            return kept;
        return this.shared ? Buffer.from(new SharedArrayBuffer(this.size)) : Buffer.allocUnsafeSlow(this.size);
    }
    /** Only buffers nothing reads or writes any more, and that came from `take`. */
    give(buffers) {
        for (const buffer of buffers)
            if (this.free.length < this.maxKept)
                this.free.push(buffer);
        if (this.idleMs === undefined)
            return;
        clearTimeout(this.idleTimer);
        this.idleTimer = setTimeout(() => this.clear(), this.idleMs).unref();
    }
    /** Buffers kept for the next `take`s. */
    get kept() {
        return this.free.length;
    }
    clear() {
        clearTimeout(this.idleTimer);
        this.free.length = 0;
    }
}
/**
 * Resolves once `sink` is done with `chunk`, so that its buffer may be reused (for a socket or
 * zlib, once the write callback has run); rejects if the write fails or `sink` closes first.
 */
function written(sink, chunk) {
    return new Promise((resolve, reject) => {
        const closed = () => reject(new Error('the destination closed before taking all the bytes'));
        sink.once('close', closed);
        sink.write(chunk, (error) => {
            sink.off('close', closed);
            if (error)
                reject(error);
            else
                resolve();
        });
    });
}


/***/ }),

/***/ 382:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* harmony export */ __nccwpck_require__.d(__webpack_exports__, {
/* harmony export */   B: () => (/* binding */ isValidBlobKey)
/* harmony export */ });
/** Blob keys are plain file names: no separators, no dot segments, nothing to encode. */
function isValidBlobKey(key) {
    return /^[0-9a-z][0-9a-z.]{0,99}$/.test(key) && !key.includes('..');
}


/***/ }),

/***/ 9848:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* harmony export */ __nccwpck_require__.d(__webpack_exports__, {
/* harmony export */   A7: () => (/* binding */ NARINFOS_WITH_OWNER),
/* harmony export */   GE: () => (/* binding */ auditEntry),
/* harmony export */   X8: () => (/* binding */ narInfoRecord),
/* harmony export */   du: () => (/* binding */ sliceOwnerOf),
/* harmony export */   gx: () => (/* binding */ str),
/* harmony export */   lq: () => (/* binding */ optional)
/* harmony export */ });
const str = (v) => String(v);
const optional = (v) => v === null || v === undefined ? undefined : String(v);
/** A slice binding from a row's columns (with `prefix`), or null for an unbound slice. */
function sliceOwnerOf(row, prefix = '') {
    if (row[`${prefix}repository_id`] === null || row[`${prefix}repository_id`] === undefined)
        return null;
    return {
        issuer: str(row[`${prefix}issuer`]),
        repositoryId: str(row[`${prefix}repository_id`]),
        repositoryOwnerId: str(row[`${prefix}repository_owner_id`]),
    };
}
function narInfoRecord(row) {
    const signedBy = optional(row.signed_by);
    return {
        slice: str(row.slice),
        hashPart: str(row.hash_part),
        storePath: str(row.store_path),
        narKey: str(row.nar_key),
        narinfo: str(row.narinfo),
        createdAt: new Date(Number(row.created_at)),
        owner: sliceOwnerOf(row, 'owner_'),
        // Absent until the first read recorded after the push (retention/access.ts): createdAt then.
        ...(row.last_accessed_at === null || row.last_accessed_at === undefined
            ? {}
            : { lastAccessedAt: new Date(Number(row.last_accessed_at)) }),
        ...(signedBy === undefined ? {} : { signedBy }),
    };
}
/** Narinfo rows with their slice's binding, for the lookups' filters. */
const NARINFOS_WITH_OWNER = `SELECT n.*, s.issuer AS owner_issuer, s.repository_id AS owner_repository_id,
    s.repository_owner_id AS owner_repository_owner_id
  FROM narinfos n LEFT JOIN slices s ON s.name = n.slice`;
function auditEntry(r) {
    return {
        time: new Date(Number(r.time)),
        slice: str(r.slice),
        storePath: str(r.store_path),
        narSize: Number(r.nar_size),
        fileSize: Number(r.file_size),
        repository: optional(r.repository),
        repositoryId: optional(r.repository_id),
        ref: optional(r.ref),
        workflow: optional(r.workflow),
        runId: optional(r.run_id),
        sha: optional(r.sha),
    };
}


/***/ }),

/***/ 7927:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {

/* harmony export */ __nccwpck_require__.d(__webpack_exports__, {
/* harmony export */   V$: () => (/* binding */ describeCause),
/* harmony export */   y7: () => (/* binding */ StorageUnavailableError)
/* harmony export */ });
/* unused harmony export RETRY_AFTER_SECONDS */
/* harmony import */ var _contracts_http_error_js__WEBPACK_IMPORTED_MODULE_0__ = __nccwpck_require__(7288);
/**
 * A storage backend (PostgreSQL, the object store) that cannot be reached or is restarting: the
 * request gets 503 with Retry-After, which Nix and the Action's proxy retry, never a 500.
 */

/** Seconds a client should wait before retrying: a restarting database is back within seconds. */
const RETRY_AFTER_SECONDS = 2;
class StorageUnavailableError extends _contracts_http_error_js__WEBPACK_IMPORTED_MODULE_0__/* .HttpError */ .j {
    constructor(what, cause) {
        super(503, `${what} is unavailable: ${describeCause(cause)}`, 'storage_unavailable', {
            'retry-after': String(RETRY_AFTER_SECONDS),
        });
    }
}
/** One line naming the cause, without stack or credentials (messages from the drivers carry neither). */
function describeCause(cause) {
    // Duck-typed, not `instanceof Error`: errors from Node's sockets may come from another realm.
    if (typeof cause !== 'object' || cause === null)
        return String(cause);
    const { code, errors, message, name } = cause;
    // Node's AggregateError (a connect to both ::1 and 127.0.0.1) has an empty message.
    const text = message || (Array.isArray(errors) ? (errors[0]?.message ?? '') : '') || name || String(cause);
    // The AWS SDK wraps socket errors: its prefix says nothing an operator needs.
    const line = (text.split('\n', 1)[0] ?? '').replace(/^AWS SDK error wrapper for (Error: )?/, '');
    return code && !line.includes(code) ? `${line} (${code})` : line;
}


/***/ }),

/***/ 2613:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("assert");

/***/ }),

/***/ 181:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("buffer");

/***/ }),

/***/ 9907:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("cluster");

/***/ }),

/***/ 6982:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("crypto");

/***/ }),

/***/ 2250:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("dns");

/***/ }),

/***/ 4434:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("events");

/***/ }),

/***/ 9896:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("fs");

/***/ }),

/***/ 8611:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("http");

/***/ }),

/***/ 5692:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("https");

/***/ }),

/***/ 3339:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("module");

/***/ }),

/***/ 9278:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("net");

/***/ }),

/***/ 6698:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:async_hooks");

/***/ }),

/***/ 1421:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:child_process");

/***/ }),

/***/ 7598:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:crypto");

/***/ }),

/***/ 3053:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:diagnostics_channel");

/***/ }),

/***/ 8474:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:events");

/***/ }),

/***/ 3024:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:fs");

/***/ }),

/***/ 1455:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:fs/promises");

/***/ }),

/***/ 7067:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:http");

/***/ }),

/***/ 2467:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:http2");

/***/ }),

/***/ 4708:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:https");

/***/ }),

/***/ 8161:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:os");

/***/ }),

/***/ 6760:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:path");

/***/ }),

/***/ 1708:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:process");

/***/ }),

/***/ 7075:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:stream");

/***/ }),

/***/ 3136:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:url");

/***/ }),

/***/ 7975:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:util");

/***/ }),

/***/ 8522:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:zlib");

/***/ }),

/***/ 6928:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("path");

/***/ }),

/***/ 2987:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("perf_hooks");

/***/ }),

/***/ 932:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("process");

/***/ }),

/***/ 2203:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("stream");

/***/ }),

/***/ 3193:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("string_decoder");

/***/ }),

/***/ 4756:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("tls");

/***/ }),

/***/ 7016:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("url");

/***/ }),

/***/ 9023:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("util");

/***/ }),

/***/ 8253:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("util/types");

/***/ }),

/***/ 1493:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("v8");

/***/ }),

/***/ 8167:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("worker_threads");

/***/ }),

/***/ 3106:
/***/ ((module) => {

module.exports = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("zlib");

/***/ }),

/***/ 1245:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const errSerializer = __nccwpck_require__(4746)
const errWithCauseSerializer = __nccwpck_require__(5037)
const reqSerializers = __nccwpck_require__(7377)
const resSerializers = __nccwpck_require__(6895)

module.exports = {
  err: errSerializer,
  errWithCause: errWithCauseSerializer,
  mapHttpRequest: reqSerializers.mapHttpRequest,
  mapHttpResponse: resSerializers.mapHttpResponse,
  req: reqSerializers.reqSerializer,
  res: resSerializers.resSerializer,

  wrapErrorSerializer: function wrapErrorSerializer (customSerializer) {
    if (customSerializer === errSerializer) return customSerializer
    return function wrapErrSerializer (err) {
      return customSerializer(errSerializer(err))
    }
  },

  wrapRequestSerializer: function wrapRequestSerializer (customSerializer) {
    if (customSerializer === reqSerializers.reqSerializer) return customSerializer
    return function wrappedReqSerializer (req) {
      return customSerializer(reqSerializers.reqSerializer(req))
    }
  },

  wrapResponseSerializer: function wrapResponseSerializer (customSerializer) {
    if (customSerializer === resSerializers.resSerializer) return customSerializer
    return function wrappedResSerializer (res) {
      return customSerializer(resSerializers.resSerializer(res))
    }
  }
}


/***/ }),

/***/ 1422:
/***/ ((module) => {



// **************************************************************
// * Code initially copied/adapted from "pony-cause" npm module *
// * Please upstream improvements there                         *
// **************************************************************

const isErrorLike = (err) => {
  return err && typeof err.message === 'string'
}

/**
 * @param {Error|{ cause?: unknown|(()=>err)}} err
 * @returns {Error|Object|undefined}
 */
const getErrorCause = (err) => {
  if (!err) return

  /** @type {unknown} */
  // @ts-ignore
  const cause = err.cause

  // VError / NError style causes
  if (typeof cause === 'function') {
    // @ts-ignore
    const causeResult = err.cause()

    return isErrorLike(causeResult)
      ? causeResult
      : undefined
  } else {
    return isErrorLike(cause)
      ? cause
      : undefined
  }
}

/**
 * Internal method that keeps a track of which error we have already added, to avoid circular recursion
 *
 * @private
 * @param {Error} err
 * @param {Set<Error>} seen
 * @returns {string}
 */
const _stackWithCauses = (err, seen) => {
  if (!isErrorLike(err)) return ''

  const stack = err.stack || ''

  // Ensure we don't go circular or crazily deep
  if (seen.has(err)) {
    return stack + '\ncauses have become circular...'
  }

  const cause = getErrorCause(err)

  if (cause) {
    seen.add(err)
    return (stack + '\ncaused by: ' + _stackWithCauses(cause, seen))
  } else {
    return stack
  }
}

/**
 * @param {Error} err
 * @returns {string}
 */
const stackWithCauses = (err) => _stackWithCauses(err, new Set())

/**
 * Internal method that keeps a track of which error we have already added, to avoid circular recursion
 *
 * @private
 * @param {Error} err
 * @param {Set<Error>} seen
 * @param {boolean} [skip]
 * @returns {string}
 */
const _messageWithCauses = (err, seen, skip) => {
  if (!isErrorLike(err)) return ''

  const message = skip ? '' : (err.message || '')

  // Ensure we don't go circular or crazily deep
  if (seen.has(err)) {
    return message + ': ...'
  }

  const cause = getErrorCause(err)

  if (cause) {
    seen.add(err)

    // @ts-ignore
    const skipIfVErrorStyleCause = typeof err.cause === 'function'

    return (message +
      (skipIfVErrorStyleCause ? '' : ': ') +
      _messageWithCauses(cause, seen, skipIfVErrorStyleCause))
  } else {
    return message
  }
}

/**
 * @param {Error} err
 * @returns {string}
 */
const messageWithCauses = (err) => _messageWithCauses(err, new Set())

module.exports = {
  isErrorLike,
  getErrorCause,
  stackWithCauses,
  messageWithCauses
}


/***/ }),

/***/ 1709:
/***/ ((module) => {



const seen = Symbol('circular-ref-tag')
const rawSymbol = Symbol('pino-raw-err-ref')

const pinoErrProto = Object.create({}, {
  type: {
    enumerable: true,
    writable: true,
    value: undefined
  },
  message: {
    enumerable: true,
    writable: true,
    value: undefined
  },
  stack: {
    enumerable: true,
    writable: true,
    value: undefined
  },
  aggregateErrors: {
    enumerable: true,
    writable: true,
    value: undefined
  },
  raw: {
    enumerable: false,
    get: function () {
      return this[rawSymbol]
    },
    set: function (val) {
      this[rawSymbol] = val
    }
  }
})
Object.defineProperty(pinoErrProto, rawSymbol, {
  writable: true,
  value: {}
})

module.exports = {
  pinoErrProto,
  pinoErrorSymbols: {
    seen,
    rawSymbol
  }
}


/***/ }),

/***/ 5037:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



module.exports = errWithCauseSerializer

const { isErrorLike } = __nccwpck_require__(1422)
const { pinoErrProto, pinoErrorSymbols } = __nccwpck_require__(1709)
const { seen } = pinoErrorSymbols

const { toString } = Object.prototype

function errWithCauseSerializer (err) {
  if (!isErrorLike(err)) {
    return err
  }

  err[seen] = undefined // tag to prevent re-looking at this
  const _err = Object.create(pinoErrProto)
  _err.type = toString.call(err.constructor) === '[object Function]'
    ? err.constructor.name
    : err.name
  _err.message = err.message
  _err.stack = err.stack

  if (Array.isArray(err.errors)) {
    _err.aggregateErrors = err.errors.map(err => errWithCauseSerializer(err))
  }

  if (isErrorLike(err.cause) && !Object.prototype.hasOwnProperty.call(err.cause, seen)) {
    _err.cause = errWithCauseSerializer(err.cause)
  }

  for (const key in err) {
    if (_err[key] === undefined) {
      const val = err[key]
      if (isErrorLike(val)) {
        if (!Object.prototype.hasOwnProperty.call(val, seen)) {
          _err[key] = errWithCauseSerializer(val)
        }
      } else {
        _err[key] = val
      }
    }
  }

  delete err[seen] // clean up tag in case err is serialized again later
  _err.raw = err
  return _err
}


/***/ }),

/***/ 4746:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



module.exports = errSerializer

const { messageWithCauses, stackWithCauses, isErrorLike } = __nccwpck_require__(1422)
const { pinoErrProto, pinoErrorSymbols } = __nccwpck_require__(1709)
const { seen } = pinoErrorSymbols

const { toString } = Object.prototype

function errSerializer (err) {
  if (!isErrorLike(err)) {
    return err
  }

  err[seen] = undefined // tag to prevent re-looking at this
  const _err = Object.create(pinoErrProto)
  _err.type = toString.call(err.constructor) === '[object Function]'
    ? err.constructor.name
    : err.name
  _err.message = messageWithCauses(err)
  _err.stack = stackWithCauses(err)

  if (Array.isArray(err.errors)) {
    _err.aggregateErrors = err.errors.map(err => errSerializer(err))
  }

  for (const key in err) {
    if (_err[key] === undefined) {
      const val = err[key]
      if (isErrorLike(val)) {
        // We append cause messages and stacks to _err, therefore skipping causes here
        if (key !== 'cause' && !Object.prototype.hasOwnProperty.call(val, seen)) {
          _err[key] = errSerializer(val)
        }
      } else {
        _err[key] = val
      }
    }
  }

  delete err[seen] // clean up tag in case err is serialized again later
  _err.raw = err
  return _err
}


/***/ }),

/***/ 7377:
/***/ ((module) => {



module.exports = {
  mapHttpRequest,
  reqSerializer
}

const rawSymbol = Symbol('pino-raw-req-ref')
const pinoReqProto = Object.create({}, {
  id: {
    enumerable: true,
    writable: true,
    value: ''
  },
  method: {
    enumerable: true,
    writable: true,
    value: ''
  },
  url: {
    enumerable: true,
    writable: true,
    value: ''
  },
  query: {
    enumerable: true,
    writable: true,
    value: ''
  },
  params: {
    enumerable: true,
    writable: true,
    value: ''
  },
  headers: {
    enumerable: true,
    writable: true,
    value: {}
  },
  remoteAddress: {
    enumerable: true,
    writable: true,
    value: ''
  },
  remotePort: {
    enumerable: true,
    writable: true,
    value: ''
  },
  raw: {
    enumerable: false,
    get: function () {
      return this[rawSymbol]
    },
    set: function (val) {
      this[rawSymbol] = val
    }
  }
})
Object.defineProperty(pinoReqProto, rawSymbol, {
  writable: true,
  value: {}
})

function reqSerializer (req) {
  // req.info is for hapi compat.
  const connection = req.info || req.socket
  const _req = Object.create(pinoReqProto)
  _req.id = (typeof req.id === 'function' ? req.id() : (req.id || (req.info ? req.info.id : undefined)))
  _req.method = req.method
  // req.originalUrl is for expressjs compat.
  if (req.originalUrl) {
    _req.url = req.originalUrl
  } else {
    const path = req.path
    // path for safe hapi compat.
    _req.url = typeof path === 'string' ? path : (req.url ? req.url.path || req.url : undefined)
  }

  if (req.query) {
    _req.query = req.query
  }

  if (req.params) {
    _req.params = req.params
  }

  _req.headers = req.headers
  _req.remoteAddress = connection && connection.remoteAddress
  _req.remotePort = connection && connection.remotePort
  // req.raw is  for hapi compat/equivalence
  _req.raw = req.raw || req
  return _req
}

function mapHttpRequest (req) {
  return {
    req: reqSerializer(req)
  }
}


/***/ }),

/***/ 6895:
/***/ ((module) => {



module.exports = {
  mapHttpResponse,
  resSerializer
}

const rawSymbol = Symbol('pino-raw-res-ref')
const pinoResProto = Object.create({}, {
  statusCode: {
    enumerable: true,
    writable: true,
    value: 0
  },
  headers: {
    enumerable: true,
    writable: true,
    value: ''
  },
  raw: {
    enumerable: false,
    get: function () {
      return this[rawSymbol]
    },
    set: function (val) {
      this[rawSymbol] = val
    }
  }
})
Object.defineProperty(pinoResProto, rawSymbol, {
  writable: true,
  value: {}
})

function resSerializer (res) {
  const _res = Object.create(pinoResProto)
  _res.statusCode = res.headersSent ? res.statusCode : null
  _res.headers = res.getHeaders ? res.getHeaders() : res._headers
  _res.raw = res
  return _res
}

function mapHttpResponse (res) {
  return {
    res: resSerializer(res)
  }
}


/***/ }),

/***/ 450:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const util = __nccwpck_require__(7975)

// getCallSite requires Node >=22.9.0
// getCallSite was renamed in Node 23.3.0 / 22.12.0
const getCallSites = util.getCallSites ?? util.getCallSite

function noOpPrepareStackTrace (_, stack) {
  return stack
}

module.exports = function getCallers () {
  if (getCallSites) {
    return getCallSites().slice(2).map(callSite => callSite.scriptName)
  }

  const originalPrepare = Error.prepareStackTrace
  Error.prepareStackTrace = noOpPrepareStackTrace
  const stack = new Error().stack
  Error.prepareStackTrace = originalPrepare

  if (!Array.isArray(stack)) {
    return undefined
  }

  const entries = stack.slice(2)

  const fileNames = []

  for (const entry of entries) {
    if (!entry) {
      continue
    }

    fileNames.push(entry.getFileName())
  }

  return fileNames
}


/***/ }),

/***/ 3256:
/***/ ((module) => {

/**
 * Represents default log level values
 *
 * @enum {number}
 */
const DEFAULT_LEVELS = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60
}

/**
 * Represents sort order direction: `ascending` or `descending`
 *
 * @enum {string}
 */
const SORTING_ORDER = {
  ASC: 'ASC',
  DESC: 'DESC'
}

module.exports = {
  DEFAULT_LEVELS,
  SORTING_ORDER
}


/***/ }),

/***/ 3114:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {


/* eslint no-prototype-builtins: 0 */
const {
  lsCacheSym,
  levelValSym,
  useOnlyCustomLevelsSym,
  streamSym,
  formattersSym,
  hooksSym,
  levelCompSym
} = __nccwpck_require__(2520)
const { noop, genLog } = __nccwpck_require__(2694)
const { DEFAULT_LEVELS, SORTING_ORDER } = __nccwpck_require__(3256)

const levelMethods = {
  fatal: (hook) => {
    const logFatal = genLog(DEFAULT_LEVELS.fatal, hook)
    return function (...args) {
      const stream = this[streamSym]
      logFatal.call(this, ...args)
      if (typeof stream.flushSync === 'function') {
        try {
          stream.flushSync()
        } catch (e) {
          // https://github.com/pinojs/pino/pull/740#discussion_r346788313
        }
      }
    }
  },
  error: (hook) => genLog(DEFAULT_LEVELS.error, hook),
  warn: (hook) => genLog(DEFAULT_LEVELS.warn, hook),
  info: (hook) => genLog(DEFAULT_LEVELS.info, hook),
  debug: (hook) => genLog(DEFAULT_LEVELS.debug, hook),
  trace: (hook) => genLog(DEFAULT_LEVELS.trace, hook)
}

const nums = Object.keys(DEFAULT_LEVELS).reduce((o, k) => {
  o[DEFAULT_LEVELS[k]] = k
  return o
}, {})

const initialLsCache = Object.keys(nums).reduce((o, k) => {
  o[k] = '{"level":' + Number(k)
  return o
}, {})

function genLsCache (instance) {
  const formatter = instance[formattersSym].level
  const { labels } = instance.levels
  const cache = {}
  for (const label in labels) {
    const level = formatter(labels[label], Number(label))
    cache[label] = JSON.stringify(level).slice(0, -1)
  }
  instance[lsCacheSym] = cache
  return instance
}

function isStandardLevel (level, useOnlyCustomLevels) {
  if (useOnlyCustomLevels) {
    return false
  }

  switch (level) {
    case 'fatal':
    case 'error':
    case 'warn':
    case 'info':
    case 'debug':
    case 'trace':
      return true
    default:
      return false
  }
}

function setLevel (level) {
  const { labels, values } = this.levels
  if (typeof level === 'number') {
    if (labels[level] === undefined) throw Error('unknown level value' + level)
    level = labels[level]
  }
  if (values[level] === undefined) throw Error('unknown level ' + level)
  const preLevelVal = this[levelValSym]
  const levelVal = this[levelValSym] = values[level]
  const useOnlyCustomLevelsVal = this[useOnlyCustomLevelsSym]
  const levelComparison = this[levelCompSym]
  const hook = this[hooksSym].logMethod

  for (const key in values) {
    if (levelComparison(values[key], levelVal) === false) {
      this[key] = noop
      continue
    }
    this[key] = isStandardLevel(key, useOnlyCustomLevelsVal) ? levelMethods[key](hook) : genLog(values[key], hook)
  }

  this.emit(
    'level-change',
    level,
    levelVal,
    labels[preLevelVal],
    preLevelVal,
    this
  )
}

function getLevel (level) {
  const { levels, levelVal } = this
  // protection against potential loss of Pino scope from serializers (edge case with circular refs - https://github.com/pinojs/pino/issues/833)
  return (levels && levels.labels) ? levels.labels[levelVal] : ''
}

function isLevelEnabled (logLevel) {
  const { values } = this.levels
  const logLevelVal = values[logLevel]
  return logLevelVal !== undefined && this[levelCompSym](logLevelVal, this[levelValSym])
}

/**
 * Determine if the given `current` level is enabled by comparing it
 * against the current threshold (`expected`).
 *
 * @param {SORTING_ORDER} direction comparison direction "ASC" or "DESC"
 * @param {number} current current log level number representation
 * @param {number} expected threshold value to compare with
 * @returns {boolean}
 */
function compareLevel (direction, current, expected) {
  if (direction === SORTING_ORDER.DESC) {
    return current <= expected
  }

  return current >= expected
}

/**
 * Create a level comparison function based on `levelComparison`
 * it could a default function which compares levels either in "ascending" or "descending" order or custom comparison function
 *
 * @param {SORTING_ORDER | Function} levelComparison sort levels order direction or custom comparison function
 * @returns Function
 */
function genLevelComparison (levelComparison) {
  if (typeof levelComparison === 'string') {
    return compareLevel.bind(null, levelComparison)
  }

  return levelComparison
}

function mappings (customLevels = null, useOnlyCustomLevels = false) {
  const customNums = customLevels
    /* eslint-disable */
    ? Object.keys(customLevels).reduce((o, k) => {
        o[customLevels[k]] = k
        return o
      }, {})
    : null
    /* eslint-enable */

  const labels = Object.assign(
    Object.create(Object.prototype, { Infinity: { value: 'silent' } }),
    useOnlyCustomLevels ? null : nums,
    customNums
  )
  const values = Object.assign(
    Object.create(Object.prototype, { silent: { value: Infinity } }),
    useOnlyCustomLevels ? null : DEFAULT_LEVELS,
    customLevels
  )
  return { labels, values }
}

function assertDefaultLevelFound (defaultLevel, customLevels, useOnlyCustomLevels) {
  if (typeof defaultLevel === 'number') {
    const values = [].concat(
      Object.keys(customLevels || {}).map(key => customLevels[key]),
      useOnlyCustomLevels ? [] : Object.keys(nums).map(level => +level),
      Infinity
    )
    if (!values.includes(defaultLevel)) {
      throw Error(`default level:${defaultLevel} must be included in custom levels`)
    }
    return
  }

  const labels = Object.assign(
    Object.create(Object.prototype, { silent: { value: Infinity } }),
    useOnlyCustomLevels ? null : DEFAULT_LEVELS,
    customLevels
  )
  if (!(defaultLevel in labels)) {
    throw Error(`default level:${defaultLevel} must be included in custom levels`)
  }
}

function assertNoLevelCollisions (levels, customLevels) {
  const { labels, values } = levels
  for (const k in customLevels) {
    if (k in values) {
      throw Error('levels cannot be overridden')
    }
    if (customLevels[k] in labels) {
      throw Error('pre-existing level values cannot be used for new levels')
    }
  }
}

/**
 * Validates whether `levelComparison` is correct
 *
 * @throws Error
 * @param {SORTING_ORDER | Function} levelComparison - value to validate
 * @returns
 */
function assertLevelComparison (levelComparison) {
  if (typeof levelComparison === 'function') {
    return
  }

  if (typeof levelComparison === 'string' && Object.values(SORTING_ORDER).includes(levelComparison)) {
    return
  }

  throw new Error('Levels comparison should be one of "ASC", "DESC" or "function" type')
}

module.exports = {
  initialLsCache,
  genLsCache,
  levelMethods,
  getLevel,
  setLevel,
  isLevelEnabled,
  mappings,
  assertNoLevelCollisions,
  assertDefaultLevelFound,
  genLevelComparison,
  assertLevelComparison
}


/***/ }),

/***/ 4052:
/***/ ((module) => {



module.exports = { version: '10.4.0' }


/***/ }),

/***/ 112:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const metadata = Symbol.for('pino.metadata')
const { DEFAULT_LEVELS } = __nccwpck_require__(3256)

const DEFAULT_INFO_LEVEL = DEFAULT_LEVELS.info

function multistream (streamsArray, opts) {
  streamsArray = streamsArray || []
  opts = opts || { dedupe: false }

  const streamLevels = Object.create(DEFAULT_LEVELS)
  streamLevels.silent = Infinity
  if (opts.levels && typeof opts.levels === 'object') {
    Object.keys(opts.levels).forEach(i => {
      streamLevels[i] = opts.levels[i]
    })
  }

  const res = {
    write,
    add,
    remove,
    emit,
    flushSync,
    end,
    minLevel: 0,
    lastId: 0,
    streams: [],
    clone,
    [metadata]: true,
    streamLevels
  }

  if (Array.isArray(streamsArray)) {
    streamsArray.forEach(add, res)
  } else {
    add.call(res, streamsArray)
  }

  // clean this object up
  // or it will stay allocated forever
  // as it is closed on the following closures
  streamsArray = null

  return res

  // we can exit early because the streams are ordered by level
  function write (data) {
    let dest
    // `lastLevel` is normally the numeric level, but a source may relay a
    // level label string (e.g. pino-abstract-transport forwarding lines
    // produced with a `formatters.level` option). Resolve it to a number so
    // the level comparisons below don't silently drop the record.
    const level = typeof this.lastLevel === 'string'
      ? (this.streamLevels || streamLevels)[this.lastLevel]
      : this.lastLevel
    const { streams } = this
    // for handling situation when several streams has the same level
    let recordedLevel = 0
    let stream

    // if dedupe set to true we send logs to the stream with the highest level
    // therefore, we have to change sorting order
    for (let i = initLoopVar(streams.length, opts.dedupe); checkLoopVar(i, streams.length, opts.dedupe); i = adjustLoopVar(i, opts.dedupe)) {
      dest = streams[i]
      if (dest.level <= level) {
        if (recordedLevel !== 0 && recordedLevel !== dest.level) {
          break
        }
        stream = dest.stream
        if (stream[metadata]) {
          const { lastTime, lastMsg, lastObj, lastLogger } = this
          stream.lastLevel = level
          stream.lastTime = lastTime
          stream.lastMsg = lastMsg
          stream.lastObj = lastObj
          stream.lastLogger = lastLogger
        }
        stream.write(data)
        if (opts.dedupe) {
          recordedLevel = dest.level
        }
      } else if (!opts.dedupe) {
        break
      }
    }
  }

  function emit (...args) {
    for (const { stream } of this.streams) {
      if (typeof stream.emit === 'function') {
        stream.emit(...args)
      }
    }
  }

  function flushSync () {
    for (const { stream } of this.streams) {
      if (typeof stream.flushSync === 'function') {
        stream.flushSync()
      }
    }
  }

  function add (dest) {
    if (!dest) {
      return this
    }

    // Check that dest implements either StreamEntry or DestinationStream
    const isStream = typeof dest.write === 'function' || dest.stream
    const stream_ = dest.write ? dest : dest.stream
    // This is necessary to provide a meaningful error message, otherwise it throws somewhere inside write()
    if (!isStream) {
      throw Error('stream object needs to implement either StreamEntry or DestinationStream interface')
    }

    const { streams, streamLevels } = this

    let level
    if (typeof dest.levelVal === 'number') {
      level = dest.levelVal
    } else if (typeof dest.level === 'string') {
      level = streamLevels[dest.level]
    } else if (typeof dest.level === 'number') {
      level = dest.level
    } else {
      level = DEFAULT_INFO_LEVEL
    }

    const dest_ = {
      stream: stream_,
      level,
      levelVal: undefined,
      id: ++res.lastId
    }

    streams.unshift(dest_)
    streams.sort(compareByLevel)

    this.minLevel = streams[0].level

    return this
  }

  function remove (id) {
    const { streams } = this
    const index = streams.findIndex(s => s.id === id)

    if (index >= 0) {
      streams.splice(index, 1)
      streams.sort(compareByLevel)
      this.minLevel = streams.length > 0 ? streams[0].level : -1
    }

    return this
  }

  function end () {
    for (const { stream } of this.streams) {
      if (typeof stream.flushSync === 'function') {
        stream.flushSync()
      }
      stream.end()
    }
  }

  function clone (level) {
    const streams = new Array(this.streams.length)

    for (let i = 0; i < streams.length; i++) {
      streams[i] = {
        level,
        stream: this.streams[i].stream
      }
    }

    return {
      write,
      add,
      remove,
      emit,
      flushSync,
      end,
      minLevel: level,
      streams,
      clone,
      [metadata]: true,
      streamLevels
    }
  }
}

function compareByLevel (a, b) {
  return a.level - b.level
}

function initLoopVar (length, dedupe) {
  return dedupe ? length - 1 : 0
}

function adjustLoopVar (i, dedupe) {
  return dedupe ? i - 1 : i + 1
}

function checkLoopVar (i, length, dedupe) {
  return dedupe ? i >= 0 : i < length
}

module.exports = multistream


/***/ }),

/***/ 1239:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



/* eslint no-prototype-builtins: 0 */

const { EventEmitter } = __nccwpck_require__(8474)
const {
  lsCacheSym,
  levelValSym,
  setLevelSym,
  getLevelSym,
  chindingsSym,
  mixinSym,
  asJsonSym,
  writeSym,
  mixinMergeStrategySym,
  timeSym,
  timeSliceIndexSym,
  streamSym,
  serializersSym,
  formattersSym,
  errorKeySym,
  messageKeySym,
  useOnlyCustomLevelsSym,
  needsMetadataGsym,
  redactFmtSym,
  stringifySym,
  formatOptsSym,
  stringifiersSym,
  msgPrefixSym,
  hooksSym
} = __nccwpck_require__(2520)
const {
  getLevel,
  setLevel,
  isLevelEnabled,
  mappings,
  initialLsCache,
  genLsCache,
  assertNoLevelCollisions
} = __nccwpck_require__(3114)
const {
  asChindings,
  asJson,
  buildFormatters,
  stringify,
  noop
} = __nccwpck_require__(2694)
const {
  version
} = __nccwpck_require__(4052)
const redaction = __nccwpck_require__(9096)

// note: use of class is satirical
// https://github.com/pinojs/pino/pull/433#pullrequestreview-127703127
const constructor = class Pino {}
const prototype = {
  constructor,
  child,
  bindings,
  setBindings,
  flush,
  isLevelEnabled,
  version,
  get level () { return this[getLevelSym]() },
  set level (lvl) { this[setLevelSym](lvl) },
  get levelVal () { return this[levelValSym] },
  set levelVal (n) { throw Error('levelVal is read-only') },
  get msgPrefix () { return this[msgPrefixSym] },
  get [Symbol.toStringTag] () { return 'Pino' },
  [lsCacheSym]: initialLsCache,
  [writeSym]: write,
  [asJsonSym]: asJson,
  [getLevelSym]: getLevel,
  [setLevelSym]: setLevel
}

Object.setPrototypeOf(prototype, EventEmitter.prototype)

// exporting and consuming the prototype object using factory pattern fixes scoping issues with getters when serializing
module.exports = function () {
  return Object.create(prototype)
}

const resetChildingsFormatter = bindings => bindings
function child (bindings, options) {
  if (!bindings) {
    throw Error('missing bindings for child Pino')
  }
  const serializers = this[serializersSym]
  const formatters = this[formattersSym]
  const instance = Object.create(this)

  // If an `options` object was not supplied, we can improve
  // the performance of child creation by skipping
  // the checks for set options and simply return
  // a baseline instance.
  if (options == null) {
    if (instance[formattersSym].bindings !== resetChildingsFormatter) {
      instance[formattersSym] = buildFormatters(
        formatters.level,
        resetChildingsFormatter,
        formatters.log
      )
    }

    instance[chindingsSym] = asChindings(instance, bindings)

    if (this.onChild !== noop) {
      this.onChild(instance)
    }

    return instance
  }

  if (options.hasOwnProperty('serializers') === true) {
    instance[serializersSym] = Object.create(null)

    for (const k in serializers) {
      instance[serializersSym][k] = serializers[k]
    }
    const parentSymbols = Object.getOwnPropertySymbols(serializers)
    /* eslint no-var: off */
    for (var i = 0; i < parentSymbols.length; i++) {
      const ks = parentSymbols[i]
      instance[serializersSym][ks] = serializers[ks]
    }

    for (const bk in options.serializers) {
      instance[serializersSym][bk] = options.serializers[bk]
    }
    const bindingsSymbols = Object.getOwnPropertySymbols(options.serializers)
    for (var bi = 0; bi < bindingsSymbols.length; bi++) {
      const bks = bindingsSymbols[bi]
      instance[serializersSym][bks] = options.serializers[bks]
    }
  } else instance[serializersSym] = serializers
  if (options.hasOwnProperty('formatters')) {
    const { level, bindings: chindings, log } = options.formatters
    instance[formattersSym] = buildFormatters(
      level || formatters.level,
      chindings || resetChildingsFormatter,
      log || formatters.log
    )
  } else {
    instance[formattersSym] = buildFormatters(
      formatters.level,
      resetChildingsFormatter,
      formatters.log
    )
  }
  if (options.hasOwnProperty('customLevels') === true) {
    assertNoLevelCollisions(this.levels, options.customLevels)
    instance.levels = mappings(options.customLevels, instance[useOnlyCustomLevelsSym])
    genLsCache(instance)
  }

  // redact must place before asChindings and only replace if exist
  if ((typeof options.redact === 'object' && options.redact !== null) || Array.isArray(options.redact)) {
    instance.redact = options.redact // replace redact directly
    const stringifiers = redaction(instance.redact, stringify)
    const formatOpts = { stringify: stringifiers[redactFmtSym] }
    instance[stringifySym] = stringify
    instance[stringifiersSym] = stringifiers
    instance[formatOptsSym] = formatOpts
  }

  if (typeof options.msgPrefix === 'string') {
    instance[msgPrefixSym] = (this[msgPrefixSym] || '') + options.msgPrefix
  }

  instance[chindingsSym] = asChindings(instance, bindings)
  if ((options.level !== undefined && options.level !== this.level) || options.hasOwnProperty('customLevels')) {
    const childLevel = options.level || this.level
    instance[setLevelSym](childLevel)
  }
  this.onChild(instance)
  return instance
}

function bindings () {
  const chindings = this[chindingsSym]
  const chindingsJson = `{${chindings.substr(1)}}` // at least contains ,"pid":7068,"hostname":"myMac"
  const bindingsFromJson = JSON.parse(chindingsJson)
  delete bindingsFromJson.pid
  delete bindingsFromJson.hostname
  return bindingsFromJson
}

function setBindings (newBindings) {
  const chindings = asChindings(this, newBindings)
  this[chindingsSym] = chindings
}

/**
 * Default strategy for creating `mergeObject` from arguments and the result from `mixin()`.
 * Fields from `mergeObject` have higher priority in this strategy.
 *
 * @param {Object} mergeObject The object a user has supplied to the logging function.
 * @param {Object} mixinObject The result of the `mixin` method.
 * @return {Object}
 */
function defaultMixinMergeStrategy (mergeObject, mixinObject) {
  return Object.assign(mixinObject, mergeObject)
}

function write (_obj, msg, num) {
  const t = this[timeSym]()
  const mixin = this[mixinSym]
  const errorKey = this[errorKeySym]
  const messageKey = this[messageKeySym]
  const mixinMergeStrategy = this[mixinMergeStrategySym] || defaultMixinMergeStrategy
  let obj
  const streamWriteHook = this[hooksSym].streamWrite

  if (_obj === undefined || _obj === null) {
    obj = {}
  } else if (_obj instanceof Error) {
    obj = { [errorKey]: _obj }
    if (msg === undefined) {
      msg = _obj.message
    }
  } else {
    obj = _obj
    if (msg === undefined && _obj[messageKey] === undefined && _obj[errorKey]) {
      msg = _obj[errorKey].message
    }
  }

  if (mixin) {
    obj = mixinMergeStrategy(obj, mixin(obj, num, this))
  }

  const s = this[asJsonSym](obj, msg, num, t)

  const stream = this[streamSym]
  if (stream[needsMetadataGsym] === true) {
    stream.lastLevel = num
    stream.lastObj = obj
    stream.lastMsg = msg
    stream.lastTime = t.slice(this[timeSliceIndexSym])
    stream.lastLogger = this // for child loggers
  }
  stream.write(streamWriteHook ? streamWriteHook(s) : s)
}

function flush (cb) {
  if (cb != null && typeof cb !== 'function') {
    throw Error('callback must be a function')
  }

  const stream = this[streamSym]

  if (typeof stream.flush === 'function') {
    stream.flush(cb || noop)
  } else if (cb) cb()
}


/***/ }),

/***/ 9096:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const Redact = __nccwpck_require__(7769)
const { redactFmtSym, wildcardFirstSym } = __nccwpck_require__(2520)

// Custom rx regex equivalent to fast-redact's rx
const rx = /[^.[\]]+|\[([^[\]]*?)\]/g

const CENSOR = '[Redacted]'
const strict = false // TODO should this be configurable?

function redaction (opts, serialize) {
  const { paths, censor, remove } = handle(opts)

  const shape = paths.reduce((o, str) => {
    rx.lastIndex = 0
    const first = rx.exec(str)
    const next = rx.exec(str)

    // ns is the top-level path segment, brackets + quoting removed.
    let ns = first[1] !== undefined
      ? first[1].replace(/^(?:"|'|`)(.*)(?:"|'|`)$/, '$1')
      : first[0]

    if (ns === '*') {
      ns = wildcardFirstSym
    }

    // top level key:
    if (next === null) {
      o[ns] = null
      return o
    }

    // path with at least two segments:
    // if ns is already redacted at the top level, ignore lower level redactions
    if (o[ns] === null) {
      return o
    }

    const { index } = next
    const nextPath = `${str.substr(index, str.length - 1)}`

    o[ns] = o[ns] || []

    // shape is a mix of paths beginning with literal values and wildcard
    // paths [ "a.b.c", "*.b.z" ] should reduce to a shape of
    // { "a": [ "b.c", "b.z" ], *: [ "b.z" ] }
    // note: "b.z" is in both "a" and * arrays because "a" matches the wildcard.
    // (* entry has wildcardFirstSym as key)
    if (ns !== wildcardFirstSym && o[ns].length === 0) {
      // first time ns's get all '*' redactions so far
      o[ns].push(...(o[wildcardFirstSym] || []))
    }

    if (ns === wildcardFirstSym) {
      // new * path gets added to all previously registered literal ns's.
      Object.keys(o).forEach(function (k) {
        if (o[k]) {
          o[k].push(nextPath)
        }
      })
    }

    o[ns].push(nextPath)
    return o
    // The keys here are the first segment of each redact path, so they are the
    // user's strings. On a plain object a path like 'constructor.secret' reads
    // the inherited function, and `o[ns] = o[ns] || []` keeps it.
  }, Object.create(null))

  // the redactor assigned to the format symbol key
  // provides top level redaction for instances where
  // an object is interpolated into the msg string
  // Same reason as the shape above: the keys come from the redact paths, and
  // this object is later indexed with them by `asJson`.
  const result = Object.assign(Object.create(null), {
    [redactFmtSym]: Redact({ paths, censor, serialize, strict, remove })
  })

  const topCensor = (...args) => {
    return typeof censor === 'function' ? serialize(censor(...args)) : serialize(censor)
  }

  return [...Object.keys(shape), ...Object.getOwnPropertySymbols(shape)].reduce((o, k) => {
    // top level key:
    if (shape[k] === null) {
      o[k] = (value) => topCensor(value, [k])
    } else {
      const wrappedCensor = typeof censor === 'function'
        ? (value, path) => {
            return censor(value, [k, ...path])
          }
        : censor
      o[k] = Redact({
        paths: shape[k],
        censor: wrappedCensor,
        serialize,
        strict,
        remove
      })
    }
    return o
  }, result)
}

function handle (opts) {
  if (Array.isArray(opts)) {
    opts = { paths: opts, censor: CENSOR }
    return opts
  }
  let { paths, censor = CENSOR, remove } = opts
  if (Array.isArray(paths) === false) { throw Error('pino \u2013 redact must contain an array of strings') }
  if (remove === true) censor = undefined

  return { paths, censor, remove }
}

module.exports = redaction


/***/ }),

/***/ 2520:
/***/ ((module) => {



const setLevelSym = Symbol('pino.setLevel')
const getLevelSym = Symbol('pino.getLevel')
const levelValSym = Symbol('pino.levelVal')
const levelCompSym = Symbol('pino.levelComp')
const useLevelLabelsSym = Symbol('pino.useLevelLabels')
const useOnlyCustomLevelsSym = Symbol('pino.useOnlyCustomLevels')
const mixinSym = Symbol('pino.mixin')

const lsCacheSym = Symbol('pino.lsCache')
const chindingsSym = Symbol('pino.chindings')

const asJsonSym = Symbol('pino.asJson')
const writeSym = Symbol('pino.write')
const redactFmtSym = Symbol('pino.redactFmt')

const timeSym = Symbol('pino.time')
const timeSliceIndexSym = Symbol('pino.timeSliceIndex')
const streamSym = Symbol('pino.stream')
const stringifySym = Symbol('pino.stringify')
const stringifySafeSym = Symbol('pino.stringifySafe')
const stringifiersSym = Symbol('pino.stringifiers')
const endSym = Symbol('pino.end')
const formatOptsSym = Symbol('pino.formatOpts')
const messageKeySym = Symbol('pino.messageKey')
const errorKeySym = Symbol('pino.errorKey')
const nestedKeySym = Symbol('pino.nestedKey')
const nestedKeyStrSym = Symbol('pino.nestedKeyStr')
const mixinMergeStrategySym = Symbol('pino.mixinMergeStrategy')
const msgPrefixSym = Symbol('pino.msgPrefix')

const wildcardFirstSym = Symbol('pino.wildcardFirst')

// public symbols, no need to use the same pino
// version for these
const serializersSym = Symbol.for('pino.serializers')
const formattersSym = Symbol.for('pino.formatters')
const hooksSym = Symbol.for('pino.hooks')
const needsMetadataGsym = Symbol.for('pino.metadata')
const transportUsesMultistreamSym = Symbol.for('pino.transport.usesMultistream')

module.exports = {
  setLevelSym,
  getLevelSym,
  levelValSym,
  levelCompSym,
  useLevelLabelsSym,
  mixinSym,
  lsCacheSym,
  chindingsSym,
  asJsonSym,
  writeSym,
  serializersSym,
  redactFmtSym,
  timeSym,
  timeSliceIndexSym,
  streamSym,
  stringifySym,
  stringifySafeSym,
  stringifiersSym,
  endSym,
  formatOptsSym,
  messageKeySym,
  errorKeySym,
  nestedKeySym,
  wildcardFirstSym,
  needsMetadataGsym,
  useOnlyCustomLevelsSym,
  formattersSym,
  hooksSym,
  nestedKeyStrSym,
  mixinMergeStrategySym,
  msgPrefixSym,
  transportUsesMultistreamSym
}


/***/ }),

/***/ 4416:
/***/ ((module) => {



const nullTime = () => ''

const epochTime = () => `,"time":${Date.now()}`

const unixTime = () => `,"time":${Math.round(Date.now() / 1000.0)}`

const isoTime = () => `,"time":"${new Date(Date.now()).toISOString()}"` // using Date.now() for testability

const NS_PER_MS = 1_000_000n
const NS_PER_SEC = 1_000_000_000n

const startWallTimeNs = BigInt(Date.now()) * NS_PER_MS
const startHrTime = process.hrtime.bigint()

const isoTimeNano = () => {
  const elapsedNs = process.hrtime.bigint() - startHrTime
  const currentTimeNs = startWallTimeNs + elapsedNs

  const secondsSinceEpoch = currentTimeNs / NS_PER_SEC
  const nanosWithinSecond = currentTimeNs % NS_PER_SEC

  const msSinceEpoch = Number(secondsSinceEpoch * 1000n + nanosWithinSecond / 1_000_000n)
  const date = new Date(msSinceEpoch)

  const year = date.getUTCFullYear()
  const month = (date.getUTCMonth() + 1).toString().padStart(2, '0')
  const day = date.getUTCDate().toString().padStart(2, '0')
  const hours = date.getUTCHours().toString().padStart(2, '0')
  const minutes = date.getUTCMinutes().toString().padStart(2, '0')
  const seconds = date.getUTCSeconds().toString().padStart(2, '0')

  return `,"time":"${year}-${month}-${day}T${hours}:${minutes}:${seconds}.${nanosWithinSecond
    .toString()
    .padStart(9, '0')}Z"`
}

module.exports = { nullTime, epochTime, unixTime, isoTime, isoTimeNano }


/***/ }),

/***/ 2694:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



/* eslint no-prototype-builtins: 0 */

const diagChan = __nccwpck_require__(3053)
const format = __nccwpck_require__(6868)
const { mapHttpRequest, mapHttpResponse } = __nccwpck_require__(1245)
const SonicBoom = __nccwpck_require__(1037)
const onExit = __nccwpck_require__(9761)
const {
  lsCacheSym,
  chindingsSym,
  writeSym,
  serializersSym,
  formatOptsSym,
  endSym,
  stringifiersSym,
  stringifySym,
  stringifySafeSym,
  wildcardFirstSym,
  nestedKeySym,
  formattersSym,
  messageKeySym,
  errorKeySym,
  nestedKeyStrSym,
  msgPrefixSym
} = __nccwpck_require__(2520)
const { isMainThread } = __nccwpck_require__(8167)
const transport = __nccwpck_require__(4124)
const [nodeMajor] = process.versions.node.split('.').map(v => Number(v))

const asJsonChan = diagChan.tracingChannel('pino_asJson')

// JSON.stringify is faster in node 25+.
const asString = nodeMajor >= 25 ? str => JSON.stringify(str) : _asString

function noop () {
}

function genLog (level, hook) {
  if (!hook) return LOG

  return function hookWrappedLog (...args) {
    hook.call(this, args, LOG, level)
  }

  function LOG (o, ...n) {
    if (typeof o === 'object') {
      let msg = o
      if (o !== null) {
        if (o.method && o.headers && o.socket) {
          o = mapHttpRequest(o)
        } else if (typeof o.setHeader === 'function') {
          o = mapHttpResponse(o)
        }
      }
      let formatParams
      if (msg === null && n.length === 0) {
        formatParams = [null]
      } else {
        msg = n.shift()
        formatParams = n
      }
      // We do not use a coercive check for `msg` as it is
      // measurably slower than the explicit checks.
      if (typeof this[msgPrefixSym] === 'string' && msg !== undefined && msg !== null) {
        msg = this[msgPrefixSym] + msg
      }
      this[writeSym](o, format(msg, formatParams, this[formatOptsSym]), level)
    } else {
      let msg = o === undefined ? n.shift() : o

      // We do not use a coercive check for `msg` as it is
      // measurably slower than the explicit checks.
      if (typeof this[msgPrefixSym] === 'string' && msg !== undefined && msg !== null) {
        msg = this[msgPrefixSym] + msg
      }
      this[writeSym](null, format(msg, n, this[formatOptsSym]), level)
    }
  }
}

// magically escape strings for json
// relying on their charCodeAt
// everything below 32 needs JSON.stringify()
// 34 and 92 happens all the time, so we
// have a fast case for them
function _asString (str) {
  let result = ''
  let last = 0
  let found = false
  let point = 255
  const l = str.length
  if (l > 100) {
    return JSON.stringify(str)
  }
  for (var i = 0; i < l && point >= 32; i++) {
    point = str.charCodeAt(i)
    if (point === 34 || point === 92) {
      result += str.slice(last, i) + '\\'
      last = i
      found = true
    }
  }
  if (!found) {
    result = str
  } else {
    result += str.slice(last)
  }
  return point < 32 ? JSON.stringify(str) : '"' + result + '"'
}

/**
 * `asJson` wraps `_asJson` in order to facilitate generating diagnostics.
 *
 * @param {object} obj The merging object passed to the log method.
 * @param {string} msg The log message passed to the log method.
 * @param {number} num The log level number.
 * @param {number} time The log time in milliseconds.
 *
 * @returns {string}
 */
function asJson (obj, msg, num, time) {
  if (asJsonChan.hasSubscribers === false) {
    return _asJson.call(this, obj, msg, num, time)
  }

  const store = { instance: this, arguments }
  return asJsonChan.traceSync(_asJson, store, this, obj, msg, num, time)
}

/**
 * `_asJson` parses all collected data and generates the finalized newline
 * delimited JSON string.
 *
 * @param {object} obj The merging object passed to the log method.
 * @param {string} msg The log message passed to the log method.
 * @param {number} num The log level number.
 * @param {number} time The log time in milliseconds.
 *
 * @returns {string} The finalized log string terminated with a newline.
 * @private
 */
function _asJson (obj, msg, num, time) {
  const stringify = this[stringifySym]
  const stringifySafe = this[stringifySafeSym]
  const stringifiers = this[stringifiersSym]
  const end = this[endSym]
  const chindings = this[chindingsSym]
  const serializers = this[serializersSym]
  const formatters = this[formattersSym]
  const messageKey = this[messageKeySym]
  const errorKey = this[errorKeySym]
  let data = this[lsCacheSym][num] + time

  // we need the child bindings added to the output first so instance logged
  // objects can take precedence when JSON.parse-ing the resulting log line
  data = data + chindings

  let value
  if (formatters.log) {
    obj = formatters.log(obj)
  }
  const wildcardStringifier = stringifiers[wildcardFirstSym]
  let propStr = ''
  for (const key in obj) {
    value = obj[key]
    if (Object.prototype.hasOwnProperty.call(obj, key) && value !== undefined) {
      if (serializers[key]) {
        value = serializers[key](value)
      } else if (key === errorKey && serializers.err) {
        value = serializers.err(value)
      }

      const stringifier = stringifiers[key] || wildcardStringifier

      switch (typeof value) {
        case 'undefined':
        case 'function':
          continue
        case 'number':
          /* eslint no-fallthrough: "off" */
          if (Number.isFinite(value) === false) {
            value = null
          }
        // this case explicitly falls through to the next one
        case 'boolean':
          if (stringifier) value = stringifier(value)
          break
        case 'string':
          value = (stringifier || asString)(value)
          break
        default:
          value = (stringifier || stringify)(value, stringifySafe)
      }
      if (value === undefined) continue
      const strKey = asString(key)
      propStr += ',' + strKey + ':' + value
    }
  }

  let msgStr = ''
  if (msg !== undefined) {
    value = serializers[messageKey] ? serializers[messageKey](msg) : msg
    const stringifier = stringifiers[messageKey] || wildcardStringifier

    switch (typeof value) {
      case 'function':
        break
      case 'number':
        if (Number.isFinite(value) === false) {
          value = null
        }
      // this case explicitly falls through to the next one
      case 'boolean':
        if (stringifier) value = stringifier(value)
        msgStr = ',"' + messageKey + '":' + value
        break
      case 'string':
        value = (stringifier || asString)(value)
        msgStr = ',"' + messageKey + '":' + value
        break
      default:
        value = (stringifier || stringify)(value, stringifySafe)
        msgStr = ',"' + messageKey + '":' + value
    }
  }

  if (this[nestedKeySym] && propStr) {
    // place all the obj properties under the specified key
    // the nested key is already formatted from the constructor
    return data + this[nestedKeyStrSym] + propStr.slice(1) + '}' + msgStr + end
  } else {
    return data + propStr + msgStr + end
  }
}

function asChindings (instance, bindings) {
  let value
  let data = instance[chindingsSym]
  const stringify = instance[stringifySym]
  const stringifySafe = instance[stringifySafeSym]
  const stringifiers = instance[stringifiersSym]
  const wildcardStringifier = stringifiers[wildcardFirstSym]
  const serializers = instance[serializersSym]
  const formatter = instance[formattersSym].bindings
  bindings = formatter(bindings)

  for (const key in bindings) {
    value = bindings[key]
    const valid = (key.length < 5 || (key !== 'level' &&
      key !== 'serializers' &&
      key !== 'formatters' &&
      key !== 'customLevels')) &&
      bindings.hasOwnProperty(key) &&
      value !== undefined
    if (valid === true) {
      value = serializers[key] ? serializers[key](value) : value
      value = (stringifiers[key] || wildcardStringifier || stringify)(value, stringifySafe)
      if (value === undefined) continue
      data += ',' + asString(key) + ':' + value
    }
  }
  return data
}

function hasBeenTampered (stream) {
  return stream.write !== stream.constructor.prototype.write
}

function buildSafeSonicBoom (opts) {
  const stream = new SonicBoom(opts)
  stream.on('error', filterBrokenPipe)
  // If we are sync: false, we must flush on exit
  if (!opts.sync && isMainThread) {
    onExit.register(stream, autoEnd)

    stream.on('close', function () {
      onExit.unregister(stream)
    })
  }
  return stream

  function filterBrokenPipe (err) {
    // Impossible to replicate across all operating systems
    /* istanbul ignore next */
    if (err.code === 'EPIPE') {
      // If we get EPIPE, we should stop logging here
      // however we have no control to the consumer of
      // SonicBoom, so we just overwrite the write method
      stream.write = noop
      stream.end = noop
      stream.flushSync = noop
      stream.destroy = noop
      return
    }
    stream.removeListener('error', filterBrokenPipe)
    stream.emit('error', err)
  }
}

function autoEnd (stream, eventName) {
  // This check is needed only on some platforms
  /* istanbul ignore next */
  if (stream.destroyed) {
    return
  }

  if (eventName === 'beforeExit') {
    // We still have an event loop, let's use it
    stream.flush()
    stream.on('drain', function () {
      stream.end()
    })
  } else {
    // For some reason istanbul is not detecting this, but it's there
    /* istanbul ignore next */
    // We do not have an event loop, so flush synchronously
    stream.flushSync()
  }
}

function createArgsNormalizer (defaultOptions) {
  return function normalizeArgs (instance, caller, opts = {}, stream) {
    // support stream as a string
    if (typeof opts === 'string') {
      stream = buildSafeSonicBoom({ dest: opts })
      opts = {}
    } else if (typeof stream === 'string') {
      if (opts && opts.transport) {
        throw Error('only one of option.transport or stream can be specified')
      }
      stream = buildSafeSonicBoom({ dest: stream })
    } else if (opts instanceof SonicBoom || opts.writable || opts._writableState) {
      stream = opts
      opts = {}
    } else if (opts.transport) {
      if (opts.transport instanceof SonicBoom || opts.transport.writable || opts.transport._writableState) {
        throw Error('option.transport do not allow stream, please pass to option directly. e.g. pino(transport)')
      }
      if (opts.transport.targets && opts.transport.targets.length && opts.formatters && typeof opts.formatters.level === 'function') {
        throw Error('option.transport.targets do not allow custom level formatters')
      }

      let customLevels
      if (opts.customLevels) {
        customLevels = opts.useOnlyCustomLevels ? opts.customLevels : Object.assign({}, opts.levels, opts.customLevels)
      }
      stream = transport({ caller, ...opts.transport, levels: customLevels })
    }
    opts = Object.assign({}, defaultOptions, opts)
    opts.serializers = Object.assign(Object.create(null), defaultOptions.serializers, opts.serializers)
    opts.formatters = Object.assign({}, defaultOptions.formatters, opts.formatters)

    if (opts.prettyPrint) {
      throw new Error('prettyPrint option is no longer supported, see the pino-pretty package (https://github.com/pinojs/pino-pretty)')
    }

    const { enabled, onChild } = opts
    if (enabled === false) opts.level = 'silent'
    if (!onChild) opts.onChild = noop
    if (!stream) {
      if (!hasBeenTampered(process.stdout)) {
        // If process.stdout.fd is undefined, it means that we are running
        // in a worker thread. Let's assume we are logging to file descriptor 1.
        stream = buildSafeSonicBoom({ fd: process.stdout.fd || 1 })
      } else {
        stream = process.stdout
      }
    }
    return { opts, stream }
  }
}

function stringify (obj, stringifySafeFn) {
  try {
    return JSON.stringify(obj)
  } catch (_) {
    try {
      const stringify = stringifySafeFn || this[stringifySafeSym]
      return stringify(obj)
    } catch (_) {
      return '"[unable to serialize, circular reference is too complex to analyze]"'
    }
  }
}

function buildFormatters (level, bindings, log) {
  return {
    level,
    bindings,
    log
  }
}

/**
 * Convert a string integer file descriptor to a proper native integer
 * file descriptor.
 *
 * @param {string} destination The file descriptor string to attempt to convert.
 *
 * @returns {Number}
 */
function normalizeDestFileDescriptor (destination) {
  const fd = Number(destination)
  if (typeof destination === 'string' && Number.isFinite(fd)) {
    return fd
  }
  // destination could be undefined if we are in a worker
  if (destination === undefined) {
    // This is stdout in UNIX systems
    return 1
  }
  return destination
}

module.exports = {
  noop,
  buildSafeSonicBoom,
  asChindings,
  asJson,
  genLog,
  createArgsNormalizer,
  stringify,
  buildFormatters,
  normalizeDestFileDescriptor
}


/***/ }),

/***/ 4124:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const { createRequire } = __nccwpck_require__(3339)
const { existsSync } = __nccwpck_require__(3024)
const getCallers = __nccwpck_require__(450)
const { join, isAbsolute, sep } = __nccwpck_require__(6760)
const { fileURLToPath } = __nccwpck_require__(3136)
const sleep = __nccwpck_require__(479)
const onExit = __nccwpck_require__(9761)
const ThreadStream = __nccwpck_require__(1367)

const { transportUsesMultistreamSym } = __nccwpck_require__(2520)

function setupOnExit (stream) {
  // This is leak free, it does not leave event handlers
  onExit.register(stream, autoEnd)
  onExit.registerBeforeExit(stream, flush)

  stream.on('close', function () {
    onExit.unregister(stream)
  })
}

// Check if preload flags exist in execArgv.
// During preload phase (require.main undefined), we pass empty execArgv to prevent infinite worker spawning.
// We don't try to filter and pass other flags because many (like --stack-trace-limit, --tls-cipher-list)
// aren't valid for worker threads and would cause ERR_WORKER_INVALID_EXEC_ARGV.
function hasPreloadFlags () {
  const execArgv = process.execArgv
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]
    if (arg === '--import' || arg === '--require' || arg === '-r') {
      return true
    }
    if (arg.startsWith('--import=') || arg.startsWith('--require=') || arg.startsWith('-r=')) {
      return true
    }
  }
  return false
}

function sanitizeNodeOptions (nodeOptions) {
  const tokens = nodeOptions.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g)
  if (!tokens) {
    return nodeOptions
  }

  const sanitized = []
  let changed = false

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]

    if (token === '--require' || token === '-r' || token === '--import') {
      const next = tokens[i + 1]
      if (next && shouldDropPreload(next)) {
        changed = true
        i++
        continue
      }

      sanitized.push(token)
      if (next) {
        sanitized.push(next)
        i++
      }
      continue
    }

    if (token.startsWith('--require=') || token.startsWith('-r=') || token.startsWith('--import=')) {
      const value = token.slice(token.indexOf('=') + 1)
      if (shouldDropPreload(value)) {
        changed = true
        continue
      }
    }

    sanitized.push(token)
  }

  return changed ? sanitized.join(' ') : nodeOptions
}

function shouldDropPreload (value) {
  const unquoted = stripQuotes(value)
  if (!unquoted) {
    return false
  }

  let path = unquoted
  if (path.startsWith('file://')) {
    try {
      path = fileURLToPath(path)
    } catch {
      return false
    }
  }

  return isAbsolute(path) && !existsSync(path)
}

function stripQuotes (value) {
  const first = value[0]
  const last = value[value.length - 1]

  if ((first === '"' && last === '"') || (first === "'" && last === "'")) {
    return value.slice(1, -1)
  }

  return value
}

function buildStream (filename, workerData, workerOpts, sync, name) {
  // When pino is loaded during a preload phase (via --import or --require),
  // pass empty execArgv to prevent infinite spawning. Each worker would
  // otherwise re-run the preload, creating another transport.
  if (!workerOpts.execArgv && hasPreloadFlags() && __WEBPACK_EXTERNAL_createRequire(import.meta.url).main === undefined) {
    workerOpts = {
      ...workerOpts,
      execArgv: []
    }
  }

  if (!workerOpts.env && process.env.NODE_OPTIONS) {
    const nodeOptions = sanitizeNodeOptions(process.env.NODE_OPTIONS)
    if (nodeOptions !== process.env.NODE_OPTIONS) {
      workerOpts = {
        ...workerOpts,
        env: {
          ...process.env,
          NODE_OPTIONS: nodeOptions
        }
      }
    }
  }

  workerOpts = { ...workerOpts, name }

  const stream = new ThreadStream({
    filename,
    workerData,
    workerOpts,
    sync
  })

  stream.on('ready', onReady)
  stream.on('close', function () {
    process.removeListener('exit', onExit)
  })

  process.on('exit', onExit)

  function onReady () {
    process.removeListener('exit', onExit)
    stream.unref()

    if (workerOpts.autoEnd !== false) {
      setupOnExit(stream)
    }
  }

  function onExit () {
    /* istanbul ignore next */
    if (stream.closed) {
      return
    }
    stream.flushSync()
    // Apparently there is a very sporadic race condition
    // that in certain OS would prevent the messages to be flushed
    // because the thread might not have been created still.
    // Unfortunately we need to sleep(100) in this case.
    sleep(100)
    stream.end()
  }

  return stream
}

function autoEnd (stream) {
  stream.ref()
  stream.flushSync()
  stream.end()
  stream.once('close', function () {
    stream.unref()
  })
}

function flush (stream) {
  stream.flushSync()
}

function transport (fullOptions) {
  const { pipeline, targets, levels, dedupe, worker = {}, caller = getCallers(), sync = false } = fullOptions

  const options = {
    ...fullOptions.options
  }

  let usesMultistream = false

  // Backwards compatibility
  const callers = typeof caller === 'string' ? [caller] : caller

  // This will be eventually modified by bundlers
  const bundlerOverrides = (typeof globalThis === 'object' &&
    Object.prototype.hasOwnProperty.call(globalThis, '__bundlerPathsOverrides') &&
    globalThis.__bundlerPathsOverrides &&
    typeof globalThis.__bundlerPathsOverrides === 'object')
    ? globalThis.__bundlerPathsOverrides
    : Object.create(null)

  let target = fullOptions.target

  if (target && targets) {
    throw new Error('only one of target or targets can be specified')
  }

  if (targets) {
    target = bundlerOverrides['pino-worker'] || __nccwpck_require__.ab + "worker.js"
    options.targets = targets.filter(dest => dest.target).map((dest) => {
      return {
        ...dest,
        target: fixTarget(dest.target)
      }
    })
    options.pipelines = targets.filter(dest => dest.pipeline).map((dest) => {
      return dest.pipeline.map((t) => {
        return {
          ...t,
          level: dest.level, // duplicate the pipeline `level` property defined in the upper level
          target: fixTarget(t.target)
        }
      })
    })

    const targetsHaveLevel = options.targets.some(t => t.level != null)
    const pipelinesHaveLevel = options.pipelines.some(p => p.some(t => t.level != null))
    usesMultistream = options.targets.length + options.pipelines.length > 1 ||
      targetsHaveLevel || pipelinesHaveLevel
  } else if (pipeline) {
    target = bundlerOverrides['pino-worker'] || __nccwpck_require__.ab + "worker.js"
    options.pipelines = [pipeline.map((dest) => {
      return {
        ...dest,
        target: fixTarget(dest.target)
      }
    })]
  }

  if (levels) {
    options.levels = levels
  }

  if (dedupe) {
    options.dedupe = dedupe
  }

  options.pinoWillSendConfig = true

  const name = (targets || pipeline) ? 'pino.transport' : target
  const stream = buildStream(fixTarget(target), options, worker, sync, name)
  if (usesMultistream) {
    stream[transportUsesMultistreamSym] = true
  }
  return stream

  function fixTarget (origin) {
    origin = bundlerOverrides[origin] || origin

    if (isAbsolute(origin) || origin.indexOf('file://') === 0) {
      return origin
    }

    if (origin === 'pino/file') {
      return __nccwpck_require__.ab + "file.js"
    }

    let fixTarget

    for (const filePath of callers) {
      try {
        const context = filePath === 'node:repl'
          ? process.cwd() + sep
          : filePath

        fixTarget = createRequire(context).resolve(origin)
        break
      } catch (err) {
        // Silent catch
        continue
      }
    }

    if (!fixTarget) {
      throw new Error(`unable to determine transport target for "${origin}"`)
    }

    return fixTarget
  }
}

module.exports = transport


/***/ }),

/***/ 5005:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const os = __nccwpck_require__(8161)
const stdSerializers = __nccwpck_require__(1245)
const caller = __nccwpck_require__(450)
const redaction = __nccwpck_require__(9096)
const time = __nccwpck_require__(4416)
const proto = __nccwpck_require__(1239)
const symbols = __nccwpck_require__(2520)
const { configure } = __nccwpck_require__(7467)
const { assertDefaultLevelFound, mappings, genLsCache, genLevelComparison, assertLevelComparison } = __nccwpck_require__(3114)
const { DEFAULT_LEVELS, SORTING_ORDER } = __nccwpck_require__(3256)
const {
  createArgsNormalizer,
  asChindings,
  buildSafeSonicBoom,
  buildFormatters,
  stringify,
  normalizeDestFileDescriptor,
  noop
} = __nccwpck_require__(2694)
const { version } = __nccwpck_require__(4052)
const {
  chindingsSym,
  redactFmtSym,
  serializersSym,
  timeSym,
  timeSliceIndexSym,
  streamSym,
  stringifySym,
  stringifySafeSym,
  stringifiersSym,
  setLevelSym,
  endSym,
  formatOptsSym,
  messageKeySym,
  errorKeySym,
  nestedKeySym,
  mixinSym,
  levelCompSym,
  useOnlyCustomLevelsSym,
  formattersSym,
  hooksSym,
  nestedKeyStrSym,
  mixinMergeStrategySym,
  msgPrefixSym,
  transportUsesMultistreamSym
} = symbols
const { epochTime, nullTime } = time
const { pid } = process
const hostname = os.hostname()
const defaultErrorSerializer = stdSerializers.err
const defaultOptions = {
  level: 'info',
  levelComparison: SORTING_ORDER.ASC,
  levels: DEFAULT_LEVELS,
  messageKey: 'msg',
  errorKey: 'err',
  nestedKey: null,
  enabled: true,
  base: { pid, hostname },
  serializers: Object.assign(Object.create(null), {
    err: defaultErrorSerializer
  }),
  formatters: Object.assign(Object.create(null), {
    bindings (bindings) {
      return bindings
    },
    level (label, number) {
      return { level: number }
    }
  }),
  hooks: {
    logMethod: undefined,
    streamWrite: undefined
  },
  timestamp: epochTime,
  name: undefined,
  redact: null,
  customLevels: null,
  useOnlyCustomLevels: false,
  depthLimit: 5,
  edgeLimit: 100
}

const normalize = createArgsNormalizer(defaultOptions)

const serializers = Object.assign(Object.create(null), stdSerializers)

function pino (...args) {
  const instance = {}
  const { opts, stream } = normalize(instance, caller(), ...args)

  if (opts.level && typeof opts.level === 'string' && DEFAULT_LEVELS[opts.level.toLowerCase()] !== undefined) opts.level = opts.level.toLowerCase()

  const {
    redact,
    crlf,
    serializers,
    timestamp,
    messageKey,
    errorKey,
    nestedKey,
    base,
    name,
    level,
    customLevels,
    levelComparison,
    mixin,
    mixinMergeStrategy,
    useOnlyCustomLevels,
    formatters,
    hooks,
    depthLimit,
    edgeLimit,
    onChild,
    msgPrefix
  } = opts

  const stringifySafe = configure({
    maximumDepth: depthLimit,
    maximumBreadth: edgeLimit
  })

  const allFormatters = buildFormatters(
    formatters.level,
    formatters.bindings,
    formatters.log
  )

  const stringifyFn = stringify.bind({
    [stringifySafeSym]: stringifySafe
  })
  const stringifiers = redact
    ? Object.assign(Object.create(null), redaction(redact, stringifyFn))
    : Object.create(null)
  const formatOpts = redact
    ? { stringify: stringifiers[redactFmtSym] }
    : { stringify: stringifyFn }
  const end = '}' + (crlf ? '\r\n' : '\n')
  const coreChindings = asChindings.bind(null, {
    [chindingsSym]: '',
    [serializersSym]: serializers,
    [stringifiersSym]: stringifiers,
    [stringifySym]: stringify,
    [stringifySafeSym]: stringifySafe,
    [formattersSym]: allFormatters
  })

  let chindings = ''
  if (base !== null) {
    if (name === undefined) {
      chindings = coreChindings(base)
    } else {
      chindings = coreChindings(Object.assign({}, base, { name }))
    }
  }

  const time = (timestamp instanceof Function)
    ? timestamp
    : (timestamp ? epochTime : nullTime)
  const timeSliceIndex = time().indexOf(':') + 1

  if (useOnlyCustomLevels && !customLevels) throw Error('customLevels is required if useOnlyCustomLevels is set true')
  if (mixin && typeof mixin !== 'function') throw Error(`Unknown mixin type "${typeof mixin}" - expected "function"`)
  if (msgPrefix && typeof msgPrefix !== 'string') throw Error(`Unknown msgPrefix type "${typeof msgPrefix}" - expected "string"`)

  assertDefaultLevelFound(level, customLevels, useOnlyCustomLevels)
  const levels = mappings(customLevels, useOnlyCustomLevels)

  if (stream && stream[transportUsesMultistreamSym] === true) {
    let sampleLabel = typeof level === 'string' ? level : undefined
    if (!sampleLabel || levels[sampleLabel] === undefined) {
      sampleLabel = Object.keys(levels)[0]
    }
    const sampleNumber = levels[sampleLabel]
    let ok = false
    try {
      const formatted = formatters.level(sampleLabel, sampleNumber)
      ok = formatted && typeof formatted === 'object' && formatted.level === sampleNumber
    } catch {
      ok = false
    }

    if (!ok) {
      process.emitWarning(
        'custom formatters.level detected with multiple transport targets/pipelines; ensure logs include a numeric "level" field or they may be dropped',
        { code: 'PINO_TRANSPORT_MULTI_TARGETS_LEVEL_FORMATTER' }
      )
    }
  }

  if (typeof stream.emit === 'function') {
    stream.emit('message', { code: 'PINO_CONFIG', config: { levels, messageKey, errorKey } })
  }

  assertLevelComparison(levelComparison)
  const levelCompFunc = genLevelComparison(levelComparison)

  Object.assign(instance, {
    levels,
    [levelCompSym]: levelCompFunc,
    [useOnlyCustomLevelsSym]: useOnlyCustomLevels,
    [streamSym]: stream,
    [timeSym]: time,
    [timeSliceIndexSym]: timeSliceIndex,
    [stringifySym]: stringify,
    [stringifySafeSym]: stringifySafe,
    [stringifiersSym]: stringifiers,
    [endSym]: end,
    [formatOptsSym]: formatOpts,
    [messageKeySym]: messageKey,
    [errorKeySym]: errorKey,
    [nestedKeySym]: nestedKey,
    // protect against injection
    [nestedKeyStrSym]: nestedKey ? `,${JSON.stringify(nestedKey)}:{` : '',
    [serializersSym]: serializers,
    [mixinSym]: mixin,
    [mixinMergeStrategySym]: mixinMergeStrategy,
    [chindingsSym]: chindings,
    [formattersSym]: allFormatters,
    [hooksSym]: hooks,
    silent: noop,
    onChild,
    [msgPrefixSym]: msgPrefix
  })

  Object.setPrototypeOf(instance, proto())

  genLsCache(instance)

  instance[setLevelSym](level)

  return instance
}

module.exports = pino

module.exports.destination = (dest = process.stdout.fd) => {
  if (typeof dest === 'object') {
    dest.dest = normalizeDestFileDescriptor(dest.dest || process.stdout.fd)
    return buildSafeSonicBoom(dest)
  } else {
    return buildSafeSonicBoom({ dest: normalizeDestFileDescriptor(dest), minLength: 0 })
  }
}

module.exports.transport = __nccwpck_require__(4124)
module.exports.multistream = __nccwpck_require__(112)

module.exports.levels = mappings()
module.exports.stdSerializers = serializers
module.exports.stdTimeFunctions = Object.assign({}, time)
module.exports.symbols = symbols
module.exports.version = version

// Enables default and name export with TypeScript and Babel
module.exports["default"] = pino
module.exports.pino = pino


/***/ }),

/***/ 1037:
/***/ ((module, __unused_webpack_exports, __nccwpck_require__) => {



const fs = __nccwpck_require__(9896)
const EventEmitter = __nccwpck_require__(4434)
const inherits = (__nccwpck_require__(9023).inherits)
const path = __nccwpck_require__(6928)
const sleep = __nccwpck_require__(479)
const assert = __nccwpck_require__(2613)

const BUSY_WRITE_TIMEOUT = 100
const kEmptyBuffer = Buffer.allocUnsafe(0)

// 16 KB. Don't write more than docker buffer size.
// https://github.com/moby/moby/blob/513ec73831269947d38a644c278ce3cac36783b2/daemon/logger/copier.go#L13
const MAX_WRITE = 16 * 1024

const kContentModeBuffer = 'buffer'
const kContentModeUtf8 = 'utf8'

const [major, minor] = (process.versions.node || '0.0').split('.').map(Number)
const kCopyBuffer = major >= 22 && minor >= 7

function openFile (file, sonic) {
  sonic._opening = true
  sonic._writing = true
  sonic._asyncDrainScheduled = false

  // NOTE: 'error' and 'ready' events emitted below only relevant when sonic.sync===false
  // for sync mode, there is no way to add a listener that will receive these

  function fileOpened (err, fd) {
    if (err) {
      sonic._reopening = false
      sonic._writing = false
      sonic._opening = false

      if (sonic.sync) {
        process.nextTick(() => {
          if (sonic.listenerCount('error') > 0) {
            sonic.emit('error', err)
          }
        })
      } else {
        sonic.emit('error', err)
      }
      return
    }

    const reopening = sonic._reopening

    sonic.fd = fd
    sonic.file = file
    sonic._reopening = false
    sonic._opening = false
    sonic._writing = false

    if (sonic.sync) {
      process.nextTick(() => sonic.emit('ready'))
    } else {
      sonic.emit('ready')
    }

    if (sonic.destroyed) {
      return
    }

    // start
    if ((!sonic._writing && sonic._len > sonic.minLength) || sonic._flushPending) {
      sonic._actualWrite()
    } else if (reopening) {
      process.nextTick(() => sonic.emit('drain'))
    }
  }

  const flags = sonic.append ? 'a' : 'w'
  const mode = sonic.mode

  if (sonic.sync) {
    try {
      if (sonic.mkdir) fs.mkdirSync(path.dirname(file), { recursive: true })
      const fd = fs.openSync(file, flags, mode)
      fileOpened(null, fd)
    } catch (err) {
      fileOpened(err)
      throw err
    }
  } else if (sonic.mkdir) {
    fs.mkdir(path.dirname(file), { recursive: true }, (err) => {
      if (err) return fileOpened(err)
      fs.open(file, flags, mode, fileOpened)
    })
  } else {
    fs.open(file, flags, mode, fileOpened)
  }
}

function SonicBoom (opts) {
  if (!(this instanceof SonicBoom)) {
    return new SonicBoom(opts)
  }

  let { fd, dest, minLength, maxLength, maxWrite, periodicFlush, sync, append = true, mkdir, retryEAGAIN, fsync, contentMode, mode } = opts || {}

  fd = fd || dest

  this._len = 0
  this.fd = -1
  this._bufs = []
  this._lens = []
  this._writing = false
  this._ending = false
  this._reopening = false
  this._asyncDrainScheduled = false
  this._flushPending = false
  this._hwm = Math.max(minLength || 0, 16387)
  this.file = null
  this.destroyed = false
  this.minLength = minLength || 0
  this.maxLength = maxLength || 0
  this.maxWrite = maxWrite || MAX_WRITE
  this._periodicFlush = periodicFlush || 0
  this._periodicFlushTimer = undefined
  this.sync = sync || false
  this.writable = true
  this._fsync = fsync || false
  this.append = append || false
  this.mode = mode
  this.retryEAGAIN = retryEAGAIN || (() => true)
  this.mkdir = mkdir || false

  let fsWriteSync
  let fsWrite
  if (contentMode === kContentModeBuffer) {
    this._writingBuf = kEmptyBuffer
    this.write = writeBuffer
    this.flush = flushBuffer
    this.flushSync = flushBufferSync
    this._actualWrite = actualWriteBuffer
    fsWriteSync = () => fs.writeSync(this.fd, this._writingBuf)
    fsWrite = () => fs.write(this.fd, this._writingBuf, this.release)
  } else if (contentMode === undefined || contentMode === kContentModeUtf8) {
    this._writingBuf = ''
    this.write = write
    this.flush = flush
    this.flushSync = flushSync
    this._actualWrite = actualWrite
    fsWriteSync = () => {
      if (Buffer.isBuffer(this._writingBuf)) {
        return fs.writeSync(this.fd, this._writingBuf)
      }
      return fs.writeSync(this.fd, this._writingBuf, 'utf8')
    }
    fsWrite = () => {
      if (Buffer.isBuffer(this._writingBuf)) {
        return fs.write(this.fd, this._writingBuf, this.release)
      }
      return fs.write(this.fd, this._writingBuf, 'utf8', this.release)
    }
  } else {
    throw new Error(`SonicBoom supports "${kContentModeUtf8}" and "${kContentModeBuffer}", but passed ${contentMode}`)
  }

  if (typeof fd === 'number') {
    this.fd = fd
    process.nextTick(() => this.emit('ready'))
  } else if (typeof fd === 'string') {
    openFile(fd, this)
  } else {
    throw new Error('SonicBoom supports only file descriptors and files')
  }
  if (this.minLength >= this.maxWrite) {
    throw new Error(`minLength should be smaller than maxWrite (${this.maxWrite})`)
  }

  this.release = (err, n) => {
    if (err) {
      if ((err.code === 'EAGAIN' || err.code === 'EBUSY') && this.retryEAGAIN(err, this._writingBuf.length, this._len - this._writingBuf.length)) {
        if (this.sync) {
          // This error code should not happen in sync mode, because it is
          // not using the underlining operating system asynchronous functions.
          // However it happens, and so we handle it.
          // Ref: https://github.com/pinojs/pino/issues/783
          try {
            sleep(BUSY_WRITE_TIMEOUT)
            this.release(undefined, 0)
          } catch (err) {
            this.release(err)
          }
        } else {
          // Let's give the destination some time to process the chunk.
          setTimeout(fsWrite, BUSY_WRITE_TIMEOUT)
        }
      } else {
        this._writing = false

        this.emit('error', err)
      }
      return
    }

    this.emit('write', n)
    const releasedBufObj = releaseWritingBuf(this._writingBuf, this._len, n)
    this._len = releasedBufObj.len
    this._writingBuf = releasedBufObj.writingBuf

    if (this._writingBuf.length) {
      if (!this.sync) {
        fsWrite()
        return
      }

      try {
        do {
          const n = fsWriteSync()
          const releasedBufObj = releaseWritingBuf(this._writingBuf, this._len, n)
          this._len = releasedBufObj.len
          this._writingBuf = releasedBufObj.writingBuf
        } while (this._writingBuf.length)
      } catch (err) {
        this.release(err)
        return
      }
    }

    if (this._fsync) {
      fs.fsyncSync(this.fd)
    }

    const len = this._len
    if (this._reopening) {
      this._writing = false
      this._reopening = false
      this.reopen()
    } else if (len > this.minLength) {
      this._actualWrite()
    } else if (this._ending) {
      if (len > 0) {
        this._actualWrite()
      } else {
        this._writing = false
        actualClose(this)
      }
    } else {
      this._writing = false
      if (this.sync) {
        if (!this._asyncDrainScheduled) {
          this._asyncDrainScheduled = true
          process.nextTick(emitDrain, this)
        }
      } else {
        this.emit('drain')
      }
    }
  }

  this.on('newListener', function (name) {
    if (name === 'drain') {
      this._asyncDrainScheduled = false
    }
  })

  if (this._periodicFlush !== 0) {
    this._periodicFlushTimer = setInterval(() => this.flush(null), this._periodicFlush)
    this._periodicFlushTimer.unref()
  }
}

/**
 * Release the writingBuf after fs.write n bytes data
 * @param {string | Buffer} writingBuf - currently writing buffer, usually be instance._writingBuf.
 * @param {number} len - currently buffer length, usually be instance._len.
 * @param {number} n - number of bytes fs already written
 * @returns {{writingBuf: string | Buffer, len: number}} released writingBuf and length
 */
function releaseWritingBuf (writingBuf, len, n) {
  if (typeof writingBuf === 'string') {
    writingBuf = Buffer.from(writingBuf)
  }

  len = Math.max(len - n, 0)
  writingBuf = writingBuf.subarray(n)
  return { writingBuf, len }
}

function emitDrain (sonic) {
  const hasListeners = sonic.listenerCount('drain') > 0
  if (!hasListeners) return
  sonic._asyncDrainScheduled = false
  sonic.emit('drain')
}

inherits(SonicBoom, EventEmitter)

function mergeBuf (bufs, len) {
  if (bufs.length === 0) {
    return kEmptyBuffer
  }

  if (bufs.length === 1) {
    return bufs[0]
  }

  return Buffer.concat(bufs, len)
}

function write (data) {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  data = '' + data
  const dataLen = Buffer.byteLength(data)
  const len = this._len + dataLen
  const bufs = this._bufs

  if (this.maxLength && len > this.maxLength) {
    this.emit('drop', data)
    return this._len < this._hwm
  }

  if (
    bufs.length === 0 ||
    Buffer.byteLength(bufs[bufs.length - 1]) + dataLen > this.maxWrite
  ) {
    bufs.push(data)
  } else {
    bufs[bufs.length - 1] += data
  }

  this._len = len

  if (!this._writing && this._len >= this.minLength) {
    this._actualWrite()
  }

  return this._len < this._hwm
}

function writeBuffer (data) {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  const len = this._len + data.length
  const bufs = this._bufs
  const lens = this._lens

  if (this.maxLength && len > this.maxLength) {
    this.emit('drop', data)
    return this._len < this._hwm
  }

  if (
    bufs.length === 0 ||
    lens[lens.length - 1] + data.length > this.maxWrite
  ) {
    bufs.push([data])
    lens.push(data.length)
  } else {
    bufs[bufs.length - 1].push(data)
    lens[lens.length - 1] += data.length
  }

  this._len = len

  if (!this._writing && this._len >= this.minLength) {
    this._actualWrite()
  }

  return this._len < this._hwm
}

function callFlushCallbackOnDrain (cb) {
  this._flushPending = true
  const onDrain = () => {
    // only if _fsync is false to avoid double fsync
    if (!this._fsync) {
      try {
        fs.fsync(this.fd, (err) => {
          this._flushPending = false
          cb(err)
        })
      } catch (err) {
        cb(err)
      }
    } else {
      this._flushPending = false
      cb()
    }
    this.off('error', onError)
  }
  const onError = (err) => {
    this._flushPending = false
    cb(err)
    this.off('drain', onDrain)
  }

  this.once('drain', onDrain)
  this.once('error', onError)
}

function flush (cb) {
  if (cb != null && typeof cb !== 'function') {
    throw new Error('flush cb must be a function')
  }

  if (this.destroyed) {
    const error = new Error('SonicBoom destroyed')
    if (cb) {
      cb(error)
      return
    }

    throw error
  }

  if (this.minLength <= 0) {
    cb?.()
    return
  }

  if (cb) {
    callFlushCallbackOnDrain.call(this, cb)
  }

  if (this._writing) {
    return
  }

  if (this._bufs.length === 0) {
    this._bufs.push('')
  }

  this._actualWrite()
}

function flushBuffer (cb) {
  if (cb != null && typeof cb !== 'function') {
    throw new Error('flush cb must be a function')
  }

  if (this.destroyed) {
    const error = new Error('SonicBoom destroyed')
    if (cb) {
      cb(error)
      return
    }

    throw error
  }

  if (this.minLength <= 0) {
    cb?.()
    return
  }

  if (cb) {
    callFlushCallbackOnDrain.call(this, cb)
  }

  if (this._writing) {
    return
  }

  if (this._bufs.length === 0) {
    this._bufs.push([])
    this._lens.push(0)
  }

  this._actualWrite()
}

SonicBoom.prototype.reopen = function (file) {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  if (this._opening) {
    this.once('ready', () => {
      this.reopen(file)
    })
    return
  }

  if (this._ending) {
    return
  }

  if (!this.file) {
    throw new Error('Unable to reopen a file descriptor, you must pass a file to SonicBoom')
  }

  if (file) {
    this.file = file
  }
  this._reopening = true

  if (this._writing) {
    return
  }

  const fd = this.fd
  this.once('ready', () => {
    if (fd !== this.fd) {
      fs.close(fd, (err) => {
        if (err) {
          return this.emit('error', err)
        }
      })
    }
  })

  openFile(this.file, this)
}

SonicBoom.prototype.end = function () {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  if (this._opening) {
    this.once('ready', () => {
      this.end()
    })
    return
  }

  if (this._ending) {
    return
  }

  this._ending = true

  if (this._writing) {
    return
  }

  if (this._len > 0 && this.fd >= 0) {
    this._actualWrite()
  } else {
    actualClose(this)
  }
}

function flushSync () {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  if (this.fd < 0) {
    throw new Error('sonic boom is not ready yet')
  }

  if (!this._writing && this._writingBuf.length > 0) {
    this._bufs.unshift(this._writingBuf)
    this._writingBuf = ''
  }

  let buf = ''
  while (this._bufs.length || buf.length) {
    if (buf.length <= 0) {
      buf = this._bufs[0]
    }
    try {
      const n = Buffer.isBuffer(buf)
        ? fs.writeSync(this.fd, buf)
        : fs.writeSync(this.fd, buf, 'utf8')
      const releasedBufObj = releaseWritingBuf(buf, this._len, n)
      buf = releasedBufObj.writingBuf
      this._len = releasedBufObj.len
      if (buf.length <= 0) {
        this._bufs.shift()
      }
    } catch (err) {
      const shouldRetry = err.code === 'EAGAIN' || err.code === 'EBUSY'
      if (shouldRetry && !this.retryEAGAIN(err, buf.length, this._len - buf.length)) {
        throw err
      }

      sleep(BUSY_WRITE_TIMEOUT)
    }
  }

  try {
    fs.fsyncSync(this.fd)
  } catch {
    // Skip the error. The fd might not support fsync.
  }
}

function flushBufferSync () {
  if (this.destroyed) {
    throw new Error('SonicBoom destroyed')
  }

  if (this.fd < 0) {
    throw new Error('sonic boom is not ready yet')
  }

  if (!this._writing && this._writingBuf.length > 0) {
    this._bufs.unshift([this._writingBuf])
    this._writingBuf = kEmptyBuffer
  }

  let buf = kEmptyBuffer
  while (this._bufs.length || buf.length) {
    if (buf.length <= 0) {
      buf = mergeBuf(this._bufs[0], this._lens[0])
    }
    try {
      const n = fs.writeSync(this.fd, buf)
      buf = buf.subarray(n)
      this._len = Math.max(this._len - n, 0)
      if (buf.length <= 0) {
        this._bufs.shift()
        this._lens.shift()
      }
    } catch (err) {
      const shouldRetry = err.code === 'EAGAIN' || err.code === 'EBUSY'
      if (shouldRetry && !this.retryEAGAIN(err, buf.length, this._len - buf.length)) {
        throw err
      }

      sleep(BUSY_WRITE_TIMEOUT)
    }
  }
}

SonicBoom.prototype.destroy = function () {
  if (this.destroyed) {
    return
  }
  actualClose(this)
}

function actualWrite () {
  const release = this.release
  this._writing = true
  this._writingBuf = this._writingBuf.length ? this._writingBuf : this._bufs.shift() || ''

  if (this.sync) {
    try {
      const written = Buffer.isBuffer(this._writingBuf)
        ? fs.writeSync(this.fd, this._writingBuf)
        : fs.writeSync(this.fd, this._writingBuf, 'utf8')
      release(null, written)
    } catch (err) {
      release(err)
    }
  } else {
    fs.write(this.fd, this._writingBuf, release)
  }
}

function actualWriteBuffer () {
  const release = this.release
  this._writing = true
  this._writingBuf = this._writingBuf.length ? this._writingBuf : mergeBuf(this._bufs.shift(), this._lens.shift())

  if (this.sync) {
    try {
      const written = fs.writeSync(this.fd, this._writingBuf)
      release(null, written)
    } catch (err) {
      release(err)
    }
  } else {
    // fs.write will need to copy string to buffer anyway so
    // we do it here to avoid the overhead of calculating the buffer size
    // in releaseWritingBuf.
    if (kCopyBuffer) {
      this._writingBuf = Buffer.from(this._writingBuf)
    }
    fs.write(this.fd, this._writingBuf, release)
  }
}

function actualClose (sonic) {
  if (sonic.fd === -1) {
    sonic.once('ready', actualClose.bind(null, sonic))
    return
  }

  if (sonic._periodicFlushTimer !== undefined) {
    clearInterval(sonic._periodicFlushTimer)
  }

  sonic.destroyed = true
  sonic._bufs = []
  sonic._lens = []

  assert(typeof sonic.fd === 'number', `sonic.fd must be a number, got ${typeof sonic.fd}`)
  try {
    fs.fsync(sonic.fd, closeWrapped)
  } catch {
  }

  function closeWrapped () {
    // We skip errors in fsync

    if (sonic.fd !== 1 && sonic.fd !== 2) {
      fs.close(sonic.fd, done)
    } else {
      done()
    }
  }

  function done (err) {
    if (err) {
      sonic.emit('error', err)
      return
    }

    if (sonic._ending && !sonic._writing) {
      sonic.emit('finish')
    }
    sonic.emit('close')
  }
}

/**
 * These export configurations enable JS and TS developers
 * to consumer SonicBoom in whatever way best suits their needs.
 * Some examples of supported import syntax includes:
 * - `const SonicBoom = require('SonicBoom')`
 * - `const { SonicBoom } = require('SonicBoom')`
 * - `import * as SonicBoom from 'SonicBoom'`
 * - `import { SonicBoom } from 'SonicBoom'`
 * - `import SonicBoom from 'SonicBoom'`
 */
SonicBoom.SonicBoom = SonicBoom
SonicBoom.default = SonicBoom
module.exports = SonicBoom


/***/ }),

/***/ 7349:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);
var YAMLMap = __nccwpck_require__(4454);
var YAMLSeq = __nccwpck_require__(2223);
var resolveBlockMap = __nccwpck_require__(7103);
var resolveBlockSeq = __nccwpck_require__(334);
var resolveFlowCollection = __nccwpck_require__(3142);

function resolveCollection(CN, ctx, token, onError, tagName, tag) {
    const coll = token.type === 'block-map'
        ? resolveBlockMap.resolveBlockMap(CN, ctx, token, onError, tag)
        : token.type === 'block-seq'
            ? resolveBlockSeq.resolveBlockSeq(CN, ctx, token, onError, tag)
            : resolveFlowCollection.resolveFlowCollection(CN, ctx, token, onError, tag);
    const Coll = coll.constructor;
    // If we got a tagName matching the class, or the tag name is '!',
    // then use the tagName from the node class used to create it.
    if (tagName === '!' || tagName === Coll.tagName) {
        coll.tag = Coll.tagName;
        return coll;
    }
    if (tagName)
        coll.tag = tagName;
    return coll;
}
function composeCollection(CN, ctx, token, props, onError) {
    const tagToken = props.tag;
    const tagName = !tagToken
        ? null
        : ctx.directives.tagName(tagToken.source, msg => onError(tagToken, 'TAG_RESOLVE_FAILED', msg));
    if (token.type === 'block-seq') {
        const { anchor, newlineAfterProp: nl } = props;
        const lastProp = anchor && tagToken
            ? anchor.offset > tagToken.offset
                ? anchor
                : tagToken
            : (anchor ?? tagToken);
        if (lastProp && (!nl || nl.offset < lastProp.offset)) {
            const message = 'Missing newline after block sequence props';
            onError(lastProp, 'MISSING_CHAR', message);
        }
    }
    const expType = token.type === 'block-map'
        ? 'map'
        : token.type === 'block-seq'
            ? 'seq'
            : token.start.source === '{'
                ? 'map'
                : 'seq';
    // shortcut: check if it's a generic YAMLMap or YAMLSeq
    // before jumping into the custom tag logic.
    if (!tagToken ||
        !tagName ||
        tagName === '!' ||
        (tagName === YAMLMap.YAMLMap.tagName && expType === 'map') ||
        (tagName === YAMLSeq.YAMLSeq.tagName && expType === 'seq')) {
        return resolveCollection(CN, ctx, token, onError, tagName);
    }
    let tag = ctx.schema.tags.find(t => t.tag === tagName && t.collection === expType);
    if (!tag) {
        const kt = ctx.schema.knownTags[tagName];
        if (kt?.collection === expType) {
            ctx.schema.tags.push(Object.assign({}, kt, { default: false }));
            tag = kt;
        }
        else {
            if (kt) {
                onError(tagToken, 'BAD_COLLECTION_TYPE', `${kt.tag} used for ${expType} collection, but expects ${kt.collection ?? 'scalar'}`, true);
            }
            else {
                onError(tagToken, 'TAG_RESOLVE_FAILED', `Unresolved tag: ${tagName}`, true);
            }
            return resolveCollection(CN, ctx, token, onError, tagName);
        }
    }
    const coll = resolveCollection(CN, ctx, token, onError, tagName, tag);
    const res = tag.resolve?.(coll, msg => onError(tagToken, 'TAG_RESOLVE_FAILED', msg), ctx.options) ?? coll;
    const node = identity.isNode(res)
        ? res
        : new Scalar.Scalar(res);
    node.range = coll.range;
    node.tag = tagName;
    if (tag?.format)
        node.format = tag.format;
    return node;
}

exports.composeCollection = composeCollection;


/***/ }),

/***/ 3683:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Document = __nccwpck_require__(3021);
var composeNode = __nccwpck_require__(5937);
var resolveEnd = __nccwpck_require__(7788);
var resolveProps = __nccwpck_require__(4631);

function composeDoc(options, directives, { offset, start, value, end }, onError) {
    const opts = Object.assign({ _directives: directives }, options);
    const doc = new Document.Document(undefined, opts);
    const ctx = {
        atKey: false,
        atRoot: true,
        directives: doc.directives,
        options: doc.options,
        schema: doc.schema
    };
    const props = resolveProps.resolveProps(start, {
        indicator: 'doc-start',
        next: value ?? end?.[0],
        offset,
        onError,
        parentIndent: 0,
        startOnNewline: true
    });
    if (props.found) {
        doc.directives.docStart = true;
        if (value &&
            (value.type === 'block-map' || value.type === 'block-seq') &&
            !props.hasNewline)
            onError(props.end, 'MISSING_CHAR', 'Block collection cannot start on same line with directives-end marker');
    }
    // @ts-expect-error If Contents is set, let's trust the user
    doc.contents = value
        ? composeNode.composeNode(ctx, value, props, onError)
        : composeNode.composeEmptyNode(ctx, props.end, start, null, props, onError);
    const contentEnd = doc.contents.range[2];
    const re = resolveEnd.resolveEnd(end, contentEnd, false, onError);
    if (re.comment)
        doc.comment = re.comment;
    doc.range = [offset, contentEnd, re.offset];
    return doc;
}

exports.composeDoc = composeDoc;


/***/ }),

/***/ 5937:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Alias = __nccwpck_require__(4065);
var identity = __nccwpck_require__(1127);
var composeCollection = __nccwpck_require__(7349);
var composeScalar = __nccwpck_require__(5413);
var resolveEnd = __nccwpck_require__(7788);
var utilEmptyScalarPosition = __nccwpck_require__(2599);

const CN = { composeNode, composeEmptyNode };
function composeNode(ctx, token, props, onError) {
    const atKey = ctx.atKey;
    const { spaceBefore, comment, anchor, tag } = props;
    let node;
    let isSrcToken = true;
    switch (token.type) {
        case 'alias':
            node = composeAlias(ctx, token, onError);
            if (anchor || tag)
                onError(token, 'ALIAS_PROPS', 'An alias node must not specify any properties');
            break;
        case 'scalar':
        case 'single-quoted-scalar':
        case 'double-quoted-scalar':
        case 'block-scalar':
            node = composeScalar.composeScalar(ctx, token, tag, onError);
            if (anchor)
                node.anchor = anchor.source.substring(1);
            break;
        case 'block-map':
        case 'block-seq':
        case 'flow-collection':
            try {
                node = composeCollection.composeCollection(CN, ctx, token, props, onError);
                if (anchor)
                    node.anchor = anchor.source.substring(1);
            }
            catch (error) {
                // Almost certainly here due to a stack overflow
                const message = error instanceof Error ? error.message : String(error);
                onError(token, 'RESOURCE_EXHAUSTION', message);
            }
            break;
        default: {
            const message = token.type === 'error'
                ? token.message
                : `Unsupported token (type: ${token.type})`;
            onError(token, 'UNEXPECTED_TOKEN', message);
            isSrcToken = false;
        }
    }
    node ?? (node = composeEmptyNode(ctx, token.offset, undefined, null, props, onError));
    if (anchor && node.anchor === '')
        onError(anchor, 'BAD_ALIAS', 'Anchor cannot be an empty string');
    if (atKey &&
        ctx.options.stringKeys &&
        (!identity.isScalar(node) ||
            typeof node.value !== 'string' ||
            (node.tag && node.tag !== 'tag:yaml.org,2002:str'))) {
        const msg = 'With stringKeys, all keys must be strings';
        onError(tag ?? token, 'NON_STRING_KEY', msg);
    }
    if (spaceBefore)
        node.spaceBefore = true;
    if (comment) {
        if (token.type === 'scalar' && token.source === '')
            node.comment = comment;
        else
            node.commentBefore = comment;
    }
    // @ts-expect-error Type checking misses meaning of isSrcToken
    if (ctx.options.keepSourceTokens && isSrcToken)
        node.srcToken = token;
    return node;
}
function composeEmptyNode(ctx, offset, before, pos, { spaceBefore, comment, anchor, tag, end }, onError) {
    const token = {
        type: 'scalar',
        offset: utilEmptyScalarPosition.emptyScalarPosition(offset, before, pos),
        indent: -1,
        source: ''
    };
    const node = composeScalar.composeScalar(ctx, token, tag, onError);
    if (anchor) {
        node.anchor = anchor.source.substring(1);
        if (node.anchor === '')
            onError(anchor, 'BAD_ALIAS', 'Anchor cannot be an empty string');
    }
    if (spaceBefore)
        node.spaceBefore = true;
    if (comment) {
        node.comment = comment;
        node.range[2] = end;
    }
    return node;
}
function composeAlias({ options }, { offset, source, end }, onError) {
    const alias = new Alias.Alias(source.substring(1));
    if (alias.source === '')
        onError(offset, 'BAD_ALIAS', 'Alias cannot be an empty string');
    if (alias.source.endsWith(':'))
        onError(offset + source.length - 1, 'BAD_ALIAS', 'Alias ending in : is ambiguous', true);
    const valueEnd = offset + source.length;
    const re = resolveEnd.resolveEnd(end, valueEnd, options.strict, onError);
    alias.range = [offset, valueEnd, re.offset];
    if (re.comment)
        alias.comment = re.comment;
    return alias;
}

exports.composeEmptyNode = composeEmptyNode;
exports.composeNode = composeNode;


/***/ }),

/***/ 5413:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);
var resolveBlockScalar = __nccwpck_require__(8913);
var resolveFlowScalar = __nccwpck_require__(6842);

function composeScalar(ctx, token, tagToken, onError) {
    const { value, type, comment, range } = token.type === 'block-scalar'
        ? resolveBlockScalar.resolveBlockScalar(ctx, token, onError)
        : resolveFlowScalar.resolveFlowScalar(token, ctx.options.strict, onError);
    const tagName = tagToken
        ? ctx.directives.tagName(tagToken.source, msg => onError(tagToken, 'TAG_RESOLVE_FAILED', msg))
        : null;
    let tag;
    if (ctx.options.stringKeys && ctx.atKey) {
        tag = ctx.schema[identity.SCALAR];
    }
    else if (tagName)
        tag = findScalarTagByName(ctx.schema, value, tagName, tagToken, onError);
    else if (token.type === 'scalar')
        tag = findScalarTagByTest(ctx, value, token, onError);
    else
        tag = ctx.schema[identity.SCALAR];
    let scalar;
    try {
        const res = tag.resolve(value, msg => onError(tagToken ?? token, 'TAG_RESOLVE_FAILED', msg), ctx.options);
        scalar = identity.isScalar(res) ? res : new Scalar.Scalar(res);
    }
    catch (error) {
        const msg = error instanceof Error ? error.message : String(error);
        onError(tagToken ?? token, 'TAG_RESOLVE_FAILED', msg);
        scalar = new Scalar.Scalar(value);
    }
    scalar.range = range;
    scalar.source = value;
    if (type)
        scalar.type = type;
    if (tagName)
        scalar.tag = tagName;
    if (tag.format)
        scalar.format = tag.format;
    if (comment)
        scalar.comment = comment;
    return scalar;
}
function findScalarTagByName(schema, value, tagName, tagToken, onError) {
    if (tagName === '!')
        return schema[identity.SCALAR]; // non-specific tag
    const matchWithTest = [];
    for (const tag of schema.tags) {
        if (!tag.collection && tag.tag === tagName) {
            if (tag.default && tag.test)
                matchWithTest.push(tag);
            else
                return tag;
        }
    }
    for (const tag of matchWithTest)
        if (tag.test?.test(value))
            return tag;
    const kt = schema.knownTags[tagName];
    if (kt && !kt.collection) {
        // Ensure that the known tag is available for stringifying,
        // but does not get used by default.
        schema.tags.push(Object.assign({}, kt, { default: false, test: undefined }));
        return kt;
    }
    onError(tagToken, 'TAG_RESOLVE_FAILED', `Unresolved tag: ${tagName}`, tagName !== 'tag:yaml.org,2002:str');
    return schema[identity.SCALAR];
}
function findScalarTagByTest({ atKey, directives, schema }, value, token, onError) {
    const tag = schema.tags.find(tag => (tag.default === true || (atKey && tag.default === 'key')) &&
        tag.test?.test(value)) || schema[identity.SCALAR];
    if (schema.compat) {
        const compat = schema.compat.find(tag => tag.default && tag.test?.test(value)) ??
            schema[identity.SCALAR];
        if (tag.tag !== compat.tag) {
            const ts = directives.tagString(tag.tag);
            const cs = directives.tagString(compat.tag);
            const msg = `Value may be parsed as either ${ts} or ${cs}`;
            onError(token, 'TAG_RESOLVE_FAILED', msg, true);
        }
    }
    return tag;
}

exports.composeScalar = composeScalar;


/***/ }),

/***/ 9984:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var node_process = __nccwpck_require__(932);
var directives = __nccwpck_require__(1342);
var Document = __nccwpck_require__(3021);
var errors = __nccwpck_require__(1464);
var identity = __nccwpck_require__(1127);
var composeDoc = __nccwpck_require__(3683);
var resolveEnd = __nccwpck_require__(7788);

function getErrorPos(src) {
    if (typeof src === 'number')
        return [src, src + 1];
    if (Array.isArray(src))
        return src.length === 2 ? src : [src[0], src[1]];
    const { offset, source } = src;
    return [offset, offset + (typeof source === 'string' ? source.length : 1)];
}
function parsePrelude(prelude) {
    let comment = '';
    let atComment = false;
    let afterEmptyLine = false;
    for (let i = 0; i < prelude.length; ++i) {
        const source = prelude[i];
        switch (source[0]) {
            case '#':
                comment +=
                    (comment === '' ? '' : afterEmptyLine ? '\n\n' : '\n') +
                        (source.substring(1) || ' ');
                atComment = true;
                afterEmptyLine = false;
                break;
            case '%':
                if (prelude[i + 1]?.[0] !== '#')
                    i += 1;
                atComment = false;
                break;
            default:
                // This may be wrong after doc-end, but in that case it doesn't matter
                if (!atComment)
                    afterEmptyLine = true;
                atComment = false;
        }
    }
    return { comment, afterEmptyLine };
}
/**
 * Compose a stream of CST nodes into a stream of YAML Documents.
 *
 * ```ts
 * import { Composer, Parser } from 'yaml'
 *
 * const src: string = ...
 * const tokens = new Parser().parse(src)
 * const docs = new Composer().compose(tokens)
 * ```
 */
class Composer {
    constructor(options = {}) {
        this.doc = null;
        this.atDirectives = false;
        this.prelude = [];
        this.errors = [];
        this.warnings = [];
        this.onError = (source, code, message, warning) => {
            const pos = getErrorPos(source);
            if (warning)
                this.warnings.push(new errors.YAMLWarning(pos, code, message));
            else
                this.errors.push(new errors.YAMLParseError(pos, code, message));
        };
        // eslint-disable-next-line @typescript-eslint/prefer-nullish-coalescing
        this.directives = new directives.Directives({ version: options.version || '1.2' });
        this.options = options;
    }
    decorate(doc, afterDoc) {
        const { comment, afterEmptyLine } = parsePrelude(this.prelude);
        //console.log({ dc: doc.comment, prelude, comment })
        if (comment) {
            const dc = doc.contents;
            if (afterDoc) {
                doc.comment = doc.comment ? `${doc.comment}\n${comment}` : comment;
            }
            else if (afterEmptyLine || doc.directives.docStart || !dc) {
                doc.commentBefore = comment;
            }
            else if (identity.isCollection(dc) && !dc.flow && dc.items.length > 0) {
                let it = dc.items[0];
                if (identity.isPair(it))
                    it = it.key;
                const cb = it.commentBefore;
                it.commentBefore = cb ? `${comment}\n${cb}` : comment;
            }
            else {
                const cb = dc.commentBefore;
                dc.commentBefore = cb ? `${comment}\n${cb}` : comment;
            }
        }
        if (afterDoc) {
            for (let i = 0; i < this.errors.length; ++i)
                doc.errors.push(this.errors[i]);
            for (let i = 0; i < this.warnings.length; ++i)
                doc.warnings.push(this.warnings[i]);
        }
        else {
            doc.errors = this.errors;
            doc.warnings = this.warnings;
        }
        this.prelude = [];
        this.errors = [];
        this.warnings = [];
    }
    /**
     * Current stream status information.
     *
     * Mostly useful at the end of input for an empty stream.
     */
    streamInfo() {
        return {
            comment: parsePrelude(this.prelude).comment,
            directives: this.directives,
            errors: this.errors,
            warnings: this.warnings
        };
    }
    /**
     * Compose tokens into documents.
     *
     * @param forceDoc - If the stream contains no document, still emit a final document including any comments and directives that would be applied to a subsequent document.
     * @param endOffset - Should be set if `forceDoc` is also set, to set the document range end and to indicate errors correctly.
     */
    *compose(tokens, forceDoc = false, endOffset = -1) {
        for (const token of tokens)
            yield* this.next(token);
        yield* this.end(forceDoc, endOffset);
    }
    /** Advance the composer by one CST token. */
    *next(token) {
        if (node_process.env.LOG_STREAM)
            console.dir(token, { depth: null });
        switch (token.type) {
            case 'directive':
                this.directives.add(token.source, (offset, message, warning) => {
                    const pos = getErrorPos(token);
                    pos[0] += offset;
                    this.onError(pos, 'BAD_DIRECTIVE', message, warning);
                });
                this.prelude.push(token.source);
                this.atDirectives = true;
                break;
            case 'document': {
                const doc = composeDoc.composeDoc(this.options, this.directives, token, this.onError);
                if (this.atDirectives && !doc.directives.docStart)
                    this.onError(token, 'MISSING_CHAR', 'Missing directives-end/doc-start indicator line');
                this.decorate(doc, false);
                if (this.doc)
                    yield this.doc;
                this.doc = doc;
                this.atDirectives = false;
                break;
            }
            case 'byte-order-mark':
            case 'space':
                break;
            case 'comment':
            case 'newline':
                this.prelude.push(token.source);
                break;
            case 'error': {
                const msg = token.source
                    ? `${token.message}: ${JSON.stringify(token.source)}`
                    : token.message;
                const error = new errors.YAMLParseError(getErrorPos(token), 'UNEXPECTED_TOKEN', msg);
                if (this.atDirectives || !this.doc)
                    this.errors.push(error);
                else
                    this.doc.errors.push(error);
                break;
            }
            case 'doc-end': {
                if (!this.doc) {
                    const msg = 'Unexpected doc-end without preceding document';
                    this.errors.push(new errors.YAMLParseError(getErrorPos(token), 'UNEXPECTED_TOKEN', msg));
                    break;
                }
                this.doc.directives.docEnd = true;
                const end = resolveEnd.resolveEnd(token.end, token.offset + token.source.length, this.doc.options.strict, this.onError);
                this.decorate(this.doc, true);
                if (end.comment) {
                    const dc = this.doc.comment;
                    this.doc.comment = dc ? `${dc}\n${end.comment}` : end.comment;
                }
                this.doc.range[2] = end.offset;
                break;
            }
            default:
                this.errors.push(new errors.YAMLParseError(getErrorPos(token), 'UNEXPECTED_TOKEN', `Unsupported token ${token.type}`));
        }
    }
    /**
     * Call at end of input to yield any remaining document.
     *
     * @param forceDoc - If the stream contains no document, still emit a final document including any comments and directives that would be applied to a subsequent document.
     * @param endOffset - Should be set if `forceDoc` is also set, to set the document range end and to indicate errors correctly.
     */
    *end(forceDoc = false, endOffset = -1) {
        if (this.doc) {
            this.decorate(this.doc, true);
            yield this.doc;
            this.doc = null;
        }
        else if (forceDoc) {
            const opts = Object.assign({ _directives: this.directives }, this.options);
            const doc = new Document.Document(undefined, opts);
            if (this.atDirectives)
                this.onError(endOffset, 'MISSING_CHAR', 'Missing directives-end indicator line');
            doc.range = [0, endOffset, endOffset];
            this.decorate(doc, false);
            yield doc;
        }
    }
}

exports.Composer = Composer;


/***/ }),

/***/ 7103:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Pair = __nccwpck_require__(7165);
var YAMLMap = __nccwpck_require__(4454);
var resolveProps = __nccwpck_require__(4631);
var utilContainsNewline = __nccwpck_require__(9499);
var utilFlowIndentCheck = __nccwpck_require__(4051);
var utilMapIncludes = __nccwpck_require__(1187);

const startColMsg = 'All mapping items must start at the same column';
function resolveBlockMap({ composeNode, composeEmptyNode }, ctx, bm, onError, tag) {
    const NodeClass = tag?.nodeClass ?? YAMLMap.YAMLMap;
    const map = new NodeClass(ctx.schema);
    if (ctx.atRoot)
        ctx.atRoot = false;
    let offset = bm.offset;
    let commentEnd = null;
    for (const collItem of bm.items) {
        const { start, key, sep, value } = collItem;
        // key properties
        const keyProps = resolveProps.resolveProps(start, {
            indicator: 'explicit-key-ind',
            next: key ?? sep?.[0],
            offset,
            onError,
            parentIndent: bm.indent,
            startOnNewline: true
        });
        const implicitKey = !keyProps.found;
        if (implicitKey) {
            if (key) {
                if (key.type === 'block-seq')
                    onError(offset, 'BLOCK_AS_IMPLICIT_KEY', 'A block sequence may not be used as an implicit map key');
                else if ('indent' in key && key.indent !== bm.indent)
                    onError(offset, 'BAD_INDENT', startColMsg);
            }
            if (!keyProps.anchor && !keyProps.tag && !sep) {
                commentEnd = keyProps.end;
                if (keyProps.comment) {
                    if (map.comment)
                        map.comment += '\n' + keyProps.comment;
                    else
                        map.comment = keyProps.comment;
                }
                continue;
            }
            if (keyProps.newlineAfterProp || utilContainsNewline.containsNewline(key)) {
                onError(key ?? start[start.length - 1], 'MULTILINE_IMPLICIT_KEY', 'Implicit keys need to be on a single line');
            }
        }
        else if (keyProps.found?.indent !== bm.indent) {
            onError(offset, 'BAD_INDENT', startColMsg);
        }
        // key value
        ctx.atKey = true;
        const keyStart = keyProps.end;
        const keyNode = key
            ? composeNode(ctx, key, keyProps, onError)
            : composeEmptyNode(ctx, keyStart, start, null, keyProps, onError);
        if (ctx.schema.compat)
            utilFlowIndentCheck.flowIndentCheck(bm.indent, key, onError);
        ctx.atKey = false;
        if (utilMapIncludes.mapIncludes(ctx, map.items, keyNode))
            onError(keyStart, 'DUPLICATE_KEY', 'Map keys must be unique');
        // value properties
        const valueProps = resolveProps.resolveProps(sep ?? [], {
            indicator: 'map-value-ind',
            next: value,
            offset: keyNode.range[2],
            onError,
            parentIndent: bm.indent,
            startOnNewline: !key || key.type === 'block-scalar'
        });
        offset = valueProps.end;
        if (valueProps.found) {
            if (implicitKey) {
                if (value?.type === 'block-map' && !valueProps.hasNewline)
                    onError(offset, 'BLOCK_AS_IMPLICIT_KEY', 'Nested mappings are not allowed in compact mappings');
                if (ctx.options.strict &&
                    keyProps.start < valueProps.found.offset - 1024)
                    onError(keyNode.range, 'KEY_OVER_1024_CHARS', 'The : indicator must be at most 1024 chars after the start of an implicit block mapping key');
            }
            // value value
            const valueNode = value
                ? composeNode(ctx, value, valueProps, onError)
                : composeEmptyNode(ctx, offset, sep, null, valueProps, onError);
            if (ctx.schema.compat)
                utilFlowIndentCheck.flowIndentCheck(bm.indent, value, onError);
            offset = valueNode.range[2];
            const pair = new Pair.Pair(keyNode, valueNode);
            if (ctx.options.keepSourceTokens)
                pair.srcToken = collItem;
            map.items.push(pair);
        }
        else {
            // key with no value
            if (implicitKey)
                onError(keyNode.range, 'MISSING_CHAR', 'Implicit map keys need to be followed by map values');
            if (valueProps.comment) {
                if (keyNode.comment)
                    keyNode.comment += '\n' + valueProps.comment;
                else
                    keyNode.comment = valueProps.comment;
            }
            const pair = new Pair.Pair(keyNode);
            if (ctx.options.keepSourceTokens)
                pair.srcToken = collItem;
            map.items.push(pair);
        }
    }
    if (commentEnd && commentEnd < offset)
        onError(commentEnd, 'IMPOSSIBLE', 'Map comment with trailing content');
    map.range = [bm.offset, offset, commentEnd ?? offset];
    return map;
}

exports.resolveBlockMap = resolveBlockMap;


/***/ }),

/***/ 8913:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);

function resolveBlockScalar(ctx, scalar, onError) {
    const start = scalar.offset;
    const header = parseBlockScalarHeader(scalar, ctx.options.strict, onError);
    if (!header)
        return { value: '', type: null, comment: '', range: [start, start, start] };
    const type = header.mode === '>' ? Scalar.Scalar.BLOCK_FOLDED : Scalar.Scalar.BLOCK_LITERAL;
    const lines = scalar.source ? splitLines(scalar.source) : [];
    // determine the end of content & start of chomping
    let chompStart = lines.length;
    for (let i = lines.length - 1; i >= 0; --i) {
        const content = lines[i][1];
        if (content === '' || content === '\r')
            chompStart = i;
        else
            break;
    }
    // shortcut for empty contents
    if (chompStart === 0) {
        const value = header.chomp === '+' && lines.length > 0
            ? '\n'.repeat(Math.max(1, lines.length - 1))
            : '';
        let end = start + header.length;
        if (scalar.source)
            end += scalar.source.length;
        return { value, type, comment: header.comment, range: [start, end, end] };
    }
    // find the indentation level to trim from start
    let trimIndent = scalar.indent + header.indent;
    let offset = scalar.offset + header.length;
    let contentStart = 0;
    for (let i = 0; i < chompStart; ++i) {
        const [indent, content] = lines[i];
        if (content === '' || content === '\r') {
            if (header.indent === 0 && indent.length > trimIndent)
                trimIndent = indent.length;
        }
        else {
            if (indent.length < trimIndent) {
                const message = 'Block scalars with more-indented leading empty lines must use an explicit indentation indicator';
                onError(offset + indent.length, 'MISSING_CHAR', message);
            }
            if (header.indent === 0)
                trimIndent = indent.length;
            contentStart = i;
            if (trimIndent === 0 && !ctx.atRoot) {
                const message = 'Block scalar values in collections must be indented';
                onError(offset, 'BAD_INDENT', message);
            }
            break;
        }
        offset += indent.length + content.length + 1;
    }
    // include trailing more-indented empty lines in content
    for (let i = lines.length - 1; i >= chompStart; --i) {
        if (lines[i][0].length > trimIndent)
            chompStart = i + 1;
    }
    let value = '';
    let sep = '';
    let prevMoreIndented = false;
    // leading whitespace is kept intact
    for (let i = 0; i < contentStart; ++i)
        value += lines[i][0].slice(trimIndent) + '\n';
    for (let i = contentStart; i < chompStart; ++i) {
        let [indent, content] = lines[i];
        offset += indent.length + content.length + 1;
        const crlf = content[content.length - 1] === '\r';
        if (crlf)
            content = content.slice(0, -1);
        /* istanbul ignore if already caught in lexer */
        if (content && indent.length < trimIndent) {
            const src = header.indent
                ? 'explicit indentation indicator'
                : 'first line';
            const message = `Block scalar lines must not be less indented than their ${src}`;
            onError(offset - content.length - (crlf ? 2 : 1), 'BAD_INDENT', message);
            indent = '';
        }
        if (type === Scalar.Scalar.BLOCK_LITERAL) {
            value += sep + indent.slice(trimIndent) + content;
            sep = '\n';
        }
        else if (indent.length > trimIndent || content[0] === '\t') {
            // more-indented content within a folded block
            if (sep === ' ')
                sep = '\n';
            else if (!prevMoreIndented && sep === '\n')
                sep = '\n\n';
            value += sep + indent.slice(trimIndent) + content;
            sep = '\n';
            prevMoreIndented = true;
        }
        else if (content === '') {
            // empty line
            if (sep === '\n')
                value += '\n';
            else
                sep = '\n';
        }
        else {
            value += sep + content;
            sep = ' ';
            prevMoreIndented = false;
        }
    }
    switch (header.chomp) {
        case '-':
            break;
        case '+':
            for (let i = chompStart; i < lines.length; ++i)
                value += '\n' + lines[i][0].slice(trimIndent);
            if (value[value.length - 1] !== '\n')
                value += '\n';
            break;
        default:
            value += '\n';
    }
    const end = start + header.length + scalar.source.length;
    return { value, type, comment: header.comment, range: [start, end, end] };
}
function parseBlockScalarHeader({ offset, props }, strict, onError) {
    /* istanbul ignore if should not happen */
    if (props[0].type !== 'block-scalar-header') {
        onError(props[0], 'IMPOSSIBLE', 'Block scalar header not found');
        return null;
    }
    const { source } = props[0];
    const mode = source[0];
    let indent = 0;
    let chomp = '';
    let error = -1;
    for (let i = 1; i < source.length; ++i) {
        const ch = source[i];
        if (!chomp && (ch === '-' || ch === '+'))
            chomp = ch;
        else {
            const n = Number(ch);
            if (!indent && n)
                indent = n;
            else if (error === -1)
                error = offset + i;
        }
    }
    if (error !== -1)
        onError(error, 'UNEXPECTED_TOKEN', `Block scalar header includes extra characters: ${source}`);
    let hasSpace = false;
    let comment = '';
    let length = source.length;
    for (let i = 1; i < props.length; ++i) {
        const token = props[i];
        switch (token.type) {
            case 'space':
                hasSpace = true;
            // fallthrough
            case 'newline':
                length += token.source.length;
                break;
            case 'comment':
                if (strict && !hasSpace) {
                    const message = 'Comments must be separated from other tokens by white space characters';
                    onError(token, 'MISSING_CHAR', message);
                }
                length += token.source.length;
                comment = token.source.substring(1);
                break;
            case 'error':
                onError(token, 'UNEXPECTED_TOKEN', token.message);
                length += token.source.length;
                break;
            /* istanbul ignore next should not happen */
            default: {
                const message = `Unexpected token in block scalar header: ${token.type}`;
                onError(token, 'UNEXPECTED_TOKEN', message);
                const ts = token.source;
                if (ts && typeof ts === 'string')
                    length += ts.length;
            }
        }
    }
    return { mode, indent, chomp, comment, length };
}
/** @returns Array of lines split up as `[indent, content]` */
function splitLines(source) {
    const split = source.split(/\n( *)/);
    const first = split[0];
    const m = first.match(/^( *)/);
    const line0 = m?.[1]
        ? [m[1], first.slice(m[1].length)]
        : ['', first];
    const lines = [line0];
    for (let i = 1; i < split.length; i += 2)
        lines.push([split[i], split[i + 1]]);
    return lines;
}

exports.resolveBlockScalar = resolveBlockScalar;


/***/ }),

/***/ 334:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var YAMLSeq = __nccwpck_require__(2223);
var resolveProps = __nccwpck_require__(4631);
var utilFlowIndentCheck = __nccwpck_require__(4051);

function resolveBlockSeq({ composeNode, composeEmptyNode }, ctx, bs, onError, tag) {
    const NodeClass = tag?.nodeClass ?? YAMLSeq.YAMLSeq;
    const seq = new NodeClass(ctx.schema);
    if (ctx.atRoot)
        ctx.atRoot = false;
    if (ctx.atKey)
        ctx.atKey = false;
    let offset = bs.offset;
    let commentEnd = null;
    for (const { start, value } of bs.items) {
        const props = resolveProps.resolveProps(start, {
            indicator: 'seq-item-ind',
            next: value,
            offset,
            onError,
            parentIndent: bs.indent,
            startOnNewline: true
        });
        if (!props.found) {
            if (props.anchor || props.tag || value) {
                if (value?.type === 'block-seq')
                    onError(props.end, 'BAD_INDENT', 'All sequence items must start at the same column');
                else
                    onError(offset, 'MISSING_CHAR', 'Sequence item without - indicator');
            }
            else {
                commentEnd = props.end;
                if (props.comment)
                    seq.comment = props.comment;
                continue;
            }
        }
        const node = value
            ? composeNode(ctx, value, props, onError)
            : composeEmptyNode(ctx, props.end, start, null, props, onError);
        if (ctx.schema.compat)
            utilFlowIndentCheck.flowIndentCheck(bs.indent, value, onError);
        offset = node.range[2];
        seq.items.push(node);
    }
    seq.range = [bs.offset, offset, commentEnd ?? offset];
    return seq;
}

exports.resolveBlockSeq = resolveBlockSeq;


/***/ }),

/***/ 7788:
/***/ ((__unused_webpack_module, exports) => {



function resolveEnd(end, offset, reqSpace, onError) {
    let comment = '';
    if (end) {
        let hasSpace = false;
        let sep = '';
        for (const token of end) {
            const { source, type } = token;
            switch (type) {
                case 'space':
                    hasSpace = true;
                    break;
                case 'comment': {
                    if (reqSpace && !hasSpace)
                        onError(token, 'MISSING_CHAR', 'Comments must be separated from other tokens by white space characters');
                    const cb = source.substring(1) || ' ';
                    if (!comment)
                        comment = cb;
                    else
                        comment += sep + cb;
                    sep = '';
                    break;
                }
                case 'newline':
                    if (comment)
                        sep += source;
                    hasSpace = true;
                    break;
                default:
                    onError(token, 'UNEXPECTED_TOKEN', `Unexpected ${type} at node end`);
            }
            offset += source.length;
        }
    }
    return { comment, offset };
}

exports.resolveEnd = resolveEnd;


/***/ }),

/***/ 3142:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var YAMLMap = __nccwpck_require__(4454);
var YAMLSeq = __nccwpck_require__(2223);
var resolveEnd = __nccwpck_require__(7788);
var resolveProps = __nccwpck_require__(4631);
var utilContainsNewline = __nccwpck_require__(9499);
var utilMapIncludes = __nccwpck_require__(1187);

const blockMsg = 'Block collections are not allowed within flow collections';
const isBlock = (token) => token && (token.type === 'block-map' || token.type === 'block-seq');
function resolveFlowCollection({ composeNode, composeEmptyNode }, ctx, fc, onError, tag) {
    const isMap = fc.start.source === '{';
    const fcName = isMap ? 'flow map' : 'flow sequence';
    const NodeClass = (tag?.nodeClass ?? (isMap ? YAMLMap.YAMLMap : YAMLSeq.YAMLSeq));
    const coll = new NodeClass(ctx.schema);
    coll.flow = true;
    const atRoot = ctx.atRoot;
    if (atRoot)
        ctx.atRoot = false;
    if (ctx.atKey)
        ctx.atKey = false;
    let offset = fc.offset + fc.start.source.length;
    for (let i = 0; i < fc.items.length; ++i) {
        const collItem = fc.items[i];
        const { start, key, sep, value } = collItem;
        const props = resolveProps.resolveProps(start, {
            flow: fcName,
            indicator: 'explicit-key-ind',
            next: key ?? sep?.[0],
            offset,
            onError,
            parentIndent: fc.indent,
            startOnNewline: false
        });
        if (!props.found) {
            if (!props.anchor && !props.tag && !sep && !value) {
                if (i === 0 && props.comma)
                    onError(props.comma, 'UNEXPECTED_TOKEN', `Unexpected , in ${fcName}`);
                else if (i < fc.items.length - 1)
                    onError(props.start, 'UNEXPECTED_TOKEN', `Unexpected empty item in ${fcName}`);
                if (props.comment) {
                    if (coll.comment)
                        coll.comment += '\n' + props.comment;
                    else
                        coll.comment = props.comment;
                }
                offset = props.end;
                continue;
            }
            if (!isMap && ctx.options.strict && utilContainsNewline.containsNewline(key))
                onError(key, // checked by containsNewline()
                'MULTILINE_IMPLICIT_KEY', 'Implicit keys of flow sequence pairs need to be on a single line');
        }
        if (i === 0) {
            if (props.comma)
                onError(props.comma, 'UNEXPECTED_TOKEN', `Unexpected , in ${fcName}`);
        }
        else {
            if (!props.comma)
                onError(props.start, 'MISSING_CHAR', `Missing , between ${fcName} items`);
            if (props.comment) {
                let prevItemComment = '';
                loop: for (const st of start) {
                    switch (st.type) {
                        case 'comma':
                        case 'space':
                            break;
                        case 'comment':
                            prevItemComment = st.source.substring(1);
                            break loop;
                        default:
                            break loop;
                    }
                }
                if (prevItemComment) {
                    let prev = coll.items[coll.items.length - 1];
                    if (identity.isPair(prev))
                        prev = prev.value ?? prev.key;
                    if (prev.comment)
                        prev.comment += '\n' + prevItemComment;
                    else
                        prev.comment = prevItemComment;
                    props.comment = props.comment.substring(prevItemComment.length + 1);
                }
            }
        }
        if (!isMap && !sep && !props.found) {
            // item is a value in a seq
            // \u2192 key & sep are empty, start does not include ? or :
            const valueNode = value
                ? composeNode(ctx, value, props, onError)
                : composeEmptyNode(ctx, props.end, sep, null, props, onError);
            coll.items.push(valueNode);
            offset = valueNode.range[2];
            if (isBlock(value))
                onError(valueNode.range, 'BLOCK_IN_FLOW', blockMsg);
        }
        else {
            // item is a key+value pair
            // key value
            ctx.atKey = true;
            const keyStart = props.end;
            const keyNode = key
                ? composeNode(ctx, key, props, onError)
                : composeEmptyNode(ctx, keyStart, start, null, props, onError);
            if (isBlock(key))
                onError(keyNode.range, 'BLOCK_IN_FLOW', blockMsg);
            ctx.atKey = false;
            // value properties
            const valueProps = resolveProps.resolveProps(sep ?? [], {
                flow: fcName,
                indicator: 'map-value-ind',
                next: value,
                offset: keyNode.range[2],
                onError,
                parentIndent: fc.indent,
                startOnNewline: false
            });
            if (valueProps.found) {
                if (!isMap && !props.found && ctx.options.strict) {
                    if (sep)
                        for (const st of sep) {
                            if (st === valueProps.found)
                                break;
                            if (st.type === 'newline') {
                                onError(st, 'MULTILINE_IMPLICIT_KEY', 'Implicit keys of flow sequence pairs need to be on a single line');
                                break;
                            }
                        }
                    if (props.start < valueProps.found.offset - 1024)
                        onError(valueProps.found, 'KEY_OVER_1024_CHARS', 'The : indicator must be at most 1024 chars after the start of an implicit flow sequence key');
                }
            }
            else if (value) {
                if ('source' in value && value.source?.[0] === ':')
                    onError(value, 'MISSING_CHAR', `Missing space after : in ${fcName}`);
                else
                    onError(valueProps.start, 'MISSING_CHAR', `Missing , or : between ${fcName} items`);
            }
            // value value
            const valueNode = value
                ? composeNode(ctx, value, valueProps, onError)
                : valueProps.found
                    ? composeEmptyNode(ctx, valueProps.end, sep, null, valueProps, onError)
                    : null;
            if (valueNode) {
                if (isBlock(value))
                    onError(valueNode.range, 'BLOCK_IN_FLOW', blockMsg);
            }
            else if (valueProps.comment) {
                if (keyNode.comment)
                    keyNode.comment += '\n' + valueProps.comment;
                else
                    keyNode.comment = valueProps.comment;
            }
            const pair = new Pair.Pair(keyNode, valueNode);
            if (ctx.options.keepSourceTokens)
                pair.srcToken = collItem;
            if (isMap) {
                const map = coll;
                if (utilMapIncludes.mapIncludes(ctx, map.items, keyNode))
                    onError(keyStart, 'DUPLICATE_KEY', 'Map keys must be unique');
                map.items.push(pair);
            }
            else {
                const map = new YAMLMap.YAMLMap(ctx.schema);
                map.flow = true;
                map.items.push(pair);
                const endRange = (valueNode ?? keyNode).range;
                map.range = [keyNode.range[0], endRange[1], endRange[2]];
                coll.items.push(map);
            }
            offset = valueNode ? valueNode.range[2] : valueProps.end;
        }
    }
    const expectedEnd = isMap ? '}' : ']';
    const [ce, ...ee] = fc.end;
    let cePos = offset;
    if (ce?.source === expectedEnd)
        cePos = ce.offset + ce.source.length;
    else {
        const name = fcName[0].toUpperCase() + fcName.substring(1);
        const msg = atRoot
            ? `${name} must end with a ${expectedEnd}`
            : `${name} in block collection must be sufficiently indented and end with a ${expectedEnd}`;
        onError(offset, atRoot ? 'MISSING_CHAR' : 'BAD_INDENT', msg);
        if (ce && ce.source.length !== 1)
            ee.unshift(ce);
    }
    if (ee.length > 0) {
        const end = resolveEnd.resolveEnd(ee, cePos, ctx.options.strict, onError);
        if (end.comment) {
            if (coll.comment)
                coll.comment += '\n' + end.comment;
            else
                coll.comment = end.comment;
        }
        coll.range = [fc.offset, cePos, end.offset];
    }
    else {
        coll.range = [fc.offset, cePos, cePos];
    }
    return coll;
}

exports.resolveFlowCollection = resolveFlowCollection;


/***/ }),

/***/ 6842:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);
var resolveEnd = __nccwpck_require__(7788);

function resolveFlowScalar(scalar, strict, onError) {
    const { offset, type, source, end } = scalar;
    let _type;
    let value;
    const _onError = (rel, code, msg) => onError(offset + rel, code, msg);
    switch (type) {
        case 'scalar':
            _type = Scalar.Scalar.PLAIN;
            value = plainValue(source, _onError);
            break;
        case 'single-quoted-scalar':
            _type = Scalar.Scalar.QUOTE_SINGLE;
            value = singleQuotedValue(source, _onError);
            break;
        case 'double-quoted-scalar':
            _type = Scalar.Scalar.QUOTE_DOUBLE;
            value = doubleQuotedValue(source, _onError);
            break;
        /* istanbul ignore next should not happen */
        default:
            onError(scalar, 'UNEXPECTED_TOKEN', `Expected a flow scalar value, but found: ${type}`);
            return {
                value: '',
                type: null,
                comment: '',
                range: [offset, offset + source.length, offset + source.length]
            };
    }
    const valueEnd = offset + source.length;
    const re = resolveEnd.resolveEnd(end, valueEnd, strict, onError);
    return {
        value,
        type: _type,
        comment: re.comment,
        range: [offset, valueEnd, re.offset]
    };
}
function plainValue(source, onError) {
    let badChar = '';
    switch (source[0]) {
        /* istanbul ignore next should not happen */
        case '\t':
            badChar = 'a tab character';
            break;
        case ',':
            badChar = 'flow indicator character ,';
            break;
        case '%':
            badChar = 'directive indicator character %';
            break;
        case '|':
        case '>': {
            badChar = `block scalar indicator ${source[0]}`;
            break;
        }
        case '@':
        case '`': {
            badChar = `reserved character ${source[0]}`;
            break;
        }
    }
    if (badChar)
        onError(0, 'BAD_SCALAR_START', `Plain value cannot start with ${badChar}`);
    return unfoldLines(source);
}
function singleQuotedValue(source, onError) {
    if (source[source.length - 1] !== "'" || source.length === 1)
        onError(source.length, 'MISSING_CHAR', "Missing closing 'quote");
    return unfoldLines(source.slice(1, -1)).replace(/''/g, "'");
}
function unfoldLines(source) {
    const line = /(.*?)\r?\n/sy;
    let match = line.exec(source);
    if (!match)
        return source;
    /**
     * The negative lookbehinds in these RegExps are to
     * prevent causing a polynomial search time in certain cases.
     *
     * The try-catch is for Safari < 16.4 and other old browsers:
     * https://caniuse.com/js-regexp-lookbehind
     */
    let trimEnd, trimBoth;
    try {
        trimEnd = new RegExp('(?<![ \t])[ \t]+$');
        trimBoth = new RegExp('^[ \t]+|(?<![ \t])[ \t]+$', 'g');
    }
    catch {
        trimEnd = /[ \t]+$/;
        trimBoth = /^[ \t]+|[ \t]+$/g;
    }
    let res = match[1].replace(trimEnd, '');
    let sep = ' ';
    let pos = line.lastIndex;
    while ((match = line.exec(source))) {
        const lm = match[1].replace(trimBoth, '');
        if (lm === '') {
            if (sep === '\n')
                res += sep;
            else
                sep = '\n';
        }
        else {
            res += sep + lm;
            sep = ' ';
        }
        pos = line.lastIndex;
    }
    const last = /[ \t]*(.*)/sy;
    last.lastIndex = pos;
    match = last.exec(source);
    return res + sep + (match?.[1] ?? '');
}
function doubleQuotedValue(source, onError) {
    let res = '';
    for (let i = 1; i < source.length - 1; ++i) {
        const ch = source[i];
        if (ch === '\r' && source[i + 1] === '\n')
            continue;
        if (ch === '\n') {
            const { fold, offset } = foldNewline(source, i);
            res += fold;
            i = offset;
        }
        else if (ch === '\\') {
            let next = source[++i];
            const cc = escapeCodes[next];
            if (cc)
                res += cc;
            else if (next === '\n') {
                // skip escaped newlines, but still trim the following line
                next = source[i + 1];
                while (next === ' ' || next === '\t')
                    next = source[++i + 1];
            }
            else if (next === '\r' && source[i + 1] === '\n') {
                // skip escaped CRLF newlines, but still trim the following line
                next = source[++i + 1];
                while (next === ' ' || next === '\t')
                    next = source[++i + 1];
            }
            else if (next === 'x' || next === 'u' || next === 'U') {
                const length = next === 'x' ? 2 : next === 'u' ? 4 : 8;
                res += parseCharCode(source, i + 1, length, onError);
                i += length;
            }
            else {
                const raw = source.substr(i - 1, 2);
                onError(i - 1, 'BAD_DQ_ESCAPE', `Invalid escape sequence ${raw}`);
                res += raw;
            }
        }
        else if (ch === ' ' || ch === '\t') {
            // trim trailing whitespace
            const wsStart = i;
            let next = source[i + 1];
            while (next === ' ' || next === '\t')
                next = source[++i + 1];
            if (next !== '\n' && !(next === '\r' && source[i + 2] === '\n'))
                res += i > wsStart ? source.slice(wsStart, i + 1) : ch;
        }
        else {
            res += ch;
        }
    }
    if (source[source.length - 1] !== '"' || source.length === 1)
        onError(source.length, 'MISSING_CHAR', 'Missing closing "quote');
    return res;
}
/**
 * Fold a single newline into a space, multiple newlines to N - 1 newlines.
 * Presumes `source[offset] === '\n'`
 */
function foldNewline(source, offset) {
    let fold = '';
    let ch = source[offset + 1];
    while (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
        if (ch === '\r' && source[offset + 2] !== '\n')
            break;
        if (ch === '\n')
            fold += '\n';
        offset += 1;
        ch = source[offset + 1];
    }
    if (!fold)
        fold = ' ';
    return { fold, offset };
}
const escapeCodes = {
    '0': '\0', // null character
    a: '\x07', // bell character
    b: '\b', // backspace
    e: '\x1b', // escape character
    f: '\f', // form feed
    n: '\n', // line feed
    r: '\r', // carriage return
    t: '\t', // horizontal tab
    v: '\v', // vertical tab
    N: '\u0085', // Unicode next line
    _: '\u00a0', // Unicode non-breaking space
    L: '\u2028', // Unicode line separator
    P: '\u2029', // Unicode paragraph separator
    ' ': ' ',
    '"': '"',
    '/': '/',
    '\\': '\\',
    '\t': '\t'
};
function parseCharCode(source, offset, length, onError) {
    const cc = source.substr(offset, length);
    const ok = cc.length === length && /^[0-9a-fA-F]+$/.test(cc);
    const code = ok ? parseInt(cc, 16) : NaN;
    try {
        return String.fromCodePoint(code);
    }
    catch {
        const raw = source.substr(offset - 2, length + 2);
        onError(offset - 2, 'BAD_DQ_ESCAPE', `Invalid escape sequence ${raw}`);
        return raw;
    }
}

exports.resolveFlowScalar = resolveFlowScalar;


/***/ }),

/***/ 4631:
/***/ ((__unused_webpack_module, exports) => {



function resolveProps(tokens, { flow, indicator, next, offset, onError, parentIndent, startOnNewline }) {
    let spaceBefore = false;
    let atNewline = startOnNewline;
    let hasSpace = startOnNewline;
    let comment = '';
    let commentSep = '';
    let hasNewline = false;
    let reqSpace = false;
    let tab = null;
    let anchor = null;
    let tag = null;
    let newlineAfterProp = null;
    let comma = null;
    let found = null;
    let start = null;
    for (const token of tokens) {
        if (reqSpace) {
            if (token.type !== 'space' &&
                token.type !== 'newline' &&
                token.type !== 'comma')
                onError(token.offset, 'MISSING_CHAR', 'Tags and anchors must be separated from the next token by white space');
            reqSpace = false;
        }
        if (tab) {
            if (atNewline && token.type !== 'comment' && token.type !== 'newline') {
                onError(tab, 'TAB_AS_INDENT', 'Tabs are not allowed as indentation');
            }
            tab = null;
        }
        switch (token.type) {
            case 'space':
                // At the doc level, tabs at line start may be parsed
                // as leading white space rather than indentation.
                // In a flow collection, only the parser handles indent.
                if (!flow &&
                    (indicator !== 'doc-start' || next?.type !== 'flow-collection') &&
                    token.source.includes('\t')) {
                    tab = token;
                }
                hasSpace = true;
                break;
            case 'comment': {
                if (!hasSpace)
                    onError(token, 'MISSING_CHAR', 'Comments must be separated from other tokens by white space characters');
                const cb = token.source.substring(1) || ' ';
                if (!comment)
                    comment = cb;
                else
                    comment += commentSep + cb;
                commentSep = '';
                atNewline = false;
                break;
            }
            case 'newline':
                if (atNewline) {
                    if (comment)
                        comment += token.source;
                    else if (!found || indicator !== 'seq-item-ind')
                        spaceBefore = true;
                }
                else
                    commentSep += token.source;
                atNewline = true;
                hasNewline = true;
                if (anchor || tag)
                    newlineAfterProp = token;
                hasSpace = true;
                break;
            case 'anchor':
                if (anchor)
                    onError(token, 'MULTIPLE_ANCHORS', 'A node can have at most one anchor');
                if (token.source.endsWith(':'))
                    onError(token.offset + token.source.length - 1, 'BAD_ALIAS', 'Anchor ending in : is ambiguous', true);
                anchor = token;
                start ?? (start = token.offset);
                atNewline = false;
                hasSpace = false;
                reqSpace = true;
                break;
            case 'tag': {
                if (tag)
                    onError(token, 'MULTIPLE_TAGS', 'A node can have at most one tag');
                tag = token;
                start ?? (start = token.offset);
                atNewline = false;
                hasSpace = false;
                reqSpace = true;
                break;
            }
            case indicator:
                // Could here handle preceding comments differently
                if (anchor || tag)
                    onError(token, 'BAD_PROP_ORDER', `Anchors and tags must be after the ${token.source} indicator`);
                if (found)
                    onError(token, 'UNEXPECTED_TOKEN', `Unexpected ${token.source} in ${flow ?? 'collection'}`);
                found = token;
                atNewline =
                    indicator === 'seq-item-ind' || indicator === 'explicit-key-ind';
                hasSpace = false;
                break;
            case 'comma':
                if (flow) {
                    if (comma)
                        onError(token, 'UNEXPECTED_TOKEN', `Unexpected , in ${flow}`);
                    comma = token;
                    atNewline = false;
                    hasSpace = false;
                    break;
                }
            // else fallthrough
            default:
                onError(token, 'UNEXPECTED_TOKEN', `Unexpected ${token.type} token`);
                atNewline = false;
                hasSpace = false;
        }
    }
    const last = tokens[tokens.length - 1];
    const end = last ? last.offset + last.source.length : offset;
    if (reqSpace &&
        next &&
        next.type !== 'space' &&
        next.type !== 'newline' &&
        next.type !== 'comma' &&
        (next.type !== 'scalar' || next.source !== '')) {
        onError(next.offset, 'MISSING_CHAR', 'Tags and anchors must be separated from the next token by white space');
    }
    if (tab &&
        ((atNewline && tab.indent <= parentIndent) ||
            next?.type === 'block-map' ||
            next?.type === 'block-seq'))
        onError(tab, 'TAB_AS_INDENT', 'Tabs are not allowed as indentation');
    return {
        comma,
        found,
        spaceBefore,
        comment,
        hasNewline,
        anchor,
        tag,
        newlineAfterProp,
        end,
        start: start ?? end
    };
}

exports.resolveProps = resolveProps;


/***/ }),

/***/ 9499:
/***/ ((__unused_webpack_module, exports) => {



function containsNewline(key) {
    if (!key)
        return null;
    switch (key.type) {
        case 'alias':
        case 'scalar':
        case 'double-quoted-scalar':
        case 'single-quoted-scalar':
            if (key.source.includes('\n'))
                return true;
            if (key.end)
                for (const st of key.end)
                    if (st.type === 'newline')
                        return true;
            return false;
        case 'flow-collection':
            for (const it of key.items) {
                for (const st of it.start)
                    if (st.type === 'newline')
                        return true;
                if (it.sep)
                    for (const st of it.sep)
                        if (st.type === 'newline')
                            return true;
                if (containsNewline(it.key) || containsNewline(it.value))
                    return true;
            }
            return false;
        default:
            return true;
    }
}

exports.containsNewline = containsNewline;


/***/ }),

/***/ 2599:
/***/ ((__unused_webpack_module, exports) => {



function emptyScalarPosition(offset, before, pos) {
    if (before) {
        pos ?? (pos = before.length);
        for (let i = pos - 1; i >= 0; --i) {
            let st = before[i];
            switch (st.type) {
                case 'space':
                case 'comment':
                case 'newline':
                    offset -= st.source.length;
                    continue;
            }
            // Technically, an empty scalar is immediately after the last non-empty
            // node, but it's more useful to place it after any whitespace.
            st = before[++i];
            while (st?.type === 'space') {
                offset += st.source.length;
                st = before[++i];
            }
            break;
        }
    }
    return offset;
}

exports.emptyScalarPosition = emptyScalarPosition;


/***/ }),

/***/ 4051:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var utilContainsNewline = __nccwpck_require__(9499);

function flowIndentCheck(indent, fc, onError) {
    if (fc?.type === 'flow-collection') {
        const end = fc.end[0];
        if (end.indent === indent &&
            (end.source === ']' || end.source === '}') &&
            utilContainsNewline.containsNewline(fc)) {
            const msg = 'Flow end indicator should be more indented than parent';
            onError(end, 'BAD_INDENT', msg, true);
        }
    }
}

exports.flowIndentCheck = flowIndentCheck;


/***/ }),

/***/ 1187:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);

function mapIncludes(ctx, items, search) {
    const { uniqueKeys } = ctx.options;
    if (uniqueKeys === false)
        return false;
    const isEqual = typeof uniqueKeys === 'function'
        ? uniqueKeys
        : (a, b) => a === b || (identity.isScalar(a) && identity.isScalar(b) && a.value === b.value);
    return items.some(pair => isEqual(pair.key, search));
}

exports.mapIncludes = mapIncludes;


/***/ }),

/***/ 3021:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Alias = __nccwpck_require__(4065);
var Collection = __nccwpck_require__(101);
var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var toJS = __nccwpck_require__(4043);
var Schema = __nccwpck_require__(5840);
var stringifyDocument = __nccwpck_require__(6829);
var anchors = __nccwpck_require__(1596);
var applyReviver = __nccwpck_require__(3661);
var createNode = __nccwpck_require__(2404);
var directives = __nccwpck_require__(1342);

class Document {
    constructor(value, replacer, options) {
        /** A comment before this Document */
        this.commentBefore = null;
        /** A comment immediately after this Document */
        this.comment = null;
        /** Errors encountered during parsing. */
        this.errors = [];
        /** Warnings encountered during parsing. */
        this.warnings = [];
        Object.defineProperty(this, identity.NODE_TYPE, { value: identity.DOC });
        let _replacer = null;
        if (typeof replacer === 'function' || Array.isArray(replacer)) {
            _replacer = replacer;
        }
        else if (options === undefined && replacer) {
            options = replacer;
            replacer = undefined;
        }
        const opt = Object.assign({
            intAsBigInt: false,
            keepSourceTokens: false,
            logLevel: 'warn',
            prettyErrors: true,
            strict: true,
            stringKeys: false,
            uniqueKeys: true,
            version: '1.2'
        }, options);
        this.options = opt;
        let { version } = opt;
        if (options?._directives) {
            this.directives = options._directives.atDocument();
            if (this.directives.yaml.explicit)
                version = this.directives.yaml.version;
        }
        else
            this.directives = new directives.Directives({ version });
        this.setSchema(version, options);
        // @ts-expect-error We can't really know that this matches Contents.
        this.contents =
            value === undefined ? null : this.createNode(value, _replacer, options);
    }
    /**
     * Create a deep copy of this Document and its contents.
     *
     * Custom Node values that inherit from `Object` still refer to their original instances.
     */
    clone() {
        const copy = Object.create(Document.prototype, {
            [identity.NODE_TYPE]: { value: identity.DOC }
        });
        copy.commentBefore = this.commentBefore;
        copy.comment = this.comment;
        copy.errors = this.errors.slice();
        copy.warnings = this.warnings.slice();
        copy.options = Object.assign({}, this.options);
        if (this.directives)
            copy.directives = this.directives.clone();
        copy.schema = this.schema.clone();
        // @ts-expect-error We can't really know that this matches Contents.
        copy.contents = identity.isNode(this.contents)
            ? this.contents.clone(copy.schema)
            : this.contents;
        if (this.range)
            copy.range = this.range.slice();
        return copy;
    }
    /** Adds a value to the document. */
    add(value) {
        if (assertCollection(this.contents))
            this.contents.add(value);
    }
    /** Adds a value to the document. */
    addIn(path, value) {
        if (assertCollection(this.contents))
            this.contents.addIn(path, value);
    }
    /**
     * Create a new `Alias` node, ensuring that the target `node` has the required anchor.
     *
     * If `node` already has an anchor, `name` is ignored.
     * Otherwise, the `node.anchor` value will be set to `name`,
     * or if an anchor with that name is already present in the document,
     * `name` will be used as a prefix for a new unique anchor.
     * If `name` is undefined, the generated anchor will use 'a' as a prefix.
     */
    createAlias(node, name) {
        if (!node.anchor) {
            const prev = anchors.anchorNames(this);
            node.anchor =
                // eslint-disable-next-line @typescript-eslint/prefer-nullish-coalescing
                !name || prev.has(name) ? anchors.findNewAnchor(name || 'a', prev) : name;
        }
        return new Alias.Alias(node.anchor);
    }
    createNode(value, replacer, options) {
        let _replacer = undefined;
        if (typeof replacer === 'function') {
            value = replacer.call({ '': value }, '', value);
            _replacer = replacer;
        }
        else if (Array.isArray(replacer)) {
            const keyToStr = (v) => typeof v === 'number' || v instanceof String || v instanceof Number;
            const asStr = replacer.filter(keyToStr).map(String);
            if (asStr.length > 0)
                replacer = replacer.concat(asStr);
            _replacer = replacer;
        }
        else if (options === undefined && replacer) {
            options = replacer;
            replacer = undefined;
        }
        const { aliasDuplicateObjects, anchorPrefix, flow, keepUndefined, onTagObj, tag } = options ?? {};
        const { onAnchor, setAnchors, sourceObjects } = anchors.createNodeAnchors(this, 
        // eslint-disable-next-line @typescript-eslint/prefer-nullish-coalescing
        anchorPrefix || 'a');
        const ctx = {
            aliasDuplicateObjects: aliasDuplicateObjects ?? true,
            keepUndefined: keepUndefined ?? false,
            onAnchor,
            onTagObj,
            replacer: _replacer,
            schema: this.schema,
            sourceObjects
        };
        const node = createNode.createNode(value, tag, ctx);
        if (flow && identity.isCollection(node))
            node.flow = true;
        setAnchors();
        return node;
    }
    /**
     * Convert a key and a value into a `Pair` using the current schema,
     * recursively wrapping all values as `Scalar` or `Collection` nodes.
     */
    createPair(key, value, options = {}) {
        const k = this.createNode(key, null, options);
        const v = this.createNode(value, null, options);
        return new Pair.Pair(k, v);
    }
    /**
     * Removes a value from the document.
     * @returns `true` if the item was found and removed.
     */
    delete(key) {
        return assertCollection(this.contents) ? this.contents.delete(key) : false;
    }
    /**
     * Removes a value from the document.
     * @returns `true` if the item was found and removed.
     */
    deleteIn(path) {
        if (Collection.isEmptyPath(path)) {
            if (this.contents == null)
                return false;
            // @ts-expect-error Presumed impossible if Strict extends false
            this.contents = null;
            return true;
        }
        return assertCollection(this.contents)
            ? this.contents.deleteIn(path)
            : false;
    }
    /**
     * Returns item at `key`, or `undefined` if not found. By default unwraps
     * scalar values from their surrounding node; to disable set `keepScalar` to
     * `true` (collections are always returned intact).
     */
    get(key, keepScalar) {
        return identity.isCollection(this.contents)
            ? this.contents.get(key, keepScalar)
            : undefined;
    }
    /**
     * Returns item at `path`, or `undefined` if not found. By default unwraps
     * scalar values from their surrounding node; to disable set `keepScalar` to
     * `true` (collections are always returned intact).
     */
    getIn(path, keepScalar) {
        if (Collection.isEmptyPath(path))
            return !keepScalar && identity.isScalar(this.contents)
                ? this.contents.value
                : this.contents;
        return identity.isCollection(this.contents)
            ? this.contents.getIn(path, keepScalar)
            : undefined;
    }
    /**
     * Checks if the document includes a value with the key `key`.
     */
    has(key) {
        return identity.isCollection(this.contents) ? this.contents.has(key) : false;
    }
    /**
     * Checks if the document includes a value at `path`.
     */
    hasIn(path) {
        if (Collection.isEmptyPath(path))
            return this.contents !== undefined;
        return identity.isCollection(this.contents) ? this.contents.hasIn(path) : false;
    }
    /**
     * Sets a value in this document. For `!!set`, `value` needs to be a
     * boolean to add/remove the item from the set.
     */
    set(key, value) {
        if (this.contents == null) {
            // @ts-expect-error We can't really know that this matches Contents.
            this.contents = Collection.collectionFromPath(this.schema, [key], value);
        }
        else if (assertCollection(this.contents)) {
            this.contents.set(key, value);
        }
    }
    /**
     * Sets a value in this document. For `!!set`, `value` needs to be a
     * boolean to add/remove the item from the set.
     */
    setIn(path, value) {
        if (Collection.isEmptyPath(path)) {
            // @ts-expect-error We can't really know that this matches Contents.
            this.contents = value;
        }
        else if (this.contents == null) {
            // @ts-expect-error We can't really know that this matches Contents.
            this.contents = Collection.collectionFromPath(this.schema, Array.from(path), value);
        }
        else if (assertCollection(this.contents)) {
            this.contents.setIn(path, value);
        }
    }
    /**
     * Change the YAML version and schema used by the document.
     * A `null` version disables support for directives, explicit tags, anchors, and aliases.
     * It also requires the `schema` option to be given as a `Schema` instance value.
     *
     * Overrides all previously set schema options.
     */
    setSchema(version, options = {}) {
        if (typeof version === 'number')
            version = String(version);
        let opt;
        switch (version) {
            case '1.1':
                if (this.directives)
                    this.directives.yaml.version = '1.1';
                else
                    this.directives = new directives.Directives({ version: '1.1' });
                opt = { resolveKnownTags: false, schema: 'yaml-1.1' };
                break;
            case '1.2':
            case 'next':
                if (this.directives)
                    this.directives.yaml.version = version;
                else
                    this.directives = new directives.Directives({ version });
                opt = { resolveKnownTags: true, schema: 'core' };
                break;
            case null:
                if (this.directives)
                    delete this.directives;
                opt = null;
                break;
            default: {
                const sv = JSON.stringify(version);
                throw new Error(`Expected '1.1', '1.2' or null as first argument, but found: ${sv}`);
            }
        }
        // Not using `instanceof Schema` to allow for duck typing
        if (options.schema instanceof Object)
            this.schema = options.schema;
        else if (opt)
            this.schema = new Schema.Schema(Object.assign(opt, options));
        else
            throw new Error(`With a null YAML version, the { schema: Schema } option is required`);
    }
    // json & jsonArg are only used from toJSON()
    toJS({ json, jsonArg, mapAsMap, maxAliasCount, onAnchor, reviver } = {}) {
        const ctx = {
            anchors: new Map(),
            doc: this,
            keep: !json,
            mapAsMap: mapAsMap === true,
            mapKeyWarned: false,
            maxAliasCount: typeof maxAliasCount === 'number' ? maxAliasCount : 100
        };
        const res = toJS.toJS(this.contents, jsonArg ?? '', ctx);
        if (typeof onAnchor === 'function')
            for (const { count, res } of ctx.anchors.values())
                onAnchor(res, count);
        return typeof reviver === 'function'
            ? applyReviver.applyReviver(reviver, { '': res }, '', res)
            : res;
    }
    /**
     * A JSON representation of the document `contents`.
     *
     * @param jsonArg Used by `JSON.stringify` to indicate the array index or
     *   property name.
     */
    toJSON(jsonArg, onAnchor) {
        return this.toJS({ json: true, jsonArg, mapAsMap: false, onAnchor });
    }
    /** A YAML representation of the document. */
    toString(options = {}) {
        if (this.errors.length > 0)
            throw new Error('Document with errors cannot be stringified');
        if ('indent' in options &&
            (!Number.isInteger(options.indent) || Number(options.indent) <= 0)) {
            const s = JSON.stringify(options.indent);
            throw new Error(`"indent" option must be a positive integer, not ${s}`);
        }
        return stringifyDocument.stringifyDocument(this, options);
    }
}
function assertCollection(contents) {
    if (identity.isCollection(contents))
        return true;
    throw new Error('Expected a YAML collection as document contents');
}

exports.Document = Document;


/***/ }),

/***/ 1596:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var visit = __nccwpck_require__(204);

/**
 * Verify that the input string is a valid anchor.
 *
 * Will throw on errors.
 */
function anchorIsValid(anchor) {
    if (/[\x00-\x19\s,[\]{}]/.test(anchor)) {
        const sa = JSON.stringify(anchor);
        const msg = `Anchor must not contain whitespace or control characters: ${sa}`;
        throw new Error(msg);
    }
    return true;
}
function anchorNames(root) {
    const anchors = new Set();
    visit.visit(root, {
        Value(_key, node) {
            if (node.anchor)
                anchors.add(node.anchor);
        }
    });
    return anchors;
}
/** Find a new anchor name with the given `prefix` and a one-indexed suffix. */
function findNewAnchor(prefix, exclude) {
    for (let i = 1; true; ++i) {
        const name = `${prefix}${i}`;
        if (!exclude.has(name))
            return name;
    }
}
function createNodeAnchors(doc, prefix) {
    const aliasObjects = [];
    const sourceObjects = new Map();
    let prevAnchors = null;
    return {
        onAnchor: (source) => {
            aliasObjects.push(source);
            prevAnchors ?? (prevAnchors = anchorNames(doc));
            const anchor = findNewAnchor(prefix, prevAnchors);
            prevAnchors.add(anchor);
            return anchor;
        },
        /**
         * With circular references, the source node is only resolved after all
         * of its child nodes are. This is why anchors are set only after all of
         * the nodes have been created.
         */
        setAnchors: () => {
            for (const source of aliasObjects) {
                const ref = sourceObjects.get(source);
                if (typeof ref === 'object' &&
                    ref.anchor &&
                    (identity.isScalar(ref.node) || identity.isCollection(ref.node))) {
                    ref.node.anchor = ref.anchor;
                }
                else {
                    const error = new Error('Failed to resolve repeated object (this should not happen)');
                    error.source = source;
                    throw error;
                }
            }
        },
        sourceObjects
    };
}

exports.anchorIsValid = anchorIsValid;
exports.anchorNames = anchorNames;
exports.createNodeAnchors = createNodeAnchors;
exports.findNewAnchor = findNewAnchor;


/***/ }),

/***/ 3661:
/***/ ((__unused_webpack_module, exports) => {



/**
 * Applies the JSON.parse reviver algorithm as defined in the ECMA-262 spec,
 * in section 24.5.1.1 "Runtime Semantics: InternalizeJSONProperty" of the
 * 2021 edition: https://tc39.es/ecma262/#sec-json.parse
 *
 * Includes extensions for handling Map and Set objects.
 */
function applyReviver(reviver, obj, key, val) {
    if (val && typeof val === 'object') {
        if (Array.isArray(val)) {
            for (let i = 0, len = val.length; i < len; ++i) {
                const v0 = val[i];
                const v1 = applyReviver(reviver, val, String(i), v0);
                // eslint-disable-next-line @typescript-eslint/no-array-delete
                if (v1 === undefined)
                    delete val[i];
                else if (v1 !== v0)
                    val[i] = v1;
            }
        }
        else if (val instanceof Map) {
            for (const k of Array.from(val.keys())) {
                const v0 = val.get(k);
                const v1 = applyReviver(reviver, val, k, v0);
                if (v1 === undefined)
                    val.delete(k);
                else if (v1 !== v0)
                    val.set(k, v1);
            }
        }
        else if (val instanceof Set) {
            for (const v0 of Array.from(val)) {
                const v1 = applyReviver(reviver, val, v0, v0);
                if (v1 === undefined)
                    val.delete(v0);
                else if (v1 !== v0) {
                    val.delete(v0);
                    val.add(v1);
                }
            }
        }
        else {
            for (const [k, v0] of Object.entries(val)) {
                const v1 = applyReviver(reviver, val, k, v0);
                if (v1 === undefined)
                    delete val[k];
                else if (v1 !== v0)
                    val[k] = v1;
            }
        }
    }
    return reviver.call(obj, key, val);
}

exports.applyReviver = applyReviver;


/***/ }),

/***/ 2404:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Alias = __nccwpck_require__(4065);
var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);

const defaultTagPrefix = 'tag:yaml.org,2002:';
function findTagObject(value, tagName, tags) {
    if (tagName) {
        const match = tags.filter(t => t.tag === tagName);
        const tagObj = match.find(t => !t.format) ?? match[0];
        if (!tagObj)
            throw new Error(`Tag ${tagName} not found`);
        return tagObj;
    }
    return tags.find(t => t.identify?.(value) && !t.format);
}
function createNode(value, tagName, ctx) {
    if (identity.isDocument(value))
        value = value.contents;
    if (identity.isNode(value))
        return value;
    if (identity.isPair(value)) {
        const map = ctx.schema[identity.MAP].createNode?.(ctx.schema, null, ctx);
        map.items.push(value);
        return map;
    }
    if (value instanceof String ||
        value instanceof Number ||
        value instanceof Boolean ||
        (typeof BigInt !== 'undefined' && value instanceof BigInt) // not supported everywhere
    ) {
        // https://tc39.es/ecma262/#sec-serializejsonproperty
        value = value.valueOf();
    }
    const { aliasDuplicateObjects, onAnchor, onTagObj, schema, sourceObjects } = ctx;
    // Detect duplicate references to the same object & use Alias nodes for all
    // after first. The `ref` wrapper allows for circular references to resolve.
    let ref = undefined;
    if (aliasDuplicateObjects && value && typeof value === 'object') {
        ref = sourceObjects.get(value);
        if (ref) {
            ref.anchor ?? (ref.anchor = onAnchor(value));
            return new Alias.Alias(ref.anchor);
        }
        else {
            ref = { anchor: null, node: null };
            sourceObjects.set(value, ref);
        }
    }
    if (tagName?.startsWith('!!'))
        tagName = defaultTagPrefix + tagName.slice(2);
    let tagObj = findTagObject(value, tagName, schema.tags);
    if (!tagObj) {
        if (value && typeof value.toJSON === 'function') {
            // eslint-disable-next-line @typescript-eslint/no-unsafe-call
            value = value.toJSON();
        }
        if (!value || typeof value !== 'object') {
            const node = new Scalar.Scalar(value);
            if (ref)
                ref.node = node;
            return node;
        }
        tagObj =
            value instanceof Map
                ? schema[identity.MAP]
                : Symbol.iterator in Object(value)
                    ? schema[identity.SEQ]
                    : schema[identity.MAP];
    }
    if (onTagObj) {
        onTagObj(tagObj);
        delete ctx.onTagObj;
    }
    const node = tagObj?.createNode
        ? tagObj.createNode(ctx.schema, value, ctx)
        : typeof tagObj?.nodeClass?.from === 'function'
            ? tagObj.nodeClass.from(ctx.schema, value, ctx)
            : new Scalar.Scalar(value);
    if (tagName)
        node.tag = tagName;
    else if (!tagObj.default)
        node.tag = tagObj.tag;
    if (ref)
        ref.node = node;
    return node;
}

exports.createNode = createNode;


/***/ }),

/***/ 1342:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var visit = __nccwpck_require__(204);

const escapeChars = {
    '!': '%21',
    ',': '%2C',
    '[': '%5B',
    ']': '%5D',
    '{': '%7B',
    '}': '%7D'
};
const escapeTagName = (tn) => tn.replace(/[!,[\]{}]/g, ch => escapeChars[ch]);
class Directives {
    constructor(yaml, tags) {
        /**
         * The directives-end/doc-start marker `---`. If `null`, a marker may still be
         * included in the document's stringified representation.
         */
        this.docStart = null;
        /** The doc-end marker `...`.  */
        this.docEnd = false;
        this.yaml = Object.assign({}, Directives.defaultYaml, yaml);
        this.tags = Object.assign({}, Directives.defaultTags, tags);
    }
    clone() {
        const copy = new Directives(this.yaml, this.tags);
        copy.docStart = this.docStart;
        return copy;
    }
    /**
     * During parsing, get a Directives instance for the current document and
     * update the stream state according to the current version's spec.
     */
    atDocument() {
        const res = new Directives(this.yaml, this.tags);
        switch (this.yaml.version) {
            case '1.1':
                this.atNextDocument = true;
                break;
            case '1.2':
                this.atNextDocument = false;
                this.yaml = {
                    explicit: Directives.defaultYaml.explicit,
                    version: '1.2'
                };
                this.tags = Object.assign({}, Directives.defaultTags);
                break;
        }
        return res;
    }
    /**
     * @param onError - May be called even if the action was successful
     * @returns `true` on success
     */
    add(line, onError) {
        if (this.atNextDocument) {
            this.yaml = { explicit: Directives.defaultYaml.explicit, version: '1.1' };
            this.tags = Object.assign({}, Directives.defaultTags);
            this.atNextDocument = false;
        }
        const parts = line.trim().split(/[ \t]+/);
        const name = parts.shift();
        switch (name) {
            case '%TAG': {
                if (parts.length !== 2) {
                    onError(0, '%TAG directive should contain exactly two parts');
                    if (parts.length < 2)
                        return false;
                }
                const [handle, prefix] = parts;
                this.tags[handle] = prefix;
                return true;
            }
            case '%YAML': {
                this.yaml.explicit = true;
                if (parts.length !== 1) {
                    onError(0, '%YAML directive should contain exactly one part');
                    return false;
                }
                const [version] = parts;
                if (version === '1.1' || version === '1.2') {
                    this.yaml.version = version;
                    return true;
                }
                else {
                    const isValid = /^\d+\.\d+$/.test(version);
                    onError(6, `Unsupported YAML version ${version}`, isValid);
                    return false;
                }
            }
            default:
                onError(0, `Unknown directive ${name}`, true);
                return false;
        }
    }
    /**
     * Resolves a tag, matching handles to those defined in %TAG directives.
     *
     * @returns Resolved tag, which may also be the non-specific tag `'!'` or a
     *   `'!local'` tag, or `null` if unresolvable.
     */
    tagName(source, onError) {
        if (source === '!')
            return '!'; // non-specific tag
        if (source[0] !== '!') {
            onError(`Not a valid tag: ${source}`);
            return null;
        }
        if (source[1] === '<') {
            const verbatim = source.slice(2, -1);
            if (verbatim === '!' || verbatim === '!!') {
                onError(`Verbatim tags aren't resolved, so ${source} is invalid.`);
                return null;
            }
            if (source[source.length - 1] !== '>')
                onError('Verbatim tags must end with a >');
            return verbatim;
        }
        const [, handle, suffix] = source.match(/^(.*!)([^!]*)$/s);
        if (!suffix)
            onError(`The ${source} tag has no suffix`);
        const prefix = this.tags[handle];
        if (prefix) {
            try {
                return prefix + decodeURIComponent(suffix);
            }
            catch (error) {
                onError(String(error));
                return null;
            }
        }
        if (handle === '!')
            return source; // local tag
        onError(`Could not resolve tag: ${source}`);
        return null;
    }
    /**
     * Given a fully resolved tag, returns its printable string form,
     * taking into account current tag prefixes and defaults.
     */
    tagString(tag) {
        for (const [handle, prefix] of Object.entries(this.tags)) {
            if (tag.startsWith(prefix))
                return handle + escapeTagName(tag.substring(prefix.length));
        }
        return tag[0] === '!' ? tag : `!<${tag}>`;
    }
    toString(doc) {
        const lines = this.yaml.explicit
            ? [`%YAML ${this.yaml.version || '1.2'}`]
            : [];
        const tagEntries = Object.entries(this.tags);
        let tagNames;
        if (doc && tagEntries.length > 0 && identity.isNode(doc.contents)) {
            const tags = {};
            visit.visit(doc.contents, (_key, node) => {
                if (identity.isNode(node) && node.tag)
                    tags[node.tag] = true;
            });
            tagNames = Object.keys(tags);
        }
        else
            tagNames = [];
        for (const [handle, prefix] of tagEntries) {
            if (handle === '!!' && prefix === 'tag:yaml.org,2002:')
                continue;
            if (!doc || tagNames.some(tn => tn.startsWith(prefix)))
                lines.push(`%TAG ${handle} ${prefix}`);
        }
        return lines.join('\n');
    }
}
Directives.defaultYaml = { explicit: false, version: '1.2' };
Directives.defaultTags = { '!!': 'tag:yaml.org,2002:' };

exports.Directives = Directives;


/***/ }),

/***/ 1464:
/***/ ((__unused_webpack_module, exports) => {



class YAMLError extends Error {
    constructor(name, pos, code, message) {
        super();
        this.name = name;
        this.code = code;
        this.message = message;
        this.pos = pos;
    }
}
class YAMLParseError extends YAMLError {
    constructor(pos, code, message) {
        super('YAMLParseError', pos, code, message);
    }
}
class YAMLWarning extends YAMLError {
    constructor(pos, code, message) {
        super('YAMLWarning', pos, code, message);
    }
}
const prettifyError = (src, lc) => (error) => {
    if (error.pos[0] === -1)
        return;
    error.linePos = error.pos.map(pos => lc.linePos(pos));
    const { line, col } = error.linePos[0];
    error.message += ` at line ${line}, column ${col}`;
    let ci = col - 1;
    let lineStr = src
        .substring(lc.lineStarts[line - 1], lc.lineStarts[line])
        .replace(/[\n\r]+$/, '');
    // Trim to max 80 chars, keeping col position near the middle
    if (ci >= 60 && lineStr.length > 80) {
        const trimStart = Math.min(ci - 39, lineStr.length - 79);
        lineStr = '\u2026' + lineStr.substring(trimStart);
        ci -= trimStart - 1;
    }
    if (lineStr.length > 80)
        lineStr = lineStr.substring(0, 79) + '\u2026';
    // Include previous line in context if pointing at line start
    if (line > 1 && /^ *$/.test(lineStr.substring(0, ci))) {
        // Regexp won't match if start is trimmed
        let prev = src.substring(lc.lineStarts[line - 2], lc.lineStarts[line - 1]);
        if (prev.length > 80)
            prev = prev.substring(0, 79) + '\u2026\n';
        lineStr = prev + lineStr;
    }
    if (/[^ ]/.test(lineStr)) {
        let count = 1;
        const end = error.linePos[1];
        if (end?.line === line && end.col > col) {
            count = Math.max(1, Math.min(end.col - col, 80 - ci));
        }
        const pointer = ' '.repeat(ci) + '^'.repeat(count);
        error.message += `:\n\n${lineStr}\n${pointer}\n`;
    }
};

exports.YAMLError = YAMLError;
exports.YAMLParseError = YAMLParseError;
exports.YAMLWarning = YAMLWarning;
exports.prettifyError = prettifyError;


/***/ }),

/***/ 8815:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {

var __webpack_unused_export__;


var composer = __nccwpck_require__(9984);
var Document = __nccwpck_require__(3021);
var Schema = __nccwpck_require__(5840);
var errors = __nccwpck_require__(1464);
var Alias = __nccwpck_require__(4065);
var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var Scalar = __nccwpck_require__(3301);
var YAMLMap = __nccwpck_require__(4454);
var YAMLSeq = __nccwpck_require__(2223);
var cst = __nccwpck_require__(3461);
var lexer = __nccwpck_require__(361);
var lineCounter = __nccwpck_require__(6628);
var parser = __nccwpck_require__(3456);
var publicApi = __nccwpck_require__(4047);
var visit = __nccwpck_require__(204);



__webpack_unused_export__ = composer.Composer;
__webpack_unused_export__ = Document.Document;
__webpack_unused_export__ = Schema.Schema;
__webpack_unused_export__ = errors.YAMLError;
__webpack_unused_export__ = errors.YAMLParseError;
__webpack_unused_export__ = errors.YAMLWarning;
__webpack_unused_export__ = Alias.Alias;
__webpack_unused_export__ = identity.isAlias;
__webpack_unused_export__ = identity.isCollection;
__webpack_unused_export__ = identity.isDocument;
exports.jh = identity.isMap;
__webpack_unused_export__ = identity.isNode;
exports.tO = identity.isPair;
exports.jn = identity.isScalar;
__webpack_unused_export__ = identity.isSeq;
__webpack_unused_export__ = Pair.Pair;
__webpack_unused_export__ = Scalar.Scalar;
__webpack_unused_export__ = YAMLMap.YAMLMap;
__webpack_unused_export__ = YAMLSeq.YAMLSeq;
__webpack_unused_export__ = cst;
__webpack_unused_export__ = lexer.Lexer;
exports.HN = lineCounter.LineCounter;
__webpack_unused_export__ = parser.Parser;
__webpack_unused_export__ = publicApi.parse;
__webpack_unused_export__ = publicApi.parseAllDocuments;
exports.Tp = publicApi.parseDocument;
__webpack_unused_export__ = publicApi.stringify;
__webpack_unused_export__ = visit.visit;
__webpack_unused_export__ = visit.visitAsync;


/***/ }),

/***/ 7249:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var node_process = __nccwpck_require__(932);

function debug(logLevel, ...messages) {
    if (logLevel === 'debug')
        console.log(...messages);
}
function warn(logLevel, warning) {
    if (logLevel === 'debug' || logLevel === 'warn') {
        if (typeof node_process.emitWarning === 'function')
            node_process.emitWarning(warning);
        else
            console.warn(warning);
    }
}

exports.debug = debug;
exports.warn = warn;


/***/ }),

/***/ 4065:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var anchors = __nccwpck_require__(1596);
var visit = __nccwpck_require__(204);
var identity = __nccwpck_require__(1127);
var Node = __nccwpck_require__(6673);
var toJS = __nccwpck_require__(4043);

class Alias extends Node.NodeBase {
    constructor(source) {
        super(identity.ALIAS);
        this.source = source;
        Object.defineProperty(this, 'tag', {
            set() {
                throw new Error('Alias nodes cannot have tags');
            }
        });
    }
    /**
     * Resolve the value of this alias within `doc`, finding the last
     * instance of the `source` anchor before this node.
     */
    resolve(doc, ctx) {
        if (ctx?.maxAliasCount === 0)
            throw new ReferenceError('Alias resolution is disabled');
        let nodes;
        if (ctx?.aliasResolveCache) {
            nodes = ctx.aliasResolveCache;
        }
        else {
            nodes = [];
            visit.visit(doc, {
                Node: (_key, node) => {
                    if (identity.isAlias(node) || identity.hasAnchor(node))
                        nodes.push(node);
                }
            });
            if (ctx)
                ctx.aliasResolveCache = nodes;
        }
        let found = undefined;
        for (const node of nodes) {
            if (node === this)
                break;
            if (node.anchor === this.source)
                found = node;
        }
        if (found && ctx) {
            const { anchors, doc, maxAliasCount } = ctx;
            let data = anchors.get(found);
            if (!data) {
                // Resolve anchors for Node.prototype.toJS()
                toJS.toJS(found, null, ctx);
                data = anchors.get(found);
            }
            /* istanbul ignore if */
            if (data?.res === undefined) {
                const msg = 'This should not happen: Alias anchor was not resolved?';
                throw new ReferenceError(msg);
            }
            if (maxAliasCount >= 0) {
                data.count += 1;
                if (data.aliasCount === 0)
                    data.aliasCount = getAliasCount(doc, found, anchors);
                if (data.count * data.aliasCount > maxAliasCount) {
                    const msg = 'Excessive alias count indicates a resource exhaustion attack';
                    throw new ReferenceError(msg);
                }
            }
        }
        return found;
    }
    toJSON(_arg, ctx) {
        if (!ctx)
            return { source: this.source };
        const source = this.resolve(ctx.doc, ctx);
        if (!source) {
            const msg = `Unresolved alias (the anchor must be set before the alias): ${this.source}`;
            throw new ReferenceError(msg);
        }
        return ctx.anchors.get(source).res;
    }
    toString(ctx, _onComment, _onChompKeep) {
        const src = `*${this.source}`;
        if (ctx) {
            anchors.anchorIsValid(this.source);
            if (ctx.options.verifyAliasOrder && !ctx.anchors.has(this.source)) {
                const msg = `Unresolved alias (the anchor must be set before the alias): ${this.source}`;
                throw new Error(msg);
            }
            if (ctx.implicitKey)
                return `${src} `;
        }
        return src;
    }
}
function getAliasCount(doc, node, anchors) {
    if (identity.isAlias(node)) {
        const source = node.resolve(doc);
        const anchor = anchors && source && anchors.get(source);
        return anchor ? anchor.count * anchor.aliasCount : 0;
    }
    else if (identity.isCollection(node)) {
        let count = 0;
        for (const item of node.items) {
            const c = getAliasCount(doc, item, anchors);
            if (c > count)
                count = c;
        }
        return count;
    }
    else if (identity.isPair(node)) {
        const kc = getAliasCount(doc, node.key, anchors);
        const vc = getAliasCount(doc, node.value, anchors);
        return Math.max(kc, vc);
    }
    return 1;
}

exports.Alias = Alias;


/***/ }),

/***/ 101:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var createNode = __nccwpck_require__(2404);
var identity = __nccwpck_require__(1127);
var Node = __nccwpck_require__(6673);

function collectionFromPath(schema, path, value) {
    let v = value;
    for (let i = path.length - 1; i >= 0; --i) {
        const k = path[i];
        if (typeof k === 'number' && Number.isInteger(k) && k >= 0) {
            const a = [];
            a[k] = v;
            v = a;
        }
        else {
            v = new Map([[k, v]]);
        }
    }
    return createNode.createNode(v, undefined, {
        aliasDuplicateObjects: false,
        keepUndefined: false,
        onAnchor: () => {
            throw new Error('This should not happen, please report a bug.');
        },
        schema,
        sourceObjects: new Map()
    });
}
// Type guard is intentionally a little wrong so as to be more useful,
// as it does not cover untypable empty non-string iterables (e.g. []).
const isEmptyPath = (path) => path == null ||
    (typeof path === 'object' && !!path[Symbol.iterator]().next().done);
class Collection extends Node.NodeBase {
    constructor(type, schema) {
        super(type);
        Object.defineProperty(this, 'schema', {
            value: schema,
            configurable: true,
            enumerable: false,
            writable: true
        });
    }
    /**
     * Create a copy of this collection.
     *
     * @param schema - If defined, overwrites the original's schema
     */
    clone(schema) {
        const copy = Object.create(Object.getPrototypeOf(this), Object.getOwnPropertyDescriptors(this));
        if (schema)
            copy.schema = schema;
        copy.items = copy.items.map(it => identity.isNode(it) || identity.isPair(it) ? it.clone(schema) : it);
        if (this.range)
            copy.range = this.range.slice();
        return copy;
    }
    /**
     * Adds a value to the collection. For `!!map` and `!!omap` the value must
     * be a Pair instance or a `{ key, value }` object, which may not have a key
     * that already exists in the map.
     */
    addIn(path, value) {
        if (isEmptyPath(path))
            this.add(value);
        else {
            const [key, ...rest] = path;
            const node = this.get(key, true);
            if (identity.isCollection(node))
                node.addIn(rest, value);
            else if (node === undefined && this.schema)
                this.set(key, collectionFromPath(this.schema, rest, value));
            else
                throw new Error(`Expected YAML collection at ${key}. Remaining path: ${rest}`);
        }
    }
    /**
     * Removes a value from the collection.
     * @returns `true` if the item was found and removed.
     */
    deleteIn(path) {
        const [key, ...rest] = path;
        if (rest.length === 0)
            return this.delete(key);
        const node = this.get(key, true);
        if (identity.isCollection(node))
            return node.deleteIn(rest);
        else
            throw new Error(`Expected YAML collection at ${key}. Remaining path: ${rest}`);
    }
    /**
     * Returns item at `key`, or `undefined` if not found. By default unwraps
     * scalar values from their surrounding node; to disable set `keepScalar` to
     * `true` (collections are always returned intact).
     */
    getIn(path, keepScalar) {
        const [key, ...rest] = path;
        const node = this.get(key, true);
        if (rest.length === 0)
            return !keepScalar && identity.isScalar(node) ? node.value : node;
        else
            return identity.isCollection(node) ? node.getIn(rest, keepScalar) : undefined;
    }
    hasAllNullValues(allowScalar) {
        return this.items.every(node => {
            if (!identity.isPair(node))
                return false;
            const n = node.value;
            return (n == null ||
                (allowScalar &&
                    identity.isScalar(n) &&
                    n.value == null &&
                    !n.commentBefore &&
                    !n.comment &&
                    !n.tag));
        });
    }
    /**
     * Checks if the collection includes a value with the key `key`.
     */
    hasIn(path) {
        const [key, ...rest] = path;
        if (rest.length === 0)
            return this.has(key);
        const node = this.get(key, true);
        return identity.isCollection(node) ? node.hasIn(rest) : false;
    }
    /**
     * Sets a value in this collection. For `!!set`, `value` needs to be a
     * boolean to add/remove the item from the set.
     */
    setIn(path, value) {
        const [key, ...rest] = path;
        if (rest.length === 0) {
            this.set(key, value);
        }
        else {
            const node = this.get(key, true);
            if (identity.isCollection(node))
                node.setIn(rest, value);
            else if (node === undefined && this.schema)
                this.set(key, collectionFromPath(this.schema, rest, value));
            else
                throw new Error(`Expected YAML collection at ${key}. Remaining path: ${rest}`);
        }
    }
}

exports.Collection = Collection;
exports.collectionFromPath = collectionFromPath;
exports.isEmptyPath = isEmptyPath;


/***/ }),

/***/ 6673:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var applyReviver = __nccwpck_require__(3661);
var identity = __nccwpck_require__(1127);
var toJS = __nccwpck_require__(4043);

class NodeBase {
    constructor(type) {
        Object.defineProperty(this, identity.NODE_TYPE, { value: type });
    }
    /** Create a copy of this node.  */
    clone() {
        const copy = Object.create(Object.getPrototypeOf(this), Object.getOwnPropertyDescriptors(this));
        if (this.range)
            copy.range = this.range.slice();
        return copy;
    }
    /** A plain JavaScript representation of this node. */
    toJS(doc, { mapAsMap, maxAliasCount, onAnchor, reviver } = {}) {
        if (!identity.isDocument(doc))
            throw new TypeError('A document argument is required');
        const ctx = {
            anchors: new Map(),
            doc,
            keep: true,
            mapAsMap: mapAsMap === true,
            mapKeyWarned: false,
            maxAliasCount: typeof maxAliasCount === 'number' ? maxAliasCount : 100
        };
        const res = toJS.toJS(this, '', ctx);
        if (typeof onAnchor === 'function')
            for (const { count, res } of ctx.anchors.values())
                onAnchor(res, count);
        return typeof reviver === 'function'
            ? applyReviver.applyReviver(reviver, { '': res }, '', res)
            : res;
    }
}

exports.NodeBase = NodeBase;


/***/ }),

/***/ 7165:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var createNode = __nccwpck_require__(2404);
var stringifyPair = __nccwpck_require__(9748);
var addPairToJSMap = __nccwpck_require__(7104);
var identity = __nccwpck_require__(1127);

function createPair(key, value, ctx) {
    const k = createNode.createNode(key, undefined, ctx);
    const v = createNode.createNode(value, undefined, ctx);
    return new Pair(k, v);
}
class Pair {
    constructor(key, value = null) {
        Object.defineProperty(this, identity.NODE_TYPE, { value: identity.PAIR });
        this.key = key;
        this.value = value;
    }
    clone(schema) {
        let { key, value } = this;
        if (identity.isNode(key))
            key = key.clone(schema);
        if (identity.isNode(value))
            value = value.clone(schema);
        return new Pair(key, value);
    }
    toJSON(_, ctx) {
        const pair = ctx?.mapAsMap ? new Map() : {};
        return addPairToJSMap.addPairToJSMap(ctx, pair, this);
    }
    toString(ctx, onComment, onChompKeep) {
        return ctx?.doc
            ? stringifyPair.stringifyPair(this, ctx, onComment, onChompKeep)
            : JSON.stringify(this);
    }
}

exports.Pair = Pair;
exports.createPair = createPair;


/***/ }),

/***/ 3301:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Node = __nccwpck_require__(6673);
var toJS = __nccwpck_require__(4043);

const isScalarValue = (value) => !value || (typeof value !== 'function' && typeof value !== 'object');
class Scalar extends Node.NodeBase {
    constructor(value) {
        super(identity.SCALAR);
        this.value = value;
    }
    toJSON(arg, ctx) {
        return ctx?.keep ? this.value : toJS.toJS(this.value, arg, ctx);
    }
    toString() {
        return String(this.value);
    }
}
Scalar.BLOCK_FOLDED = 'BLOCK_FOLDED';
Scalar.BLOCK_LITERAL = 'BLOCK_LITERAL';
Scalar.PLAIN = 'PLAIN';
Scalar.QUOTE_DOUBLE = 'QUOTE_DOUBLE';
Scalar.QUOTE_SINGLE = 'QUOTE_SINGLE';

exports.Scalar = Scalar;
exports.isScalarValue = isScalarValue;


/***/ }),

/***/ 4454:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var stringifyCollection = __nccwpck_require__(1212);
var addPairToJSMap = __nccwpck_require__(7104);
var Collection = __nccwpck_require__(101);
var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var Scalar = __nccwpck_require__(3301);

function findPair(items, key) {
    const k = identity.isScalar(key) ? key.value : key;
    for (const it of items) {
        if (identity.isPair(it)) {
            if (it.key === key || it.key === k)
                return it;
            if (identity.isScalar(it.key) && it.key.value === k)
                return it;
        }
    }
    return undefined;
}
class YAMLMap extends Collection.Collection {
    static get tagName() {
        return 'tag:yaml.org,2002:map';
    }
    constructor(schema) {
        super(identity.MAP, schema);
        this.items = [];
    }
    /**
     * A generic collection parsing method that can be extended
     * to other node classes that inherit from YAMLMap
     */
    static from(schema, obj, ctx) {
        const { keepUndefined, replacer } = ctx;
        const map = new this(schema);
        const add = (key, value) => {
            if (typeof replacer === 'function')
                value = replacer.call(obj, key, value);
            else if (Array.isArray(replacer) && !replacer.includes(key))
                return;
            if (value !== undefined || keepUndefined)
                map.items.push(Pair.createPair(key, value, ctx));
        };
        if (obj instanceof Map) {
            for (const [key, value] of obj)
                add(key, value);
        }
        else if (obj && typeof obj === 'object') {
            for (const key of Object.keys(obj))
                add(key, obj[key]);
        }
        if (typeof schema.sortMapEntries === 'function') {
            map.items.sort(schema.sortMapEntries);
        }
        return map;
    }
    /**
     * Adds a value to the collection.
     *
     * @param overwrite - If not set `true`, using a key that is already in the
     *   collection will throw. Otherwise, overwrites the previous value.
     */
    add(pair, overwrite) {
        let _pair;
        if (identity.isPair(pair))
            _pair = pair;
        else if (!pair || typeof pair !== 'object' || !('key' in pair)) {
            // In TypeScript, this never happens.
            _pair = new Pair.Pair(pair, pair?.value);
        }
        else
            _pair = new Pair.Pair(pair.key, pair.value);
        const prev = findPair(this.items, _pair.key);
        const sortEntries = this.schema?.sortMapEntries;
        if (prev) {
            if (!overwrite)
                throw new Error(`Key ${_pair.key} already set`);
            // For scalars, keep the old node & its comments and anchors
            if (identity.isScalar(prev.value) && Scalar.isScalarValue(_pair.value))
                prev.value.value = _pair.value;
            else
                prev.value = _pair.value;
        }
        else if (sortEntries) {
            const i = this.items.findIndex(item => sortEntries(_pair, item) < 0);
            if (i === -1)
                this.items.push(_pair);
            else
                this.items.splice(i, 0, _pair);
        }
        else {
            this.items.push(_pair);
        }
    }
    delete(key) {
        const it = findPair(this.items, key);
        if (!it)
            return false;
        const del = this.items.splice(this.items.indexOf(it), 1);
        return del.length > 0;
    }
    get(key, keepScalar) {
        const it = findPair(this.items, key);
        const node = it?.value;
        return (!keepScalar && identity.isScalar(node) ? node.value : node) ?? undefined;
    }
    has(key) {
        return !!findPair(this.items, key);
    }
    set(key, value) {
        this.add(new Pair.Pair(key, value), true);
    }
    /**
     * @param ctx - Conversion context, originally set in Document#toJS()
     * @param {Class} Type - If set, forces the returned collection type
     * @returns Instance of Type, Map, or Object
     */
    toJSON(_, ctx, Type) {
        const map = Type ? new Type() : ctx?.mapAsMap ? new Map() : {};
        if (ctx?.onCreate)
            ctx.onCreate(map);
        for (const item of this.items)
            addPairToJSMap.addPairToJSMap(ctx, map, item);
        return map;
    }
    toString(ctx, onComment, onChompKeep) {
        if (!ctx)
            return JSON.stringify(this);
        for (const item of this.items) {
            if (!identity.isPair(item))
                throw new Error(`Map items must all be pairs; found ${JSON.stringify(item)} instead`);
        }
        if (!ctx.allNullValues && this.hasAllNullValues(false))
            ctx = Object.assign({}, ctx, { allNullValues: true });
        return stringifyCollection.stringifyCollection(this, ctx, {
            blockItemPrefix: '',
            flowChars: { start: '{', end: '}' },
            itemIndent: ctx.indent || '',
            onChompKeep,
            onComment
        });
    }
}

exports.YAMLMap = YAMLMap;
exports.findPair = findPair;


/***/ }),

/***/ 2223:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var createNode = __nccwpck_require__(2404);
var stringifyCollection = __nccwpck_require__(1212);
var Collection = __nccwpck_require__(101);
var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);
var toJS = __nccwpck_require__(4043);

class YAMLSeq extends Collection.Collection {
    static get tagName() {
        return 'tag:yaml.org,2002:seq';
    }
    constructor(schema) {
        super(identity.SEQ, schema);
        this.items = [];
    }
    add(value) {
        this.items.push(value);
    }
    /**
     * Removes a value from the collection.
     *
     * `key` must contain a representation of an integer for this to succeed.
     * It may be wrapped in a `Scalar`.
     *
     * @returns `true` if the item was found and removed.
     */
    delete(key) {
        const idx = asItemIndex(key);
        if (typeof idx !== 'number')
            return false;
        const del = this.items.splice(idx, 1);
        return del.length > 0;
    }
    get(key, keepScalar) {
        const idx = asItemIndex(key);
        if (typeof idx !== 'number')
            return undefined;
        const it = this.items[idx];
        return !keepScalar && identity.isScalar(it) ? it.value : it;
    }
    /**
     * Checks if the collection includes a value with the key `key`.
     *
     * `key` must contain a representation of an integer for this to succeed.
     * It may be wrapped in a `Scalar`.
     */
    has(key) {
        const idx = asItemIndex(key);
        return typeof idx === 'number' && idx < this.items.length;
    }
    /**
     * Sets a value in this collection. For `!!set`, `value` needs to be a
     * boolean to add/remove the item from the set.
     *
     * If `key` does not contain a representation of an integer, this will throw.
     * It may be wrapped in a `Scalar`.
     */
    set(key, value) {
        const idx = asItemIndex(key);
        if (typeof idx !== 'number')
            throw new Error(`Expected a valid index, not ${key}.`);
        const prev = this.items[idx];
        if (identity.isScalar(prev) && Scalar.isScalarValue(value))
            prev.value = value;
        else
            this.items[idx] = value;
    }
    toJSON(_, ctx) {
        const seq = [];
        if (ctx?.onCreate)
            ctx.onCreate(seq);
        let i = 0;
        for (const item of this.items)
            seq.push(toJS.toJS(item, String(i++), ctx));
        return seq;
    }
    toString(ctx, onComment, onChompKeep) {
        if (!ctx)
            return JSON.stringify(this);
        return stringifyCollection.stringifyCollection(this, ctx, {
            blockItemPrefix: '- ',
            flowChars: { start: '[', end: ']' },
            itemIndent: (ctx.indent || '') + '  ',
            onChompKeep,
            onComment
        });
    }
    static from(schema, obj, ctx) {
        const { replacer } = ctx;
        const seq = new this(schema);
        if (obj && Symbol.iterator in Object(obj)) {
            let i = 0;
            for (let it of obj) {
                if (typeof replacer === 'function') {
                    const key = obj instanceof Set ? it : String(i++);
                    it = replacer.call(obj, key, it);
                }
                seq.items.push(createNode.createNode(it, undefined, ctx));
            }
        }
        return seq;
    }
}
function asItemIndex(key) {
    let idx = identity.isScalar(key) ? key.value : key;
    if (idx && typeof idx === 'string')
        idx = Number(idx);
    return typeof idx === 'number' && Number.isInteger(idx) && idx >= 0
        ? idx
        : null;
}

exports.YAMLSeq = YAMLSeq;


/***/ }),

/***/ 7104:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var log = __nccwpck_require__(7249);
var merge = __nccwpck_require__(452);
var stringify = __nccwpck_require__(2148);
var identity = __nccwpck_require__(1127);
var toJS = __nccwpck_require__(4043);

function addPairToJSMap(ctx, map, { key, value }) {
    if (identity.isNode(key) && key.addToJSMap)
        key.addToJSMap(ctx, map, value);
    // TODO: Should drop this special case for bare << handling
    else if (merge.isMergeKey(ctx, key))
        merge.addMergeToJSMap(ctx, map, value);
    else {
        const jsKey = toJS.toJS(key, '', ctx);
        if (map instanceof Map) {
            map.set(jsKey, toJS.toJS(value, jsKey, ctx));
        }
        else if (map instanceof Set) {
            map.add(jsKey);
        }
        else {
            const stringKey = stringifyKey(key, jsKey, ctx);
            const jsValue = toJS.toJS(value, stringKey, ctx);
            if (stringKey in map)
                Object.defineProperty(map, stringKey, {
                    value: jsValue,
                    writable: true,
                    enumerable: true,
                    configurable: true
                });
            else
                map[stringKey] = jsValue;
        }
    }
    return map;
}
function stringifyKey(key, jsKey, ctx) {
    if (jsKey === null)
        return '';
    // eslint-disable-next-line @typescript-eslint/no-base-to-string
    if (typeof jsKey !== 'object')
        return String(jsKey);
    if (identity.isNode(key) && ctx?.doc) {
        const strCtx = stringify.createStringifyContext(ctx.doc, {});
        strCtx.anchors = new Set();
        for (const node of ctx.anchors.keys())
            strCtx.anchors.add(node.anchor);
        strCtx.inFlow = true;
        strCtx.inStringifyKey = true;
        const strKey = key.toString(strCtx);
        if (!ctx.mapKeyWarned) {
            let jsonStr = JSON.stringify(strKey);
            if (jsonStr.length > 40)
                jsonStr = jsonStr.substring(0, 36) + '..."';
            log.warn(ctx.doc.options.logLevel, `Keys with collection values will be stringified due to JS Object restrictions: ${jsonStr}. Set mapAsMap: true to use object keys.`);
            ctx.mapKeyWarned = true;
        }
        return strKey;
    }
    return JSON.stringify(jsKey);
}

exports.addPairToJSMap = addPairToJSMap;


/***/ }),

/***/ 1127:
/***/ ((__unused_webpack_module, exports) => {



const ALIAS = Symbol.for('yaml.alias');
const DOC = Symbol.for('yaml.document');
const MAP = Symbol.for('yaml.map');
const PAIR = Symbol.for('yaml.pair');
const SCALAR = Symbol.for('yaml.scalar');
const SEQ = Symbol.for('yaml.seq');
const NODE_TYPE = Symbol.for('yaml.node.type');
const isAlias = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === ALIAS;
const isDocument = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === DOC;
const isMap = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === MAP;
const isPair = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === PAIR;
const isScalar = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === SCALAR;
const isSeq = (node) => !!node && typeof node === 'object' && node[NODE_TYPE] === SEQ;
function isCollection(node) {
    if (node && typeof node === 'object')
        switch (node[NODE_TYPE]) {
            case MAP:
            case SEQ:
                return true;
        }
    return false;
}
function isNode(node) {
    if (node && typeof node === 'object')
        switch (node[NODE_TYPE]) {
            case ALIAS:
            case MAP:
            case SCALAR:
            case SEQ:
                return true;
        }
    return false;
}
const hasAnchor = (node) => (isScalar(node) || isCollection(node)) && !!node.anchor;

exports.ALIAS = ALIAS;
exports.DOC = DOC;
exports.MAP = MAP;
exports.NODE_TYPE = NODE_TYPE;
exports.PAIR = PAIR;
exports.SCALAR = SCALAR;
exports.SEQ = SEQ;
exports.hasAnchor = hasAnchor;
exports.isAlias = isAlias;
exports.isCollection = isCollection;
exports.isDocument = isDocument;
exports.isMap = isMap;
exports.isNode = isNode;
exports.isPair = isPair;
exports.isScalar = isScalar;
exports.isSeq = isSeq;


/***/ }),

/***/ 4043:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);

/**
 * Recursively convert any node or its contents to native JavaScript
 *
 * @param value - The input value
 * @param arg - If `value` defines a `toJSON()` method, use this
 *   as its first argument
 * @param ctx - Conversion context, originally set in Document#toJS(). If
 *   `{ keep: true }` is not set, output should be suitable for JSON
 *   stringification.
 */
function toJS(value, arg, ctx) {
    // eslint-disable-next-line @typescript-eslint/no-unsafe-return
    if (Array.isArray(value))
        return value.map((v, i) => toJS(v, String(i), ctx));
    if (value && typeof value.toJSON === 'function') {
        // eslint-disable-next-line @typescript-eslint/no-unsafe-call
        if (!ctx || !identity.hasAnchor(value))
            return value.toJSON(arg, ctx);
        const data = { aliasCount: 0, count: 1, res: undefined };
        ctx.anchors.set(value, data);
        ctx.onCreate = res => {
            data.res = res;
            delete ctx.onCreate;
        };
        const res = value.toJSON(arg, ctx);
        if (ctx.onCreate)
            ctx.onCreate(res);
        return res;
    }
    if (typeof value === 'bigint' && !ctx?.keep)
        return Number(value);
    return value;
}

exports.toJS = toJS;


/***/ }),

/***/ 110:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var resolveBlockScalar = __nccwpck_require__(8913);
var resolveFlowScalar = __nccwpck_require__(6842);
var errors = __nccwpck_require__(1464);
var stringifyString = __nccwpck_require__(3069);

function resolveAsScalar(token, strict = true, onError) {
    if (token) {
        const _onError = (pos, code, message) => {
            const offset = typeof pos === 'number' ? pos : Array.isArray(pos) ? pos[0] : pos.offset;
            if (onError)
                onError(offset, code, message);
            else
                throw new errors.YAMLParseError([offset, offset + 1], code, message);
        };
        switch (token.type) {
            case 'scalar':
            case 'single-quoted-scalar':
            case 'double-quoted-scalar':
                return resolveFlowScalar.resolveFlowScalar(token, strict, _onError);
            case 'block-scalar':
                return resolveBlockScalar.resolveBlockScalar({ options: { strict } }, token, _onError);
        }
    }
    return null;
}
/**
 * Create a new scalar token with `value`
 *
 * Values that represent an actual string but may be parsed as a different type should use a `type` other than `'PLAIN'`,
 * as this function does not support any schema operations and won't check for such conflicts.
 *
 * @param value The string representation of the value, which will have its content properly indented.
 * @param context.end Comments and whitespace after the end of the value, or after the block scalar header. If undefined, a newline will be added.
 * @param context.implicitKey Being within an implicit key may affect the resolved type of the token's value.
 * @param context.indent The indent level of the token.
 * @param context.inFlow Is this scalar within a flow collection? This may affect the resolved type of the token's value.
 * @param context.offset The offset position of the token.
 * @param context.type The preferred type of the scalar token. If undefined, the previous type of the `token` will be used, defaulting to `'PLAIN'`.
 */
function createScalarToken(value, context) {
    const { implicitKey = false, indent, inFlow = false, offset = -1, type = 'PLAIN' } = context;
    const source = stringifyString.stringifyString({ type, value }, {
        implicitKey,
        indent: indent > 0 ? ' '.repeat(indent) : '',
        inFlow,
        options: { blockQuote: true, lineWidth: -1 }
    });
    const end = context.end ?? [
        { type: 'newline', offset: -1, indent, source: '\n' }
    ];
    switch (source[0]) {
        case '|':
        case '>': {
            const he = source.indexOf('\n');
            const head = source.substring(0, he);
            const body = source.substring(he + 1) + '\n';
            const props = [
                { type: 'block-scalar-header', offset, indent, source: head }
            ];
            if (!addEndtoBlockProps(props, end))
                props.push({ type: 'newline', offset: -1, indent, source: '\n' });
            return { type: 'block-scalar', offset, indent, props, source: body };
        }
        case '"':
            return { type: 'double-quoted-scalar', offset, indent, source, end };
        case "'":
            return { type: 'single-quoted-scalar', offset, indent, source, end };
        default:
            return { type: 'scalar', offset, indent, source, end };
    }
}
/**
 * Set the value of `token` to the given string `value`, overwriting any previous contents and type that it may have.
 *
 * Best efforts are made to retain any comments previously associated with the `token`,
 * though all contents within a collection's `items` will be overwritten.
 *
 * Values that represent an actual string but may be parsed as a different type should use a `type` other than `'PLAIN'`,
 * as this function does not support any schema operations and won't check for such conflicts.
 *
 * @param token Any token. If it does not include an `indent` value, the value will be stringified as if it were an implicit key.
 * @param value The string representation of the value, which will have its content properly indented.
 * @param context.afterKey In most cases, values after a key should have an additional level of indentation.
 * @param context.implicitKey Being within an implicit key may affect the resolved type of the token's value.
 * @param context.inFlow Being within a flow collection may affect the resolved type of the token's value.
 * @param context.type The preferred type of the scalar token. If undefined, the previous type of the `token` will be used, defaulting to `'PLAIN'`.
 */
function setScalarValue(token, value, context = {}) {
    let { afterKey = false, implicitKey = false, inFlow = false, type } = context;
    let indent = 'indent' in token ? token.indent : null;
    if (afterKey && typeof indent === 'number')
        indent += 2;
    if (!type)
        switch (token.type) {
            case 'single-quoted-scalar':
                type = 'QUOTE_SINGLE';
                break;
            case 'double-quoted-scalar':
                type = 'QUOTE_DOUBLE';
                break;
            case 'block-scalar': {
                const header = token.props[0];
                if (header.type !== 'block-scalar-header')
                    throw new Error('Invalid block scalar header');
                type = header.source[0] === '>' ? 'BLOCK_FOLDED' : 'BLOCK_LITERAL';
                break;
            }
            default:
                type = 'PLAIN';
        }
    const source = stringifyString.stringifyString({ type, value }, {
        implicitKey: implicitKey || indent === null,
        indent: indent !== null && indent > 0 ? ' '.repeat(indent) : '',
        inFlow,
        options: { blockQuote: true, lineWidth: -1 }
    });
    switch (source[0]) {
        case '|':
        case '>':
            setBlockScalarValue(token, source);
            break;
        case '"':
            setFlowScalarValue(token, source, 'double-quoted-scalar');
            break;
        case "'":
            setFlowScalarValue(token, source, 'single-quoted-scalar');
            break;
        default:
            setFlowScalarValue(token, source, 'scalar');
    }
}
function setBlockScalarValue(token, source) {
    const he = source.indexOf('\n');
    const head = source.substring(0, he);
    const body = source.substring(he + 1) + '\n';
    if (token.type === 'block-scalar') {
        const header = token.props[0];
        if (header.type !== 'block-scalar-header')
            throw new Error('Invalid block scalar header');
        header.source = head;
        token.source = body;
    }
    else {
        const { offset } = token;
        const indent = 'indent' in token ? token.indent : -1;
        const props = [
            { type: 'block-scalar-header', offset, indent, source: head }
        ];
        if (!addEndtoBlockProps(props, 'end' in token ? token.end : undefined))
            props.push({ type: 'newline', offset: -1, indent, source: '\n' });
        for (const key of Object.keys(token))
            if (key !== 'type' && key !== 'offset')
                delete token[key];
        Object.assign(token, { type: 'block-scalar', indent, props, source: body });
    }
}
/** @returns `true` if last token is a newline */
function addEndtoBlockProps(props, end) {
    if (end)
        for (const st of end)
            switch (st.type) {
                case 'space':
                case 'comment':
                    props.push(st);
                    break;
                case 'newline':
                    props.push(st);
                    return true;
            }
    return false;
}
function setFlowScalarValue(token, source, type) {
    switch (token.type) {
        case 'scalar':
        case 'double-quoted-scalar':
        case 'single-quoted-scalar':
            token.type = type;
            token.source = source;
            break;
        case 'block-scalar': {
            const end = token.props.slice(1);
            let oa = source.length;
            if (token.props[0].type === 'block-scalar-header')
                oa -= token.props[0].source.length;
            for (const tok of end)
                tok.offset += oa;
            delete token.props;
            Object.assign(token, { type, source, end });
            break;
        }
        case 'block-map':
        case 'block-seq': {
            const offset = token.offset + source.length;
            const nl = { type: 'newline', offset, indent: token.indent, source: '\n' };
            delete token.items;
            Object.assign(token, { type, source, end: [nl] });
            break;
        }
        default: {
            const indent = 'indent' in token ? token.indent : -1;
            const end = 'end' in token && Array.isArray(token.end)
                ? token.end.filter(st => st.type === 'space' ||
                    st.type === 'comment' ||
                    st.type === 'newline')
                : [];
            for (const key of Object.keys(token))
                if (key !== 'type' && key !== 'offset')
                    delete token[key];
            Object.assign(token, { type, indent, source, end });
        }
    }
}

exports.createScalarToken = createScalarToken;
exports.resolveAsScalar = resolveAsScalar;
exports.setScalarValue = setScalarValue;


/***/ }),

/***/ 1733:
/***/ ((__unused_webpack_module, exports) => {



/**
 * Stringify a CST document, token, or collection item
 *
 * Fair warning: This applies no validation whatsoever, and
 * simply concatenates the sources in their logical order.
 */
const stringify = (cst) => 'type' in cst ? stringifyToken(cst) : stringifyItem(cst);
function stringifyToken(token) {
    switch (token.type) {
        case 'block-scalar': {
            let res = '';
            for (const tok of token.props)
                res += stringifyToken(tok);
            return res + token.source;
        }
        case 'block-map':
        case 'block-seq': {
            let res = '';
            for (const item of token.items)
                res += stringifyItem(item);
            return res;
        }
        case 'flow-collection': {
            let res = token.start.source;
            for (const item of token.items)
                res += stringifyItem(item);
            for (const st of token.end)
                res += st.source;
            return res;
        }
        case 'document': {
            let res = stringifyItem(token);
            if (token.end)
                for (const st of token.end)
                    res += st.source;
            return res;
        }
        default: {
            let res = token.source;
            if ('end' in token && token.end)
                for (const st of token.end)
                    res += st.source;
            return res;
        }
    }
}
function stringifyItem({ start, key, sep, value }) {
    let res = '';
    for (const st of start)
        res += st.source;
    if (key)
        res += stringifyToken(key);
    if (sep)
        for (const st of sep)
            res += st.source;
    if (value)
        res += stringifyToken(value);
    return res;
}

exports.stringify = stringify;


/***/ }),

/***/ 7715:
/***/ ((__unused_webpack_module, exports) => {



const BREAK = Symbol('break visit');
const SKIP = Symbol('skip children');
const REMOVE = Symbol('remove item');
/**
 * Apply a visitor to a CST document or item.
 *
 * Walks through the tree (depth-first) starting from the root, calling a
 * `visitor` function with two arguments when entering each item:
 *   - `item`: The current item, which included the following members:
 *     - `start: SourceToken[]` \u2013 Source tokens before the key or value,
 *       possibly including its anchor or tag.
 *     - `key?: Token | null` \u2013 Set for pair values. May then be `null`, if
 *       the key before the `:` separator is empty.
 *     - `sep?: SourceToken[]` \u2013 Source tokens between the key and the value,
 *       which should include the `:` map value indicator if `value` is set.
 *     - `value?: Token` \u2013 The value of a sequence item, or of a map pair.
 *   - `path`: The steps from the root to the current node, as an array of
 *     `['key' | 'value', number]` tuples.
 *
 * The return value of the visitor may be used to control the traversal:
 *   - `undefined` (default): Do nothing and continue
 *   - `visit.SKIP`: Do not visit the children of this token, continue with
 *      next sibling
 *   - `visit.BREAK`: Terminate traversal completely
 *   - `visit.REMOVE`: Remove the current item, then continue with the next one
 *   - `number`: Set the index of the next step. This is useful especially if
 *     the index of the current token has changed.
 *   - `function`: Define the next visitor for this item. After the original
 *     visitor is called on item entry, next visitors are called after handling
 *     a non-empty `key` and when exiting the item.
 */
function visit(cst, visitor) {
    if ('type' in cst && cst.type === 'document')
        cst = { start: cst.start, value: cst.value };
    _visit(Object.freeze([]), cst, visitor);
}
// Without the `as symbol` casts, TS declares these in the `visit`
// namespace using `var`, but then complains about that because
// `unique symbol` must be `const`.
/** Terminate visit traversal completely */
visit.BREAK = BREAK;
/** Do not visit the children of the current item */
visit.SKIP = SKIP;
/** Remove the current item */
visit.REMOVE = REMOVE;
/** Find the item at `path` from `cst` as the root */
visit.itemAtPath = (cst, path) => {
    let item = cst;
    for (const [field, index] of path) {
        const tok = item?.[field];
        if (tok && 'items' in tok) {
            item = tok.items[index];
        }
        else
            return undefined;
    }
    return item;
};
/**
 * Get the immediate parent collection of the item at `path` from `cst` as the root.
 *
 * Throws an error if the collection is not found, which should never happen if the item itself exists.
 */
visit.parentCollection = (cst, path) => {
    const parent = visit.itemAtPath(cst, path.slice(0, -1));
    const field = path[path.length - 1][0];
    const coll = parent?.[field];
    if (coll && 'items' in coll)
        return coll;
    throw new Error('Parent collection not found');
};
function _visit(path, item, visitor) {
    let ctrl = visitor(item, path);
    if (typeof ctrl === 'symbol')
        return ctrl;
    for (const field of ['key', 'value']) {
        const token = item[field];
        if (token && 'items' in token) {
            for (let i = 0; i < token.items.length; ++i) {
                const ci = _visit(Object.freeze(path.concat([[field, i]])), token.items[i], visitor);
                if (typeof ci === 'number')
                    i = ci - 1;
                else if (ci === BREAK)
                    return BREAK;
                else if (ci === REMOVE) {
                    token.items.splice(i, 1);
                    i -= 1;
                }
            }
            if (typeof ctrl === 'function' && field === 'key')
                ctrl = ctrl(item, path);
        }
    }
    return typeof ctrl === 'function' ? ctrl(item, path) : ctrl;
}

exports.visit = visit;


/***/ }),

/***/ 3461:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var cstScalar = __nccwpck_require__(110);
var cstStringify = __nccwpck_require__(1733);
var cstVisit = __nccwpck_require__(7715);

/** The byte order mark */
const BOM = '\u{FEFF}';
/** Start of doc-mode */
const DOCUMENT = '\x02'; // C0: Start of Text
/** Unexpected end of flow-mode */
const FLOW_END = '\x18'; // C0: Cancel
/** Next token is a scalar value */
const SCALAR = '\x1f'; // C0: Unit Separator
/** @returns `true` if `token` is a flow or block collection */
const isCollection = (token) => !!token && 'items' in token;
/** @returns `true` if `token` is a flow or block scalar; not an alias */
const isScalar = (token) => !!token &&
    (token.type === 'scalar' ||
        token.type === 'single-quoted-scalar' ||
        token.type === 'double-quoted-scalar' ||
        token.type === 'block-scalar');
/* istanbul ignore next */
/** Get a printable representation of a lexer token */
function prettyToken(token) {
    switch (token) {
        case BOM:
            return '<BOM>';
        case DOCUMENT:
            return '<DOC>';
        case FLOW_END:
            return '<FLOW_END>';
        case SCALAR:
            return '<SCALAR>';
        default:
            return JSON.stringify(token);
    }
}
/** Identify the type of a lexer token. May return `null` for unknown tokens. */
function tokenType(source) {
    switch (source) {
        case BOM:
            return 'byte-order-mark';
        case DOCUMENT:
            return 'doc-mode';
        case FLOW_END:
            return 'flow-error-end';
        case SCALAR:
            return 'scalar';
        case '---':
            return 'doc-start';
        case '...':
            return 'doc-end';
        case '':
        case '\n':
        case '\r\n':
            return 'newline';
        case '-':
            return 'seq-item-ind';
        case '?':
            return 'explicit-key-ind';
        case ':':
            return 'map-value-ind';
        case '{':
            return 'flow-map-start';
        case '}':
            return 'flow-map-end';
        case '[':
            return 'flow-seq-start';
        case ']':
            return 'flow-seq-end';
        case ',':
            return 'comma';
    }
    switch (source[0]) {
        case ' ':
        case '\t':
            return 'space';
        case '#':
            return 'comment';
        case '%':
            return 'directive-line';
        case '*':
            return 'alias';
        case '&':
            return 'anchor';
        case '!':
            return 'tag';
        case "'":
            return 'single-quoted-scalar';
        case '"':
            return 'double-quoted-scalar';
        case '|':
        case '>':
            return 'block-scalar-header';
    }
    return null;
}

exports.createScalarToken = cstScalar.createScalarToken;
exports.resolveAsScalar = cstScalar.resolveAsScalar;
exports.setScalarValue = cstScalar.setScalarValue;
exports.stringify = cstStringify.stringify;
exports.visit = cstVisit.visit;
exports.BOM = BOM;
exports.DOCUMENT = DOCUMENT;
exports.FLOW_END = FLOW_END;
exports.SCALAR = SCALAR;
exports.isCollection = isCollection;
exports.isScalar = isScalar;
exports.prettyToken = prettyToken;
exports.tokenType = tokenType;


/***/ }),

/***/ 361:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var cst = __nccwpck_require__(3461);

/*
START -> stream

stream
  directive -> line-end -> stream
  indent + line-end -> stream
  [else] -> line-start

line-end
  comment -> line-end
  newline -> .
  input-end -> END

line-start
  doc-start -> doc
  doc-end -> stream
  [else] -> indent -> block-start

block-start
  seq-item-start -> block-start
  explicit-key-start -> block-start
  map-value-start -> block-start
  [else] -> doc

doc
  line-end -> line-start
  spaces -> doc
  anchor -> doc
  tag -> doc
  flow-start -> flow -> doc
  flow-end -> error -> doc
  seq-item-start -> error -> doc
  explicit-key-start -> error -> doc
  map-value-start -> doc
  alias -> doc
  quote-start -> quoted-scalar -> doc
  block-scalar-header -> line-end -> block-scalar(min) -> line-start
  [else] -> plain-scalar(false, min) -> doc

flow
  line-end -> flow
  spaces -> flow
  anchor -> flow
  tag -> flow
  flow-start -> flow -> flow
  flow-end -> .
  seq-item-start -> error -> flow
  explicit-key-start -> flow
  map-value-start -> flow
  alias -> flow
  quote-start -> quoted-scalar -> flow
  comma -> flow
  [else] -> plain-scalar(true, 0) -> flow

quoted-scalar
  quote-end -> .
  [else] -> quoted-scalar

block-scalar(min)
  newline + peek(indent < min) -> .
  [else] -> block-scalar(min)

plain-scalar(is-flow, min)
  scalar-end(is-flow) -> .
  peek(newline + (indent < min)) -> .
  [else] -> plain-scalar(min)
*/
function isEmpty(ch) {
    switch (ch) {
        case undefined:
        case ' ':
        case '\n':
        case '\r':
        case '\t':
            return true;
        default:
            return false;
    }
}
const hexDigits = new Set('0123456789ABCDEFabcdef');
const tagChars = new Set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-#;/?:@&=+$_.!~*'()");
const flowIndicatorChars = new Set(',[]{}');
const invalidAnchorChars = new Set(' ,[]{}\n\r\t');
const isNotAnchorChar = (ch) => !ch || invalidAnchorChars.has(ch);
/**
 * Splits an input string into lexical tokens, i.e. smaller strings that are
 * easily identifiable by `tokens.tokenType()`.
 *
 * Lexing starts always in a "stream" context. Incomplete input may be buffered
 * until a complete token can be emitted.
 *
 * In addition to slices of the original input, the following control characters
 * may also be emitted:
 *
 * - `\x02` (Start of Text): A document starts with the next token
 * - `\x18` (Cancel): Unexpected end of flow-mode (indicates an error)
 * - `\x1f` (Unit Separator): Next token is a scalar value
 * - `\u{FEFF}` (Byte order mark): Emitted separately outside documents
 */
class Lexer {
    constructor() {
        /**
         * Flag indicating whether the end of the current buffer marks the end of
         * all input
         */
        this.atEnd = false;
        /**
         * Explicit indent set in block scalar header, as an offset from the current
         * minimum indent, so e.g. set to 1 from a header `|2+`. Set to -1 if not
         * explicitly set.
         */
        this.blockScalarIndent = -1;
        /**
         * Block scalars that include a + (keep) chomping indicator in their header
         * include trailing empty lines, which are otherwise excluded from the
         * scalar's contents.
         */
        this.blockScalarKeep = false;
        /** Current input */
        this.buffer = '';
        /**
         * Flag noting whether the map value indicator : can immediately follow this
         * node within a flow context.
         */
        this.flowKey = false;
        /** Count of surrounding flow collection levels. */
        this.flowLevel = 0;
        /**
         * Minimum level of indentation required for next lines to be parsed as a
         * part of the current scalar value.
         */
        this.indentNext = 0;
        /** Indentation level of the current line. */
        this.indentValue = 0;
        /** Position of the next \n character. */
        this.lineEndPos = null;
        /** Stores the state of the lexer if reaching the end of incpomplete input */
        this.next = null;
        /** A pointer to `buffer`; the current position of the lexer. */
        this.pos = 0;
    }
    /**
     * Generate YAML tokens from the `source` string. If `incomplete`,
     * a part of the last line may be left as a buffer for the next call.
     *
     * @returns A generator of lexical tokens
     */
    *lex(source, incomplete = false) {
        if (source) {
            if (typeof source !== 'string')
                throw TypeError('source is not a string');
            this.buffer = this.buffer ? this.buffer + source : source;
            this.lineEndPos = null;
        }
        this.atEnd = !incomplete;
        let next = this.next ?? 'stream';
        while (next && (incomplete || this.hasChars(1)))
            next = yield* this.parseNext(next);
    }
    atLineEnd() {
        let i = this.pos;
        let ch = this.buffer[i];
        while (ch === ' ' || ch === '\t')
            ch = this.buffer[++i];
        if (!ch || ch === '#' || ch === '\n')
            return true;
        if (ch === '\r')
            return this.buffer[i + 1] === '\n';
        return false;
    }
    charAt(n) {
        return this.buffer[this.pos + n];
    }
    continueScalar(offset) {
        let ch = this.buffer[offset];
        if (this.indentNext > 0) {
            let indent = 0;
            while (ch === ' ')
                ch = this.buffer[++indent + offset];
            if (ch === '\r') {
                const next = this.buffer[indent + offset + 1];
                if (next === '\n' || (!next && !this.atEnd))
                    return offset + indent + 1;
            }
            return ch === '\n' || indent >= this.indentNext || (!ch && !this.atEnd)
                ? offset + indent
                : -1;
        }
        if (ch === '-' || ch === '.') {
            const dt = this.buffer.substr(offset, 3);
            if ((dt === '---' || dt === '...') && isEmpty(this.buffer[offset + 3]))
                return -1;
        }
        return offset;
    }
    getLine() {
        let end = this.lineEndPos;
        if (typeof end !== 'number' || (end !== -1 && end < this.pos)) {
            end = this.buffer.indexOf('\n', this.pos);
            this.lineEndPos = end;
        }
        if (end === -1)
            return this.atEnd ? this.buffer.substring(this.pos) : null;
        if (this.buffer[end - 1] === '\r')
            end -= 1;
        return this.buffer.substring(this.pos, end);
    }
    hasChars(n) {
        return this.pos + n <= this.buffer.length;
    }
    setNext(state) {
        this.buffer = this.buffer.substring(this.pos);
        this.pos = 0;
        this.lineEndPos = null;
        this.next = state;
        return null;
    }
    peek(n) {
        return this.buffer.substr(this.pos, n);
    }
    *parseNext(next) {
        switch (next) {
            case 'stream':
                return yield* this.parseStream();
            case 'line-start':
                return yield* this.parseLineStart();
            case 'block-start':
                return yield* this.parseBlockStart();
            case 'doc':
                return yield* this.parseDocument();
            case 'flow':
                return yield* this.parseFlowCollection();
            case 'quoted-scalar':
                return yield* this.parseQuotedScalar();
            case 'block-scalar':
                return yield* this.parseBlockScalar();
            case 'plain-scalar':
                return yield* this.parsePlainScalar();
        }
    }
    *parseStream() {
        let line = this.getLine();
        if (line === null)
            return this.setNext('stream');
        if (line[0] === cst.BOM) {
            yield* this.pushCount(1);
            line = line.substring(1);
        }
        if (line[0] === '%') {
            let dirEnd = line.length;
            let cs = line.indexOf('#');
            while (cs !== -1) {
                const ch = line[cs - 1];
                if (ch === ' ' || ch === '\t') {
                    dirEnd = cs - 1;
                    break;
                }
                else {
                    cs = line.indexOf('#', cs + 1);
                }
            }
            while (true) {
                const ch = line[dirEnd - 1];
                if (ch === ' ' || ch === '\t')
                    dirEnd -= 1;
                else
                    break;
            }
            const n = (yield* this.pushCount(dirEnd)) + (yield* this.pushSpaces(true));
            yield* this.pushCount(line.length - n); // possible comment
            this.pushNewline();
            return 'stream';
        }
        if (this.atLineEnd()) {
            const sp = yield* this.pushSpaces(true);
            yield* this.pushCount(line.length - sp);
            yield* this.pushNewline();
            return 'stream';
        }
        yield cst.DOCUMENT;
        return yield* this.parseLineStart();
    }
    *parseLineStart() {
        const ch = this.charAt(0);
        if (!ch && !this.atEnd)
            return this.setNext('line-start');
        if (ch === '-' || ch === '.') {
            if (!this.atEnd && !this.hasChars(4))
                return this.setNext('line-start');
            const s = this.peek(3);
            if ((s === '---' || s === '...') && isEmpty(this.charAt(3))) {
                yield* this.pushCount(3);
                this.indentValue = 0;
                this.indentNext = 0;
                return s === '---' ? 'doc' : 'stream';
            }
        }
        this.indentValue = yield* this.pushSpaces(false);
        if (this.indentNext > this.indentValue && !isEmpty(this.charAt(1)))
            this.indentNext = this.indentValue;
        return yield* this.parseBlockStart();
    }
    *parseBlockStart() {
        const [ch0, ch1] = this.peek(2);
        if (!ch1 && !this.atEnd)
            return this.setNext('block-start');
        if ((ch0 === '-' || ch0 === '?' || ch0 === ':') && isEmpty(ch1)) {
            const n = (yield* this.pushCount(1)) + (yield* this.pushSpaces(true));
            this.indentNext = this.indentValue + 1;
            this.indentValue += n;
            return 'block-start';
        }
        return 'doc';
    }
    *parseDocument() {
        yield* this.pushSpaces(true);
        const line = this.getLine();
        if (line === null)
            return this.setNext('doc');
        let n = yield* this.pushIndicators();
        switch (line[n]) {
            case '#':
                yield* this.pushCount(line.length - n);
            // fallthrough
            case undefined:
                yield* this.pushNewline();
                return yield* this.parseLineStart();
            case '{':
            case '[':
                yield* this.pushCount(1);
                this.flowKey = false;
                this.flowLevel = 1;
                return 'flow';
            case '}':
            case ']':
                // this is an error
                yield* this.pushCount(1);
                return 'doc';
            case '*':
                yield* this.pushUntil(isNotAnchorChar);
                return 'doc';
            case '"':
            case "'":
                return yield* this.parseQuotedScalar();
            case '|':
            case '>':
                n += yield* this.parseBlockScalarHeader();
                n += yield* this.pushSpaces(true);
                yield* this.pushCount(line.length - n);
                yield* this.pushNewline();
                return yield* this.parseBlockScalar();
            default:
                return yield* this.parsePlainScalar();
        }
    }
    *parseFlowCollection() {
        let nl, sp;
        let indent = -1;
        do {
            nl = yield* this.pushNewline();
            if (nl > 0) {
                sp = yield* this.pushSpaces(false);
                this.indentValue = indent = sp;
            }
            else {
                sp = 0;
            }
            sp += yield* this.pushSpaces(true);
        } while (nl + sp > 0);
        const line = this.getLine();
        if (line === null)
            return this.setNext('flow');
        if ((indent !== -1 && indent < this.indentNext && line[0] !== '#') ||
            (indent === 0 &&
                (line.startsWith('---') || line.startsWith('...')) &&
                isEmpty(line[3]))) {
            // Allowing for the terminal ] or } at the same (rather than greater)
            // indent level as the initial [ or { is technically invalid, but
            // failing here would be surprising to users.
            const atFlowEndMarker = indent === this.indentNext - 1 &&
                this.flowLevel === 1 &&
                (line[0] === ']' || line[0] === '}');
            if (!atFlowEndMarker) {
                // this is an error
                this.flowLevel = 0;
                yield cst.FLOW_END;
                return yield* this.parseLineStart();
            }
        }
        let n = 0;
        while (line[n] === ',') {
            n += yield* this.pushCount(1);
            n += yield* this.pushSpaces(true);
            this.flowKey = false;
        }
        n += yield* this.pushIndicators();
        switch (line[n]) {
            case undefined:
                return 'flow';
            case '#':
                yield* this.pushCount(line.length - n);
                return 'flow';
            case '{':
            case '[':
                yield* this.pushCount(1);
                this.flowKey = false;
                this.flowLevel += 1;
                return 'flow';
            case '}':
            case ']':
                yield* this.pushCount(1);
                this.flowKey = true;
                this.flowLevel -= 1;
                return this.flowLevel ? 'flow' : 'doc';
            case '*':
                yield* this.pushUntil(isNotAnchorChar);
                return 'flow';
            case '"':
            case "'":
                this.flowKey = true;
                return yield* this.parseQuotedScalar();
            case ':': {
                const next = this.charAt(1);
                if (this.flowKey || isEmpty(next) || next === ',') {
                    this.flowKey = false;
                    yield* this.pushCount(1);
                    yield* this.pushSpaces(true);
                    return 'flow';
                }
            }
            // fallthrough
            default:
                this.flowKey = false;
                return yield* this.parsePlainScalar();
        }
    }
    *parseQuotedScalar() {
        const quote = this.charAt(0);
        let end = this.buffer.indexOf(quote, this.pos + 1);
        if (quote === "'") {
            while (end !== -1 && this.buffer[end + 1] === "'")
                end = this.buffer.indexOf("'", end + 2);
        }
        else {
            // double-quote
            while (end !== -1) {
                let n = 0;
                while (this.buffer[end - 1 - n] === '\\')
                    n += 1;
                if (n % 2 === 0)
                    break;
                end = this.buffer.indexOf('"', end + 1);
            }
        }
        // Only looking for newlines within the quotes
        const qb = this.buffer.substring(0, end);
        let nl = qb.indexOf('\n', this.pos);
        if (nl !== -1) {
            while (nl !== -1) {
                const cs = this.continueScalar(nl + 1);
                if (cs === -1)
                    break;
                nl = qb.indexOf('\n', cs);
            }
            if (nl !== -1) {
                // this is an error caused by an unexpected unindent
                end = nl - (qb[nl - 1] === '\r' ? 2 : 1);
            }
        }
        if (end === -1) {
            if (!this.atEnd)
                return this.setNext('quoted-scalar');
            end = this.buffer.length;
        }
        yield* this.pushToIndex(end + 1, false);
        return this.flowLevel ? 'flow' : 'doc';
    }
    *parseBlockScalarHeader() {
        this.blockScalarIndent = -1;
        this.blockScalarKeep = false;
        let i = this.pos;
        while (true) {
            const ch = this.buffer[++i];
            if (ch === '+')
                this.blockScalarKeep = true;
            else if (ch > '0' && ch <= '9')
                this.blockScalarIndent = Number(ch) - 1;
            else if (ch !== '-')
                break;
        }
        return yield* this.pushUntil(ch => isEmpty(ch) || ch === '#');
    }
    *parseBlockScalar() {
        let nl = this.pos - 1; // may be -1 if this.pos === 0
        let indent = 0;
        let ch;
        loop: for (let i = this.pos; (ch = this.buffer[i]); ++i) {
            switch (ch) {
                case ' ':
                    indent += 1;
                    break;
                case '\n':
                    nl = i;
                    indent = 0;
                    break;
                case '\r': {
                    const next = this.buffer[i + 1];
                    if (!next && !this.atEnd)
                        return this.setNext('block-scalar');
                    if (next === '\n')
                        break;
                } // fallthrough
                default:
                    break loop;
            }
        }
        if (!ch && !this.atEnd)
            return this.setNext('block-scalar');
        if (indent >= this.indentNext) {
            if (this.blockScalarIndent === -1)
                this.indentNext = indent;
            else {
                this.indentNext =
                    this.blockScalarIndent + (this.indentNext === 0 ? 1 : this.indentNext);
            }
            do {
                const cs = this.continueScalar(nl + 1);
                if (cs === -1)
                    break;
                nl = this.buffer.indexOf('\n', cs);
            } while (nl !== -1);
            if (nl === -1) {
                if (!this.atEnd)
                    return this.setNext('block-scalar');
                nl = this.buffer.length;
            }
        }
        // Trailing insufficiently indented tabs are invalid.
        // To catch that during parsing, we include them in the block scalar value.
        let i = nl + 1;
        ch = this.buffer[i];
        while (ch === ' ')
            ch = this.buffer[++i];
        if (ch === '\t') {
            while (ch === '\t' || ch === ' ' || ch === '\r' || ch === '\n')
                ch = this.buffer[++i];
            nl = i - 1;
        }
        else if (!this.blockScalarKeep) {
            do {
                let i = nl - 1;
                let ch = this.buffer[i];
                if (ch === '\r')
                    ch = this.buffer[--i];
                const lastChar = i; // Drop the line if last char not more indented
                while (ch === ' ')
                    ch = this.buffer[--i];
                if (ch === '\n' && i >= this.pos && i + 1 + indent > lastChar)
                    nl = i;
                else
                    break;
            } while (true);
        }
        yield cst.SCALAR;
        yield* this.pushToIndex(nl + 1, true);
        return yield* this.parseLineStart();
    }
    *parsePlainScalar() {
        const inFlow = this.flowLevel > 0;
        let end = this.pos - 1;
        let i = this.pos - 1;
        let ch;
        while ((ch = this.buffer[++i])) {
            if (ch === ':') {
                const next = this.buffer[i + 1];
                if (isEmpty(next) || (inFlow && flowIndicatorChars.has(next)))
                    break;
                end = i;
            }
            else if (isEmpty(ch)) {
                let next = this.buffer[i + 1];
                if (ch === '\r') {
                    if (next === '\n') {
                        i += 1;
                        ch = '\n';
                        next = this.buffer[i + 1];
                    }
                    else
                        end = i;
                }
                if (next === '#' || (inFlow && flowIndicatorChars.has(next)))
                    break;
                if (ch === '\n') {
                    const cs = this.continueScalar(i + 1);
                    if (cs === -1)
                        break;
                    i = Math.max(i, cs - 2); // to advance, but still account for ' #'
                }
            }
            else {
                if (inFlow && flowIndicatorChars.has(ch))
                    break;
                end = i;
            }
        }
        if (!ch && !this.atEnd)
            return this.setNext('plain-scalar');
        yield cst.SCALAR;
        yield* this.pushToIndex(end + 1, true);
        return inFlow ? 'flow' : 'doc';
    }
    *pushCount(n) {
        if (n > 0) {
            yield this.buffer.substr(this.pos, n);
            this.pos += n;
            return n;
        }
        return 0;
    }
    *pushToIndex(i, allowEmpty) {
        const s = this.buffer.slice(this.pos, i);
        if (s) {
            yield s;
            this.pos += s.length;
            return s.length;
        }
        else if (allowEmpty)
            yield '';
        return 0;
    }
    *pushIndicators() {
        let n = 0;
        loop: while (true) {
            switch (this.charAt(0)) {
                case '!':
                    n += yield* this.pushTag();
                    n += yield* this.pushSpaces(true);
                    continue loop;
                case '&':
                    n += yield* this.pushUntil(isNotAnchorChar);
                    n += yield* this.pushSpaces(true);
                    continue loop;
                case '-': // this is an error
                case '?': // this is an error outside flow collections
                case ':': {
                    const inFlow = this.flowLevel > 0;
                    const ch1 = this.charAt(1);
                    if (isEmpty(ch1) || (inFlow && flowIndicatorChars.has(ch1))) {
                        if (!inFlow)
                            this.indentNext = this.indentValue + 1;
                        else if (this.flowKey)
                            this.flowKey = false;
                        n += yield* this.pushCount(1);
                        n += yield* this.pushSpaces(true);
                        continue loop;
                    }
                }
            }
            break loop;
        }
        return n;
    }
    *pushTag() {
        if (this.charAt(1) === '<') {
            let i = this.pos + 2;
            let ch = this.buffer[i];
            while (!isEmpty(ch) && ch !== '>')
                ch = this.buffer[++i];
            return yield* this.pushToIndex(ch === '>' ? i + 1 : i, false);
        }
        else {
            let i = this.pos + 1;
            let ch = this.buffer[i];
            while (ch) {
                if (tagChars.has(ch))
                    ch = this.buffer[++i];
                else if (ch === '%' &&
                    hexDigits.has(this.buffer[i + 1]) &&
                    hexDigits.has(this.buffer[i + 2])) {
                    ch = this.buffer[(i += 3)];
                }
                else
                    break;
            }
            return yield* this.pushToIndex(i, false);
        }
    }
    *pushNewline() {
        const ch = this.buffer[this.pos];
        if (ch === '\n')
            return yield* this.pushCount(1);
        else if (ch === '\r' && this.charAt(1) === '\n')
            return yield* this.pushCount(2);
        else
            return 0;
    }
    *pushSpaces(allowTabs) {
        let i = this.pos - 1;
        let ch;
        do {
            ch = this.buffer[++i];
        } while (ch === ' ' || (allowTabs && ch === '\t'));
        const n = i - this.pos;
        if (n > 0) {
            yield this.buffer.substr(this.pos, n);
            this.pos = i;
        }
        return n;
    }
    *pushUntil(test) {
        let i = this.pos;
        let ch = this.buffer[i];
        while (!test(ch))
            ch = this.buffer[++i];
        return yield* this.pushToIndex(i, false);
    }
}

exports.Lexer = Lexer;


/***/ }),

/***/ 6628:
/***/ ((__unused_webpack_module, exports) => {



/**
 * Tracks newlines during parsing in order to provide an efficient API for
 * determining the one-indexed `{ line, col }` position for any offset
 * within the input.
 */
class LineCounter {
    constructor() {
        this.lineStarts = [];
        /**
         * Should be called in ascending order. Otherwise, call
         * `lineCounter.lineStarts.sort()` before calling `linePos()`.
         */
        this.addNewLine = (offset) => this.lineStarts.push(offset);
        /**
         * Performs a binary search and returns the 1-indexed { line, col }
         * position of `offset`. If `line === 0`, `addNewLine` has never been
         * called or `offset` is before the first known newline.
         */
        this.linePos = (offset) => {
            let low = 0;
            let high = this.lineStarts.length;
            while (low < high) {
                const mid = (low + high) >> 1; // Math.floor((low + high) / 2)
                if (this.lineStarts[mid] < offset)
                    low = mid + 1;
                else
                    high = mid;
            }
            if (this.lineStarts[low] === offset)
                return { line: low + 1, col: 1 };
            if (low === 0)
                return { line: 0, col: offset };
            const start = this.lineStarts[low - 1];
            return { line: low, col: offset - start + 1 };
        };
    }
}

exports.LineCounter = LineCounter;


/***/ }),

/***/ 3456:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var node_process = __nccwpck_require__(932);
var cst = __nccwpck_require__(3461);
var lexer = __nccwpck_require__(361);

function includesToken(list, type) {
    for (let i = 0; i < list.length; ++i)
        if (list[i].type === type)
            return true;
    return false;
}
function findNonEmptyIndex(list) {
    for (let i = 0; i < list.length; ++i) {
        switch (list[i].type) {
            case 'space':
            case 'comment':
            case 'newline':
                break;
            default:
                return i;
        }
    }
    return -1;
}
function isFlowToken(token) {
    switch (token?.type) {
        case 'alias':
        case 'scalar':
        case 'single-quoted-scalar':
        case 'double-quoted-scalar':
        case 'flow-collection':
            return true;
        default:
            return false;
    }
}
function getPrevProps(parent) {
    switch (parent.type) {
        case 'document':
            return parent.start;
        case 'block-map': {
            const it = parent.items[parent.items.length - 1];
            return it.sep ?? it.start;
        }
        case 'block-seq':
            return parent.items[parent.items.length - 1].start;
        /* istanbul ignore next should not happen */
        default:
            return [];
    }
}
/** Note: May modify input array */
function getFirstKeyStartProps(prev) {
    if (prev.length === 0)
        return [];
    let i = prev.length;
    loop: while (--i >= 0) {
        switch (prev[i].type) {
            case 'doc-start':
            case 'explicit-key-ind':
            case 'map-value-ind':
            case 'seq-item-ind':
            case 'newline':
                break loop;
        }
    }
    while (prev[++i]?.type === 'space') {
        /* loop */
    }
    return prev.splice(i, prev.length);
}
function arrayPushArray(target, source) {
    // May exhaust call stack with large `source` array
    if (source.length < 1e5)
        Array.prototype.push.apply(target, source);
    else
        for (let i = 0; i < source.length; ++i)
            target.push(source[i]);
}
function fixFlowSeqItems(fc) {
    if (fc.start.type === 'flow-seq-start') {
        for (const it of fc.items) {
            if (it.sep &&
                !it.value &&
                !includesToken(it.start, 'explicit-key-ind') &&
                !includesToken(it.sep, 'map-value-ind')) {
                if (it.key)
                    it.value = it.key;
                delete it.key;
                if (isFlowToken(it.value)) {
                    if (it.value.end)
                        arrayPushArray(it.value.end, it.sep);
                    else
                        it.value.end = it.sep;
                }
                else
                    arrayPushArray(it.start, it.sep);
                delete it.sep;
            }
        }
    }
}
/**
 * A YAML concrete syntax tree (CST) parser
 *
 * ```ts
 * const src: string = ...
 * for (const token of new Parser().parse(src)) {
 *   // token: Token
 * }
 * ```
 *
 * To use the parser with a user-provided lexer:
 *
 * ```ts
 * function* parse(source: string, lexer: Lexer) {
 *   const parser = new Parser()
 *   for (const lexeme of lexer.lex(source))
 *     yield* parser.next(lexeme)
 *   yield* parser.end()
 * }
 *
 * const src: string = ...
 * const lexer = new Lexer()
 * for (const token of parse(src, lexer)) {
 *   // token: Token
 * }
 * ```
 */
class Parser {
    /**
     * @param onNewLine - If defined, called separately with the start position of
     *   each new line (in `parse()`, including the start of input).
     */
    constructor(onNewLine) {
        /** If true, space and sequence indicators count as indentation */
        this.atNewLine = true;
        /** If true, next token is a scalar value */
        this.atScalar = false;
        /** Current indentation level */
        this.indent = 0;
        /** Current offset since the start of parsing */
        this.offset = 0;
        /** On the same line with a block map key */
        this.onKeyLine = false;
        /** Top indicates the node that's currently being built */
        this.stack = [];
        /** The source of the current token, set in parse() */
        this.source = '';
        /** The type of the current token, set in parse() */
        this.type = '';
        // Must be defined after `next()`
        this.lexer = new lexer.Lexer();
        this.onNewLine = onNewLine;
    }
    /**
     * Parse `source` as a YAML stream.
     * If `incomplete`, a part of the last line may be left as a buffer for the next call.
     *
     * Errors are not thrown, but yielded as `{ type: 'error', message }` tokens.
     *
     * @returns A generator of tokens representing each directive, document, and other structure.
     */
    *parse(source, incomplete = false) {
        if (this.onNewLine && this.offset === 0)
            this.onNewLine(0);
        for (const lexeme of this.lexer.lex(source, incomplete))
            yield* this.next(lexeme);
        if (!incomplete)
            yield* this.end();
    }
    /**
     * Advance the parser by the `source` of one lexical token.
     */
    *next(source) {
        this.source = source;
        if (node_process.env.LOG_TOKENS)
            console.log('|', cst.prettyToken(source));
        if (this.atScalar) {
            this.atScalar = false;
            yield* this.step();
            this.offset += source.length;
            return;
        }
        const type = cst.tokenType(source);
        if (!type) {
            const message = `Not a YAML token: ${source}`;
            yield* this.pop({ type: 'error', offset: this.offset, message, source });
            this.offset += source.length;
        }
        else if (type === 'scalar') {
            this.atNewLine = false;
            this.atScalar = true;
            this.type = 'scalar';
        }
        else {
            this.type = type;
            yield* this.step();
            switch (type) {
                case 'newline':
                    this.atNewLine = true;
                    this.indent = 0;
                    if (this.onNewLine)
                        this.onNewLine(this.offset + source.length);
                    break;
                case 'space':
                    if (this.atNewLine && source[0] === ' ')
                        this.indent += source.length;
                    break;
                case 'explicit-key-ind':
                case 'map-value-ind':
                case 'seq-item-ind':
                    if (this.atNewLine)
                        this.indent += source.length;
                    break;
                case 'doc-mode':
                case 'flow-error-end':
                    return;
                default:
                    this.atNewLine = false;
            }
            this.offset += source.length;
        }
    }
    /** Call at end of input to push out any remaining constructions */
    *end() {
        while (this.stack.length > 0)
            yield* this.pop();
    }
    get sourceToken() {
        const st = {
            type: this.type,
            offset: this.offset,
            indent: this.indent,
            source: this.source
        };
        return st;
    }
    *step() {
        const top = this.peek(1);
        if (this.type === 'doc-end' && top?.type !== 'doc-end') {
            while (this.stack.length > 0)
                yield* this.pop();
            this.stack.push({
                type: 'doc-end',
                offset: this.offset,
                source: this.source
            });
            return;
        }
        if (!top)
            return yield* this.stream();
        switch (top.type) {
            case 'document':
                return yield* this.document(top);
            case 'alias':
            case 'scalar':
            case 'single-quoted-scalar':
            case 'double-quoted-scalar':
                return yield* this.scalar(top);
            case 'block-scalar':
                return yield* this.blockScalar(top);
            case 'block-map':
                return yield* this.blockMap(top);
            case 'block-seq':
                return yield* this.blockSequence(top);
            case 'flow-collection':
                return yield* this.flowCollection(top);
            case 'doc-end':
                return yield* this.documentEnd(top);
        }
        /* istanbul ignore next should not happen */
        yield* this.pop();
    }
    peek(n) {
        return this.stack[this.stack.length - n];
    }
    *pop(error) {
        const token = error ?? this.stack.pop();
        /* istanbul ignore if should not happen */
        if (!token) {
            const message = 'Tried to pop an empty stack';
            yield { type: 'error', offset: this.offset, source: '', message };
        }
        else if (this.stack.length === 0) {
            yield token;
        }
        else {
            const top = this.peek(1);
            if (token.type === 'block-scalar') {
                // Block scalars use their parent rather than header indent
                token.indent = 'indent' in top ? top.indent : 0;
            }
            else if (token.type === 'flow-collection' && top.type === 'document') {
                // Ignore all indent for top-level flow collections
                token.indent = 0;
            }
            if (token.type === 'flow-collection')
                fixFlowSeqItems(token);
            switch (top.type) {
                case 'document':
                    top.value = token;
                    break;
                case 'block-scalar':
                    top.props.push(token); // error
                    break;
                case 'block-map': {
                    const it = top.items[top.items.length - 1];
                    if (it.value) {
                        top.items.push({ start: [], key: token, sep: [] });
                        this.onKeyLine = true;
                        return;
                    }
                    else if (it.sep) {
                        it.value = token;
                    }
                    else {
                        Object.assign(it, { key: token, sep: [] });
                        this.onKeyLine = !it.explicitKey;
                        return;
                    }
                    break;
                }
                case 'block-seq': {
                    const it = top.items[top.items.length - 1];
                    if (it.value)
                        top.items.push({ start: [], value: token });
                    else
                        it.value = token;
                    break;
                }
                case 'flow-collection': {
                    const it = top.items[top.items.length - 1];
                    if (!it || it.value)
                        top.items.push({ start: [], key: token, sep: [] });
                    else if (it.sep)
                        it.value = token;
                    else
                        Object.assign(it, { key: token, sep: [] });
                    return;
                }
                /* istanbul ignore next should not happen */
                default:
                    yield* this.pop();
                    yield* this.pop(token);
            }
            if ((top.type === 'document' ||
                top.type === 'block-map' ||
                top.type === 'block-seq') &&
                (token.type === 'block-map' || token.type === 'block-seq')) {
                const last = token.items[token.items.length - 1];
                if (last &&
                    !last.sep &&
                    !last.value &&
                    last.start.length > 0 &&
                    findNonEmptyIndex(last.start) === -1 &&
                    (token.indent === 0 ||
                        last.start.every(st => st.type !== 'comment' || st.indent < token.indent))) {
                    if (top.type === 'document')
                        top.end = last.start;
                    else
                        top.items.push({ start: last.start });
                    token.items.splice(-1, 1);
                }
            }
        }
    }
    *stream() {
        switch (this.type) {
            case 'directive-line':
                yield { type: 'directive', offset: this.offset, source: this.source };
                return;
            case 'byte-order-mark':
            case 'space':
            case 'comment':
            case 'newline':
                yield this.sourceToken;
                return;
            case 'doc-mode':
            case 'doc-start': {
                const doc = {
                    type: 'document',
                    offset: this.offset,
                    start: []
                };
                if (this.type === 'doc-start')
                    doc.start.push(this.sourceToken);
                this.stack.push(doc);
                return;
            }
        }
        yield {
            type: 'error',
            offset: this.offset,
            message: `Unexpected ${this.type} token in YAML stream`,
            source: this.source
        };
    }
    *document(doc) {
        if (doc.value)
            return yield* this.lineEnd(doc);
        switch (this.type) {
            case 'doc-start': {
                if (findNonEmptyIndex(doc.start) !== -1) {
                    yield* this.pop();
                    yield* this.step();
                }
                else
                    doc.start.push(this.sourceToken);
                return;
            }
            case 'anchor':
            case 'tag':
            case 'space':
            case 'comment':
            case 'newline':
                doc.start.push(this.sourceToken);
                return;
        }
        const bv = this.startBlockValue(doc);
        if (bv)
            this.stack.push(bv);
        else {
            yield {
                type: 'error',
                offset: this.offset,
                message: `Unexpected ${this.type} token in YAML document`,
                source: this.source
            };
        }
    }
    *scalar(scalar) {
        if (this.type === 'map-value-ind') {
            const prev = getPrevProps(this.peek(2));
            const start = getFirstKeyStartProps(prev);
            let sep;
            if (scalar.end) {
                sep = scalar.end;
                sep.push(this.sourceToken);
                delete scalar.end;
            }
            else
                sep = [this.sourceToken];
            const map = {
                type: 'block-map',
                offset: scalar.offset,
                indent: scalar.indent,
                items: [{ start, key: scalar, sep }]
            };
            this.onKeyLine = true;
            this.stack[this.stack.length - 1] = map;
        }
        else
            yield* this.lineEnd(scalar);
    }
    *blockScalar(scalar) {
        switch (this.type) {
            case 'space':
            case 'comment':
            case 'newline':
                scalar.props.push(this.sourceToken);
                return;
            case 'scalar':
                scalar.source = this.source;
                // block-scalar source includes trailing newline
                this.atNewLine = true;
                this.indent = 0;
                if (this.onNewLine) {
                    let nl = this.source.indexOf('\n') + 1;
                    while (nl !== 0) {
                        this.onNewLine(this.offset + nl);
                        nl = this.source.indexOf('\n', nl) + 1;
                    }
                }
                yield* this.pop();
                break;
            /* istanbul ignore next should not happen */
            default:
                yield* this.pop();
                yield* this.step();
        }
    }
    *blockMap(map) {
        const it = map.items[map.items.length - 1];
        // it.sep is true-ish if pair already has key or : separator
        switch (this.type) {
            case 'newline':
                this.onKeyLine = false;
                if (it.value) {
                    const end = 'end' in it.value ? it.value.end : undefined;
                    const last = Array.isArray(end) ? end[end.length - 1] : undefined;
                    if (last?.type === 'comment')
                        end?.push(this.sourceToken);
                    else
                        map.items.push({ start: [this.sourceToken] });
                }
                else if (it.sep) {
                    it.sep.push(this.sourceToken);
                }
                else {
                    it.start.push(this.sourceToken);
                }
                return;
            case 'space':
            case 'comment':
                if (it.value) {
                    map.items.push({ start: [this.sourceToken] });
                }
                else if (it.sep) {
                    it.sep.push(this.sourceToken);
                }
                else {
                    if (this.atIndentedComment(it.start, map.indent)) {
                        const prev = map.items[map.items.length - 2];
                        const end = prev?.value?.end;
                        if (Array.isArray(end)) {
                            arrayPushArray(end, it.start);
                            end.push(this.sourceToken);
                            map.items.pop();
                            return;
                        }
                    }
                    it.start.push(this.sourceToken);
                }
                return;
        }
        if (this.indent >= map.indent) {
            const atMapIndent = !this.onKeyLine && this.indent === map.indent;
            const atNextItem = atMapIndent &&
                (it.sep || it.explicitKey) &&
                this.type !== 'seq-item-ind';
            // For empty nodes, assign newline-separated not indented empty tokens to following node
            let start = [];
            if (atNextItem && it.sep && !it.value) {
                const nl = [];
                for (let i = 0; i < it.sep.length; ++i) {
                    const st = it.sep[i];
                    switch (st.type) {
                        case 'newline':
                            nl.push(i);
                            break;
                        case 'space':
                            break;
                        case 'comment':
                            if (st.indent > map.indent)
                                nl.length = 0;
                            break;
                        default:
                            nl.length = 0;
                    }
                }
                if (nl.length >= 2)
                    start = it.sep.splice(nl[1]);
            }
            switch (this.type) {
                case 'anchor':
                case 'tag':
                    if (atNextItem || it.value) {
                        start.push(this.sourceToken);
                        map.items.push({ start });
                        this.onKeyLine = true;
                    }
                    else if (it.sep) {
                        it.sep.push(this.sourceToken);
                    }
                    else {
                        it.start.push(this.sourceToken);
                    }
                    return;
                case 'explicit-key-ind':
                    if (!it.sep && !it.explicitKey) {
                        it.start.push(this.sourceToken);
                        it.explicitKey = true;
                    }
                    else if (atNextItem || it.value) {
                        start.push(this.sourceToken);
                        map.items.push({ start, explicitKey: true });
                    }
                    else {
                        this.stack.push({
                            type: 'block-map',
                            offset: this.offset,
                            indent: this.indent,
                            items: [{ start: [this.sourceToken], explicitKey: true }]
                        });
                    }
                    this.onKeyLine = true;
                    return;
                case 'map-value-ind':
                    if (it.explicitKey) {
                        if (!it.sep) {
                            if (includesToken(it.start, 'newline')) {
                                Object.assign(it, { key: null, sep: [this.sourceToken] });
                            }
                            else {
                                const start = getFirstKeyStartProps(it.start);
                                this.stack.push({
                                    type: 'block-map',
                                    offset: this.offset,
                                    indent: this.indent,
                                    items: [{ start, key: null, sep: [this.sourceToken] }]
                                });
                            }
                        }
                        else if (it.value) {
                            map.items.push({ start: [], key: null, sep: [this.sourceToken] });
                        }
                        else if (includesToken(it.sep, 'map-value-ind')) {
                            this.stack.push({
                                type: 'block-map',
                                offset: this.offset,
                                indent: this.indent,
                                items: [{ start, key: null, sep: [this.sourceToken] }]
                            });
                        }
                        else if (isFlowToken(it.key) &&
                            !includesToken(it.sep, 'newline')) {
                            const start = getFirstKeyStartProps(it.start);
                            const key = it.key;
                            const sep = it.sep;
                            sep.push(this.sourceToken);
                            // @ts-expect-error type guard is wrong here
                            delete it.key;
                            // @ts-expect-error type guard is wrong here
                            delete it.sep;
                            this.stack.push({
                                type: 'block-map',
                                offset: this.offset,
                                indent: this.indent,
                                items: [{ start, key, sep }]
                            });
                        }
                        else if (start.length > 0) {
                            // Not actually at next item
                            it.sep = it.sep.concat(start, this.sourceToken);
                        }
                        else {
                            it.sep.push(this.sourceToken);
                        }
                    }
                    else {
                        if (!it.sep) {
                            Object.assign(it, { key: null, sep: [this.sourceToken] });
                        }
                        else if (it.value || atNextItem) {
                            map.items.push({ start, key: null, sep: [this.sourceToken] });
                        }
                        else if (includesToken(it.sep, 'map-value-ind')) {
                            this.stack.push({
                                type: 'block-map',
                                offset: this.offset,
                                indent: this.indent,
                                items: [{ start: [], key: null, sep: [this.sourceToken] }]
                            });
                        }
                        else {
                            it.sep.push(this.sourceToken);
                        }
                    }
                    this.onKeyLine = true;
                    return;
                case 'alias':
                case 'scalar':
                case 'single-quoted-scalar':
                case 'double-quoted-scalar': {
                    const fs = this.flowScalar(this.type);
                    if (atNextItem || it.value) {
                        map.items.push({ start, key: fs, sep: [] });
                        this.onKeyLine = true;
                    }
                    else if (it.sep) {
                        this.stack.push(fs);
                    }
                    else {
                        Object.assign(it, { key: fs, sep: [] });
                        this.onKeyLine = true;
                    }
                    return;
                }
                default: {
                    const bv = this.startBlockValue(map);
                    if (bv) {
                        if (bv.type === 'block-seq') {
                            if (!it.explicitKey &&
                                it.sep &&
                                !includesToken(it.sep, 'newline')) {
                                yield* this.pop({
                                    type: 'error',
                                    offset: this.offset,
                                    message: 'Unexpected block-seq-ind on same line with key',
                                    source: this.source
                                });
                                return;
                            }
                        }
                        else if (atMapIndent) {
                            map.items.push({ start });
                        }
                        this.stack.push(bv);
                        return;
                    }
                }
            }
        }
        yield* this.pop();
        yield* this.step();
    }
    *blockSequence(seq) {
        const it = seq.items[seq.items.length - 1];
        switch (this.type) {
            case 'newline':
                if (it.value) {
                    const end = 'end' in it.value ? it.value.end : undefined;
                    const last = Array.isArray(end) ? end[end.length - 1] : undefined;
                    if (last?.type === 'comment')
                        end?.push(this.sourceToken);
                    else
                        seq.items.push({ start: [this.sourceToken] });
                }
                else
                    it.start.push(this.sourceToken);
                return;
            case 'space':
            case 'comment':
                if (it.value)
                    seq.items.push({ start: [this.sourceToken] });
                else {
                    if (this.atIndentedComment(it.start, seq.indent)) {
                        const prev = seq.items[seq.items.length - 2];
                        const end = prev?.value?.end;
                        if (Array.isArray(end)) {
                            arrayPushArray(end, it.start);
                            end.push(this.sourceToken);
                            seq.items.pop();
                            return;
                        }
                    }
                    it.start.push(this.sourceToken);
                }
                return;
            case 'anchor':
            case 'tag':
                if (it.value || this.indent <= seq.indent)
                    break;
                it.start.push(this.sourceToken);
                return;
            case 'seq-item-ind':
                if (this.indent !== seq.indent)
                    break;
                if (it.value || includesToken(it.start, 'seq-item-ind'))
                    seq.items.push({ start: [this.sourceToken] });
                else
                    it.start.push(this.sourceToken);
                return;
        }
        if (this.indent > seq.indent) {
            const bv = this.startBlockValue(seq);
            if (bv) {
                this.stack.push(bv);
                return;
            }
        }
        yield* this.pop();
        yield* this.step();
    }
    *flowCollection(fc) {
        const it = fc.items[fc.items.length - 1];
        if (this.type === 'flow-error-end') {
            let top;
            do {
                yield* this.pop();
                top = this.peek(1);
            } while (top?.type === 'flow-collection');
        }
        else if (fc.end.length === 0) {
            switch (this.type) {
                case 'comma':
                case 'explicit-key-ind':
                    if (!it || it.sep)
                        fc.items.push({ start: [this.sourceToken] });
                    else
                        it.start.push(this.sourceToken);
                    return;
                case 'map-value-ind':
                    if (!it || it.value)
                        fc.items.push({ start: [], key: null, sep: [this.sourceToken] });
                    else if (it.sep)
                        it.sep.push(this.sourceToken);
                    else
                        Object.assign(it, { key: null, sep: [this.sourceToken] });
                    return;
                case 'space':
                case 'comment':
                case 'newline':
                case 'anchor':
                case 'tag':
                    if (!it || it.value)
                        fc.items.push({ start: [this.sourceToken] });
                    else if (it.sep)
                        it.sep.push(this.sourceToken);
                    else
                        it.start.push(this.sourceToken);
                    return;
                case 'alias':
                case 'scalar':
                case 'single-quoted-scalar':
                case 'double-quoted-scalar': {
                    const fs = this.flowScalar(this.type);
                    if (!it || it.value)
                        fc.items.push({ start: [], key: fs, sep: [] });
                    else if (it.sep)
                        this.stack.push(fs);
                    else
                        Object.assign(it, { key: fs, sep: [] });
                    return;
                }
                case 'flow-map-end':
                case 'flow-seq-end':
                    fc.end.push(this.sourceToken);
                    return;
            }
            const bv = this.startBlockValue(fc);
            /* istanbul ignore else should not happen */
            if (bv)
                this.stack.push(bv);
            else {
                yield* this.pop();
                yield* this.step();
            }
        }
        else {
            const parent = this.peek(2);
            if (parent.type === 'block-map' &&
                ((this.type === 'map-value-ind' && parent.indent === fc.indent) ||
                    (this.type === 'newline' &&
                        !parent.items[parent.items.length - 1].sep))) {
                yield* this.pop();
                yield* this.step();
            }
            else if (this.type === 'map-value-ind' &&
                parent.type !== 'flow-collection') {
                const prev = getPrevProps(parent);
                const start = getFirstKeyStartProps(prev);
                fixFlowSeqItems(fc);
                const sep = fc.end.splice(1, fc.end.length);
                sep.push(this.sourceToken);
                const map = {
                    type: 'block-map',
                    offset: fc.offset,
                    indent: fc.indent,
                    items: [{ start, key: fc, sep }]
                };
                this.onKeyLine = true;
                this.stack[this.stack.length - 1] = map;
            }
            else {
                yield* this.lineEnd(fc);
            }
        }
    }
    flowScalar(type) {
        if (this.onNewLine) {
            let nl = this.source.indexOf('\n') + 1;
            while (nl !== 0) {
                this.onNewLine(this.offset + nl);
                nl = this.source.indexOf('\n', nl) + 1;
            }
        }
        return {
            type,
            offset: this.offset,
            indent: this.indent,
            source: this.source
        };
    }
    startBlockValue(parent) {
        switch (this.type) {
            case 'alias':
            case 'scalar':
            case 'single-quoted-scalar':
            case 'double-quoted-scalar':
                return this.flowScalar(this.type);
            case 'block-scalar-header':
                return {
                    type: 'block-scalar',
                    offset: this.offset,
                    indent: this.indent,
                    props: [this.sourceToken],
                    source: ''
                };
            case 'flow-map-start':
            case 'flow-seq-start':
                return {
                    type: 'flow-collection',
                    offset: this.offset,
                    indent: this.indent,
                    start: this.sourceToken,
                    items: [],
                    end: []
                };
            case 'seq-item-ind':
                return {
                    type: 'block-seq',
                    offset: this.offset,
                    indent: this.indent,
                    items: [{ start: [this.sourceToken] }]
                };
            case 'explicit-key-ind': {
                this.onKeyLine = true;
                const prev = getPrevProps(parent);
                const start = getFirstKeyStartProps(prev);
                start.push(this.sourceToken);
                return {
                    type: 'block-map',
                    offset: this.offset,
                    indent: this.indent,
                    items: [{ start, explicitKey: true }]
                };
            }
            case 'map-value-ind': {
                this.onKeyLine = true;
                const prev = getPrevProps(parent);
                const start = getFirstKeyStartProps(prev);
                return {
                    type: 'block-map',
                    offset: this.offset,
                    indent: this.indent,
                    items: [{ start, key: null, sep: [this.sourceToken] }]
                };
            }
        }
        return null;
    }
    atIndentedComment(start, indent) {
        if (this.type !== 'comment')
            return false;
        if (this.indent <= indent)
            return false;
        return start.every(st => st.type === 'newline' || st.type === 'space');
    }
    *documentEnd(docEnd) {
        if (this.type !== 'doc-mode') {
            if (docEnd.end)
                docEnd.end.push(this.sourceToken);
            else
                docEnd.end = [this.sourceToken];
            if (this.type === 'newline')
                yield* this.pop();
        }
    }
    *lineEnd(token) {
        switch (this.type) {
            case 'comma':
            case 'doc-start':
            case 'doc-end':
            case 'flow-seq-end':
            case 'flow-map-end':
            case 'map-value-ind':
                yield* this.pop();
                yield* this.step();
                break;
            case 'newline':
                this.onKeyLine = false;
            // fallthrough
            case 'space':
            case 'comment':
            default:
                // all other values are errors
                if (token.end)
                    token.end.push(this.sourceToken);
                else
                    token.end = [this.sourceToken];
                if (this.type === 'newline')
                    yield* this.pop();
        }
    }
}

exports.Parser = Parser;


/***/ }),

/***/ 4047:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var composer = __nccwpck_require__(9984);
var Document = __nccwpck_require__(3021);
var errors = __nccwpck_require__(1464);
var log = __nccwpck_require__(7249);
var identity = __nccwpck_require__(1127);
var lineCounter = __nccwpck_require__(6628);
var parser = __nccwpck_require__(3456);

function parseOptions(options) {
    const prettyErrors = options.prettyErrors !== false;
    const lineCounter$1 = options.lineCounter || (prettyErrors && new lineCounter.LineCounter()) || null;
    return { lineCounter: lineCounter$1, prettyErrors };
}
/**
 * Parse the input as a stream of YAML documents.
 *
 * Documents should be separated from each other by `...` or `---` marker lines.
 *
 * @returns If an empty `docs` array is returned, it will be of type
 *   EmptyStream and contain additional stream information. In
 *   TypeScript, you should use `'empty' in docs` as a type guard for it.
 */
function parseAllDocuments(source, options = {}) {
    const { lineCounter, prettyErrors } = parseOptions(options);
    const parser$1 = new parser.Parser(lineCounter?.addNewLine);
    const composer$1 = new composer.Composer(options);
    const docs = Array.from(composer$1.compose(parser$1.parse(source)));
    if (prettyErrors && lineCounter)
        for (const doc of docs) {
            doc.errors.forEach(errors.prettifyError(source, lineCounter));
            doc.warnings.forEach(errors.prettifyError(source, lineCounter));
        }
    if (docs.length > 0)
        return docs;
    return Object.assign([], { empty: true }, composer$1.streamInfo());
}
/** Parse an input string into a single YAML.Document */
function parseDocument(source, options = {}) {
    const { lineCounter, prettyErrors } = parseOptions(options);
    const parser$1 = new parser.Parser(lineCounter?.addNewLine);
    const composer$1 = new composer.Composer(options);
    // `doc` is always set by compose.end(true) at the very latest
    let doc = null;
    for (const _doc of composer$1.compose(parser$1.parse(source), true, source.length)) {
        if (!doc)
            doc = _doc;
        else if (doc.options.logLevel !== 'silent') {
            doc.errors.push(new errors.YAMLParseError(_doc.range.slice(0, 2), 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
            break;
        }
    }
    if (prettyErrors && lineCounter) {
        doc.errors.forEach(errors.prettifyError(source, lineCounter));
        doc.warnings.forEach(errors.prettifyError(source, lineCounter));
    }
    return doc;
}
function parse(src, reviver, options) {
    let _reviver = undefined;
    if (typeof reviver === 'function') {
        _reviver = reviver;
    }
    else if (options === undefined && reviver && typeof reviver === 'object') {
        options = reviver;
    }
    const doc = parseDocument(src, options);
    if (!doc)
        return null;
    doc.warnings.forEach(warning => log.warn(doc.options.logLevel, warning));
    if (doc.errors.length > 0) {
        if (doc.options.logLevel !== 'silent')
            throw doc.errors[0];
        else
            doc.errors = [];
    }
    return doc.toJS(Object.assign({ reviver: _reviver }, options));
}
function stringify(value, replacer, options) {
    let _replacer = null;
    if (typeof replacer === 'function' || Array.isArray(replacer)) {
        _replacer = replacer;
    }
    else if (options === undefined && replacer) {
        options = replacer;
    }
    if (typeof options === 'string')
        options = options.length;
    if (typeof options === 'number') {
        const indent = Math.round(options);
        options = indent < 1 ? undefined : indent > 8 ? { indent: 8 } : { indent };
    }
    if (value === undefined) {
        const { keepUndefined } = options ?? replacer ?? {};
        if (!keepUndefined)
            return undefined;
    }
    if (identity.isDocument(value) && !_replacer)
        return value.toString(options);
    return new Document.Document(value, _replacer, options).toString(options);
}

exports.parse = parse;
exports.parseAllDocuments = parseAllDocuments;
exports.parseDocument = parseDocument;
exports.stringify = stringify;


/***/ }),

/***/ 5840:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var map = __nccwpck_require__(7451);
var seq = __nccwpck_require__(1706);
var string = __nccwpck_require__(6464);
var tags = __nccwpck_require__(18);

const sortMapEntriesByKey = (a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
class Schema {
    constructor({ compat, customTags, merge, resolveKnownTags, schema, sortMapEntries, toStringDefaults }) {
        this.compat = Array.isArray(compat)
            ? tags.getTags(compat, 'compat')
            : compat
                ? tags.getTags(null, compat)
                : null;
        this.name = (typeof schema === 'string' && schema) || 'core';
        this.knownTags = resolveKnownTags ? tags.coreKnownTags : {};
        this.tags = tags.getTags(customTags, this.name, merge);
        this.toStringOptions = toStringDefaults ?? null;
        Object.defineProperty(this, identity.MAP, { value: map.map });
        Object.defineProperty(this, identity.SCALAR, { value: string.string });
        Object.defineProperty(this, identity.SEQ, { value: seq.seq });
        // Used by createMap()
        this.sortMapEntries =
            typeof sortMapEntries === 'function'
                ? sortMapEntries
                : sortMapEntries === true
                    ? sortMapEntriesByKey
                    : null;
    }
    clone() {
        const copy = Object.create(Schema.prototype, Object.getOwnPropertyDescriptors(this));
        copy.tags = this.tags.slice();
        return copy;
    }
}

exports.Schema = Schema;


/***/ }),

/***/ 7451:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var YAMLMap = __nccwpck_require__(4454);

const map = {
    collection: 'map',
    default: true,
    nodeClass: YAMLMap.YAMLMap,
    tag: 'tag:yaml.org,2002:map',
    resolve(map, onError) {
        if (!identity.isMap(map))
            onError('Expected a mapping for this tag');
        return map;
    },
    createNode: (schema, obj, ctx) => YAMLMap.YAMLMap.from(schema, obj, ctx)
};

exports.map = map;


/***/ }),

/***/ 3632:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);

const nullTag = {
    identify: value => value == null,
    createNode: () => new Scalar.Scalar(null),
    default: true,
    tag: 'tag:yaml.org,2002:null',
    test: /^(?:~|[Nn]ull|NULL)?$/,
    resolve: () => new Scalar.Scalar(null),
    stringify: ({ source }, ctx) => typeof source === 'string' && nullTag.test.test(source)
        ? source
        : ctx.options.nullStr
};

exports.nullTag = nullTag;


/***/ }),

/***/ 1706:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var YAMLSeq = __nccwpck_require__(2223);

const seq = {
    collection: 'seq',
    default: true,
    nodeClass: YAMLSeq.YAMLSeq,
    tag: 'tag:yaml.org,2002:seq',
    resolve(seq, onError) {
        if (!identity.isSeq(seq))
            onError('Expected a sequence for this tag');
        return seq;
    },
    createNode: (schema, obj, ctx) => YAMLSeq.YAMLSeq.from(schema, obj, ctx)
};

exports.seq = seq;


/***/ }),

/***/ 6464:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var stringifyString = __nccwpck_require__(3069);

const string = {
    identify: value => typeof value === 'string',
    default: true,
    tag: 'tag:yaml.org,2002:str',
    resolve: str => str,
    stringify(item, ctx, onComment, onChompKeep) {
        ctx = Object.assign({ actualString: true }, ctx);
        return stringifyString.stringifyString(item, ctx, onComment, onChompKeep);
    }
};

exports.string = string;


/***/ }),

/***/ 3959:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);

const boolTag = {
    identify: value => typeof value === 'boolean',
    default: true,
    tag: 'tag:yaml.org,2002:bool',
    test: /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/,
    resolve: str => new Scalar.Scalar(str[0] === 't' || str[0] === 'T'),
    stringify({ source, value }, ctx) {
        if (source && boolTag.test.test(source)) {
            const sv = source[0] === 't' || source[0] === 'T';
            if (value === sv)
                return source;
        }
        return value ? ctx.options.trueStr : ctx.options.falseStr;
    }
};

exports.boolTag = boolTag;


/***/ }),

/***/ 8405:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);
var stringifyNumber = __nccwpck_require__(8689);

const floatNaN = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    test: /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
    resolve: str => str.slice(-3).toLowerCase() === 'nan'
        ? NaN
        : str[0] === '-'
            ? Number.NEGATIVE_INFINITY
            : Number.POSITIVE_INFINITY,
    stringify: stringifyNumber.stringifyNumber
};
const floatExp = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    format: 'EXP',
    test: /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
    resolve: str => parseFloat(str),
    stringify(node) {
        const num = Number(node.value);
        return isFinite(num) ? num.toExponential() : stringifyNumber.stringifyNumber(node);
    }
};
const float = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    test: /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/,
    resolve(str) {
        const node = new Scalar.Scalar(parseFloat(str));
        const dot = str.indexOf('.');
        if (dot !== -1 && str[str.length - 1] === '0')
            node.minFractionDigits = str.length - dot - 1;
        return node;
    },
    stringify: stringifyNumber.stringifyNumber
};

exports.float = float;
exports.floatExp = floatExp;
exports.floatNaN = floatNaN;


/***/ }),

/***/ 9874:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var stringifyNumber = __nccwpck_require__(8689);

const intIdentify = (value) => typeof value === 'bigint' || Number.isInteger(value);
const intResolve = (str, offset, radix, { intAsBigInt }) => (intAsBigInt ? BigInt(str) : parseInt(str.substring(offset), radix));
function intStringify(node, radix, prefix) {
    const { value } = node;
    if (intIdentify(value) && value >= 0)
        return prefix + value.toString(radix);
    return stringifyNumber.stringifyNumber(node);
}
const intOct = {
    identify: value => intIdentify(value) && value >= 0,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'OCT',
    test: /^0o[0-7]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 2, 8, opt),
    stringify: node => intStringify(node, 8, '0o')
};
const int = {
    identify: intIdentify,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    test: /^[-+]?[0-9]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 0, 10, opt),
    stringify: stringifyNumber.stringifyNumber
};
const intHex = {
    identify: value => intIdentify(value) && value >= 0,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'HEX',
    test: /^0x[0-9a-fA-F]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 2, 16, opt),
    stringify: node => intStringify(node, 16, '0x')
};

exports.int = int;
exports.intHex = intHex;
exports.intOct = intOct;


/***/ }),

/***/ 896:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var map = __nccwpck_require__(7451);
var _null = __nccwpck_require__(3632);
var seq = __nccwpck_require__(1706);
var string = __nccwpck_require__(6464);
var bool = __nccwpck_require__(3959);
var float = __nccwpck_require__(8405);
var int = __nccwpck_require__(9874);

const schema = [
    map.map,
    seq.seq,
    string.string,
    _null.nullTag,
    bool.boolTag,
    int.intOct,
    int.int,
    int.intHex,
    float.floatNaN,
    float.floatExp,
    float.float
];

exports.schema = schema;


/***/ }),

/***/ 3559:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);
var map = __nccwpck_require__(7451);
var seq = __nccwpck_require__(1706);

function intIdentify(value) {
    return typeof value === 'bigint' || Number.isInteger(value);
}
const stringifyJSON = ({ value }) => JSON.stringify(value);
const jsonScalars = [
    {
        identify: value => typeof value === 'string',
        default: true,
        tag: 'tag:yaml.org,2002:str',
        resolve: str => str,
        stringify: stringifyJSON
    },
    {
        identify: value => value == null,
        createNode: () => new Scalar.Scalar(null),
        default: true,
        tag: 'tag:yaml.org,2002:null',
        test: /^null$/,
        resolve: () => null,
        stringify: stringifyJSON
    },
    {
        identify: value => typeof value === 'boolean',
        default: true,
        tag: 'tag:yaml.org,2002:bool',
        test: /^true$|^false$/,
        resolve: str => str === 'true',
        stringify: stringifyJSON
    },
    {
        identify: intIdentify,
        default: true,
        tag: 'tag:yaml.org,2002:int',
        test: /^-?(?:0|[1-9][0-9]*)$/,
        resolve: (str, _onError, { intAsBigInt }) => intAsBigInt ? BigInt(str) : parseInt(str, 10),
        stringify: ({ value }) => intIdentify(value) ? value.toString() : JSON.stringify(value)
    },
    {
        identify: value => typeof value === 'number',
        default: true,
        tag: 'tag:yaml.org,2002:float',
        test: /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?$/,
        resolve: str => parseFloat(str),
        stringify: stringifyJSON
    }
];
const jsonError = {
    default: true,
    tag: '',
    test: /^/,
    resolve(str, onError) {
        onError(`Unresolved plain scalar ${JSON.stringify(str)}`);
        return str;
    }
};
const schema = [map.map, seq.seq].concat(jsonScalars, jsonError);

exports.schema = schema;


/***/ }),

/***/ 18:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var map = __nccwpck_require__(7451);
var _null = __nccwpck_require__(3632);
var seq = __nccwpck_require__(1706);
var string = __nccwpck_require__(6464);
var bool = __nccwpck_require__(3959);
var float = __nccwpck_require__(8405);
var int = __nccwpck_require__(9874);
var schema = __nccwpck_require__(896);
var schema$1 = __nccwpck_require__(3559);
var binary = __nccwpck_require__(6083);
var merge = __nccwpck_require__(452);
var omap = __nccwpck_require__(303);
var pairs = __nccwpck_require__(8385);
var schema$2 = __nccwpck_require__(5913);
var set = __nccwpck_require__(1528);
var timestamp = __nccwpck_require__(6752);

const schemas = new Map([
    ['core', schema.schema],
    ['failsafe', [map.map, seq.seq, string.string]],
    ['json', schema$1.schema],
    ['yaml11', schema$2.schema],
    ['yaml-1.1', schema$2.schema]
]);
const tagsByName = {
    binary: binary.binary,
    bool: bool.boolTag,
    float: float.float,
    floatExp: float.floatExp,
    floatNaN: float.floatNaN,
    floatTime: timestamp.floatTime,
    int: int.int,
    intHex: int.intHex,
    intOct: int.intOct,
    intTime: timestamp.intTime,
    map: map.map,
    merge: merge.merge,
    null: _null.nullTag,
    omap: omap.omap,
    pairs: pairs.pairs,
    seq: seq.seq,
    set: set.set,
    timestamp: timestamp.timestamp
};
const coreKnownTags = {
    'tag:yaml.org,2002:binary': binary.binary,
    'tag:yaml.org,2002:merge': merge.merge,
    'tag:yaml.org,2002:omap': omap.omap,
    'tag:yaml.org,2002:pairs': pairs.pairs,
    'tag:yaml.org,2002:set': set.set,
    'tag:yaml.org,2002:timestamp': timestamp.timestamp
};
function getTags(customTags, schemaName, addMergeTag) {
    const schemaTags = schemas.get(schemaName);
    if (schemaTags && !customTags) {
        return addMergeTag && !schemaTags.includes(merge.merge)
            ? schemaTags.concat(merge.merge)
            : schemaTags.slice();
    }
    let tags = schemaTags;
    if (!tags) {
        if (Array.isArray(customTags))
            tags = [];
        else {
            const keys = Array.from(schemas.keys())
                .filter(key => key !== 'yaml11')
                .map(key => JSON.stringify(key))
                .join(', ');
            throw new Error(`Unknown schema "${schemaName}"; use one of ${keys} or define customTags array`);
        }
    }
    if (Array.isArray(customTags)) {
        for (const tag of customTags)
            tags = tags.concat(tag);
    }
    else if (typeof customTags === 'function') {
        tags = customTags(tags.slice());
    }
    if (addMergeTag)
        tags = tags.concat(merge.merge);
    return tags.reduce((tags, tag) => {
        const tagObj = typeof tag === 'string' ? tagsByName[tag] : tag;
        if (!tagObj) {
            const tagName = JSON.stringify(tag);
            const keys = Object.keys(tagsByName)
                .map(key => JSON.stringify(key))
                .join(', ');
            throw new Error(`Unknown custom tag ${tagName}; use one of ${keys}`);
        }
        if (!tags.includes(tagObj))
            tags.push(tagObj);
        return tags;
    }, []);
}

exports.coreKnownTags = coreKnownTags;
exports.getTags = getTags;


/***/ }),

/***/ 6083:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var node_buffer = __nccwpck_require__(181);
var Scalar = __nccwpck_require__(3301);
var stringifyString = __nccwpck_require__(3069);

const binary = {
    identify: value => value instanceof Uint8Array, // Buffer inherits from Uint8Array
    default: false,
    tag: 'tag:yaml.org,2002:binary',
    /**
     * Returns a Buffer in node and an Uint8Array in browsers
     *
     * To use the resulting buffer as an image, you'll want to do something like:
     *
     *   const blob = new Blob([buffer], { type: 'image/jpeg' })
     *   document.querySelector('#photo').src = URL.createObjectURL(blob)
     */
    resolve(src, onError) {
        if (typeof node_buffer.Buffer === 'function') {
            return node_buffer.Buffer.from(src, 'base64');
        }
        else if (typeof atob === 'function') {
            // On IE 11, atob() can't handle newlines
            const str = atob(src.replace(/[\n\r]/g, ''));
            const buffer = new Uint8Array(str.length);
            for (let i = 0; i < str.length; ++i)
                buffer[i] = str.charCodeAt(i);
            return buffer;
        }
        else {
            onError('This environment does not support reading binary tags; either Buffer or atob is required');
            return src;
        }
    },
    stringify({ comment, type, value }, ctx, onComment, onChompKeep) {
        if (!value)
            return '';
        const buf = value; // checked earlier by binary.identify()
        let str;
        if (typeof node_buffer.Buffer === 'function') {
            str =
                buf instanceof node_buffer.Buffer
                    ? buf.toString('base64')
                    : node_buffer.Buffer.from(buf.buffer).toString('base64');
        }
        else if (typeof btoa === 'function') {
            let s = '';
            for (let i = 0; i < buf.length; ++i)
                s += String.fromCharCode(buf[i]);
            str = btoa(s);
        }
        else {
            throw new Error('This environment does not support writing binary tags; either Buffer or btoa is required');
        }
        type ?? (type = Scalar.Scalar.BLOCK_LITERAL);
        if (type !== Scalar.Scalar.QUOTE_DOUBLE) {
            const lineWidth = Math.max(ctx.options.lineWidth - ctx.indent.length, ctx.options.minContentWidth);
            const n = Math.ceil(str.length / lineWidth);
            const lines = new Array(n);
            for (let i = 0, o = 0; i < n; ++i, o += lineWidth) {
                lines[i] = str.substr(o, lineWidth);
            }
            str = lines.join(type === Scalar.Scalar.BLOCK_LITERAL ? '\n' : ' ');
        }
        return stringifyString.stringifyString({ comment, type, value: str }, ctx, onComment, onChompKeep);
    }
};

exports.binary = binary;


/***/ }),

/***/ 8398:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);

function boolStringify({ value, source }, ctx) {
    const boolObj = value ? trueTag : falseTag;
    if (source && boolObj.test.test(source))
        return source;
    return value ? ctx.options.trueStr : ctx.options.falseStr;
}
const trueTag = {
    identify: value => value === true,
    default: true,
    tag: 'tag:yaml.org,2002:bool',
    test: /^(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/,
    resolve: () => new Scalar.Scalar(true),
    stringify: boolStringify
};
const falseTag = {
    identify: value => value === false,
    default: true,
    tag: 'tag:yaml.org,2002:bool',
    test: /^(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/,
    resolve: () => new Scalar.Scalar(false),
    stringify: boolStringify
};

exports.falseTag = falseTag;
exports.trueTag = trueTag;


/***/ }),

/***/ 5782:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);
var stringifyNumber = __nccwpck_require__(8689);

const floatNaN = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    test: /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
    resolve: (str) => str.slice(-3).toLowerCase() === 'nan'
        ? NaN
        : str[0] === '-'
            ? Number.NEGATIVE_INFINITY
            : Number.POSITIVE_INFINITY,
    stringify: stringifyNumber.stringifyNumber
};
const floatExp = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    format: 'EXP',
    test: /^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$/,
    resolve: (str) => parseFloat(str.replace(/_/g, '')),
    stringify(node) {
        const num = Number(node.value);
        return isFinite(num) ? num.toExponential() : stringifyNumber.stringifyNumber(node);
    }
};
const float = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    test: /^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*$/,
    resolve(str) {
        const node = new Scalar.Scalar(parseFloat(str.replace(/_/g, '')));
        const dot = str.indexOf('.');
        if (dot !== -1) {
            const f = str.substring(dot + 1).replace(/_/g, '');
            if (f[f.length - 1] === '0')
                node.minFractionDigits = f.length;
        }
        return node;
    },
    stringify: stringifyNumber.stringifyNumber
};

exports.float = float;
exports.floatExp = floatExp;
exports.floatNaN = floatNaN;


/***/ }),

/***/ 873:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var stringifyNumber = __nccwpck_require__(8689);

const intIdentify = (value) => typeof value === 'bigint' || Number.isInteger(value);
function intResolve(str, offset, radix, { intAsBigInt }) {
    const sign = str[0];
    if (sign === '-' || sign === '+')
        offset += 1;
    str = str.substring(offset).replace(/_/g, '');
    if (intAsBigInt) {
        switch (radix) {
            case 2:
                str = `0b${str}`;
                break;
            case 8:
                str = `0o${str}`;
                break;
            case 16:
                str = `0x${str}`;
                break;
        }
        const n = BigInt(str);
        return sign === '-' ? BigInt(-1) * n : n;
    }
    const n = parseInt(str, radix);
    return sign === '-' ? -1 * n : n;
}
function intStringify(node, radix, prefix) {
    const { value } = node;
    if (intIdentify(value)) {
        const str = value.toString(radix);
        return value < 0 ? '-' + prefix + str.substr(1) : prefix + str;
    }
    return stringifyNumber.stringifyNumber(node);
}
const intBin = {
    identify: intIdentify,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'BIN',
    test: /^[-+]?0b[0-1_]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 2, 2, opt),
    stringify: node => intStringify(node, 2, '0b')
};
const intOct = {
    identify: intIdentify,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'OCT',
    test: /^[-+]?0[0-7_]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 1, 8, opt),
    stringify: node => intStringify(node, 8, '0')
};
const int = {
    identify: intIdentify,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    test: /^[-+]?[0-9][0-9_]*$/,
    resolve: (str, _onError, opt) => intResolve(str, 0, 10, opt),
    stringify: stringifyNumber.stringifyNumber
};
const intHex = {
    identify: intIdentify,
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'HEX',
    test: /^[-+]?0x[0-9a-fA-F_]+$/,
    resolve: (str, _onError, opt) => intResolve(str, 2, 16, opt),
    stringify: node => intStringify(node, 16, '0x')
};

exports.int = int;
exports.intBin = intBin;
exports.intHex = intHex;
exports.intOct = intOct;


/***/ }),

/***/ 452:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);

// If the value associated with a merge key is a single mapping node, each of
// its key/value pairs is inserted into the current mapping, unless the key
// already exists in it. If the value associated with the merge key is a
// sequence, then this sequence is expected to contain mapping nodes and each
// of these nodes is merged in turn according to its order in the sequence.
// Keys in mapping nodes earlier in the sequence override keys specified in
// later mapping nodes. -- http://yaml.org/type/merge.html
const MERGE_KEY = '<<';
const merge = {
    identify: value => value === MERGE_KEY ||
        (typeof value === 'symbol' && value.description === MERGE_KEY),
    default: 'key',
    tag: 'tag:yaml.org,2002:merge',
    test: /^<<$/,
    resolve: () => Object.assign(new Scalar.Scalar(Symbol(MERGE_KEY)), {
        addToJSMap: addMergeToJSMap
    }),
    stringify: () => MERGE_KEY
};
const isMergeKey = (ctx, key) => (merge.identify(key) ||
    (identity.isScalar(key) &&
        (!key.type || key.type === Scalar.Scalar.PLAIN) &&
        merge.identify(key.value))) &&
    ctx?.doc.schema.tags.some(tag => tag.tag === merge.tag && tag.default);
function addMergeToJSMap(ctx, map, value) {
    const source = resolveAliasValue(ctx, value);
    if (identity.isSeq(source))
        for (const it of source.items)
            mergeValue(ctx, map, it);
    else if (Array.isArray(source))
        for (const it of source)
            mergeValue(ctx, map, it);
    else
        mergeValue(ctx, map, source);
}
function mergeValue(ctx, map, value) {
    const source = resolveAliasValue(ctx, value);
    if (!identity.isMap(source))
        throw new Error('Merge sources must be maps or map aliases');
    const srcMap = source.toJSON(null, ctx, Map);
    for (const [key, value] of srcMap) {
        if (map instanceof Map) {
            if (!map.has(key))
                map.set(key, value);
        }
        else if (map instanceof Set) {
            map.add(key);
        }
        else if (!Object.prototype.hasOwnProperty.call(map, key)) {
            Object.defineProperty(map, key, {
                value,
                writable: true,
                enumerable: true,
                configurable: true
            });
        }
    }
    return map;
}
function resolveAliasValue(ctx, value) {
    return ctx && identity.isAlias(value) ? value.resolve(ctx.doc, ctx) : value;
}

exports.addMergeToJSMap = addMergeToJSMap;
exports.isMergeKey = isMergeKey;
exports.merge = merge;


/***/ }),

/***/ 303:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var toJS = __nccwpck_require__(4043);
var YAMLMap = __nccwpck_require__(4454);
var YAMLSeq = __nccwpck_require__(2223);
var pairs = __nccwpck_require__(8385);

class YAMLOMap extends YAMLSeq.YAMLSeq {
    constructor() {
        super();
        this.add = YAMLMap.YAMLMap.prototype.add.bind(this);
        this.delete = YAMLMap.YAMLMap.prototype.delete.bind(this);
        this.get = YAMLMap.YAMLMap.prototype.get.bind(this);
        this.has = YAMLMap.YAMLMap.prototype.has.bind(this);
        this.set = YAMLMap.YAMLMap.prototype.set.bind(this);
        this.tag = YAMLOMap.tag;
    }
    /**
     * If `ctx` is given, the return type is actually `Map<unknown, unknown>`,
     * but TypeScript won't allow widening the signature of a child method.
     */
    toJSON(_, ctx) {
        if (!ctx)
            return super.toJSON(_);
        const map = new Map();
        if (ctx?.onCreate)
            ctx.onCreate(map);
        for (const pair of this.items) {
            let key, value;
            if (identity.isPair(pair)) {
                key = toJS.toJS(pair.key, '', ctx);
                value = toJS.toJS(pair.value, key, ctx);
            }
            else {
                key = toJS.toJS(pair, '', ctx);
            }
            if (map.has(key))
                throw new Error('Ordered maps must not include duplicate keys');
            map.set(key, value);
        }
        return map;
    }
    static from(schema, iterable, ctx) {
        const pairs$1 = pairs.createPairs(schema, iterable, ctx);
        const omap = new this();
        omap.items = pairs$1.items;
        return omap;
    }
}
YAMLOMap.tag = 'tag:yaml.org,2002:omap';
const omap = {
    collection: 'seq',
    identify: value => value instanceof Map,
    nodeClass: YAMLOMap,
    default: false,
    tag: 'tag:yaml.org,2002:omap',
    resolve(seq, onError) {
        const pairs$1 = pairs.resolvePairs(seq, onError);
        const seenKeys = [];
        for (const { key } of pairs$1.items) {
            if (identity.isScalar(key)) {
                if (seenKeys.includes(key.value)) {
                    onError(`Ordered maps must not include duplicate keys: ${key.value}`);
                }
                else {
                    seenKeys.push(key.value);
                }
            }
        }
        return Object.assign(new YAMLOMap(), pairs$1);
    },
    createNode: (schema, iterable, ctx) => YAMLOMap.from(schema, iterable, ctx)
};

exports.YAMLOMap = YAMLOMap;
exports.omap = omap;


/***/ }),

/***/ 8385:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var Scalar = __nccwpck_require__(3301);
var YAMLSeq = __nccwpck_require__(2223);

function resolvePairs(seq, onError) {
    if (identity.isSeq(seq)) {
        for (let i = 0; i < seq.items.length; ++i) {
            let item = seq.items[i];
            if (identity.isPair(item))
                continue;
            else if (identity.isMap(item)) {
                if (item.items.length > 1)
                    onError('Each pair must have its own sequence indicator');
                const pair = item.items[0] || new Pair.Pair(new Scalar.Scalar(null));
                if (item.commentBefore)
                    pair.key.commentBefore = pair.key.commentBefore
                        ? `${item.commentBefore}\n${pair.key.commentBefore}`
                        : item.commentBefore;
                if (item.comment) {
                    const cn = pair.value ?? pair.key;
                    cn.comment = cn.comment
                        ? `${item.comment}\n${cn.comment}`
                        : item.comment;
                }
                item = pair;
            }
            seq.items[i] = identity.isPair(item) ? item : new Pair.Pair(item);
        }
    }
    else
        onError('Expected a sequence for this tag');
    return seq;
}
function createPairs(schema, iterable, ctx) {
    const { replacer } = ctx;
    const pairs = new YAMLSeq.YAMLSeq(schema);
    pairs.tag = 'tag:yaml.org,2002:pairs';
    let i = 0;
    if (iterable && Symbol.iterator in Object(iterable))
        for (let it of iterable) {
            if (typeof replacer === 'function')
                it = replacer.call(iterable, String(i++), it);
            let key, value;
            if (Array.isArray(it)) {
                if (it.length === 2) {
                    key = it[0];
                    value = it[1];
                }
                else
                    throw new TypeError(`Expected [key, value] tuple: ${it}`);
            }
            else if (it && it instanceof Object) {
                const keys = Object.keys(it);
                if (keys.length === 1) {
                    key = keys[0];
                    value = it[key];
                }
                else {
                    throw new TypeError(`Expected tuple with one key, not ${keys.length} keys`);
                }
            }
            else {
                key = it;
            }
            pairs.items.push(Pair.createPair(key, value, ctx));
        }
    return pairs;
}
const pairs = {
    collection: 'seq',
    default: false,
    tag: 'tag:yaml.org,2002:pairs',
    resolve: resolvePairs,
    createNode: createPairs
};

exports.createPairs = createPairs;
exports.pairs = pairs;
exports.resolvePairs = resolvePairs;


/***/ }),

/***/ 5913:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var map = __nccwpck_require__(7451);
var _null = __nccwpck_require__(3632);
var seq = __nccwpck_require__(1706);
var string = __nccwpck_require__(6464);
var binary = __nccwpck_require__(6083);
var bool = __nccwpck_require__(8398);
var float = __nccwpck_require__(5782);
var int = __nccwpck_require__(873);
var merge = __nccwpck_require__(452);
var omap = __nccwpck_require__(303);
var pairs = __nccwpck_require__(8385);
var set = __nccwpck_require__(1528);
var timestamp = __nccwpck_require__(6752);

const schema = [
    map.map,
    seq.seq,
    string.string,
    _null.nullTag,
    bool.trueTag,
    bool.falseTag,
    int.intBin,
    int.intOct,
    int.int,
    int.intHex,
    float.floatNaN,
    float.floatExp,
    float.float,
    binary.binary,
    merge.merge,
    omap.omap,
    pairs.pairs,
    set.set,
    timestamp.intTime,
    timestamp.floatTime,
    timestamp.timestamp
];

exports.schema = schema;


/***/ }),

/***/ 1528:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Pair = __nccwpck_require__(7165);
var YAMLMap = __nccwpck_require__(4454);

class YAMLSet extends YAMLMap.YAMLMap {
    constructor(schema) {
        super(schema);
        this.tag = YAMLSet.tag;
    }
    add(key) {
        let pair;
        if (identity.isPair(key))
            pair = key;
        else if (key &&
            typeof key === 'object' &&
            'key' in key &&
            'value' in key &&
            key.value === null)
            pair = new Pair.Pair(key.key, null);
        else
            pair = new Pair.Pair(key, null);
        const prev = YAMLMap.findPair(this.items, pair.key);
        if (!prev)
            this.items.push(pair);
    }
    /**
     * If `keepPair` is `true`, returns the Pair matching `key`.
     * Otherwise, returns the value of that Pair's key.
     */
    get(key, keepPair) {
        const pair = YAMLMap.findPair(this.items, key);
        return !keepPair && identity.isPair(pair)
            ? identity.isScalar(pair.key)
                ? pair.key.value
                : pair.key
            : pair;
    }
    set(key, value) {
        if (typeof value !== 'boolean')
            throw new Error(`Expected boolean value for set(key, value) in a YAML set, not ${typeof value}`);
        const prev = YAMLMap.findPair(this.items, key);
        if (prev && !value) {
            this.items.splice(this.items.indexOf(prev), 1);
        }
        else if (!prev && value) {
            this.items.push(new Pair.Pair(key));
        }
    }
    toJSON(_, ctx) {
        return super.toJSON(_, ctx, Set);
    }
    toString(ctx, onComment, onChompKeep) {
        if (!ctx)
            return JSON.stringify(this);
        if (this.hasAllNullValues(true))
            return super.toString(Object.assign({}, ctx, { allNullValues: true }), onComment, onChompKeep);
        else
            throw new Error('Set items must all have null values');
    }
    static from(schema, iterable, ctx) {
        const { replacer } = ctx;
        const set = new this(schema);
        if (iterable && Symbol.iterator in Object(iterable))
            for (let value of iterable) {
                if (typeof replacer === 'function')
                    value = replacer.call(iterable, value, value);
                set.items.push(Pair.createPair(value, null, ctx));
            }
        return set;
    }
}
YAMLSet.tag = 'tag:yaml.org,2002:set';
const set = {
    collection: 'map',
    identify: value => value instanceof Set,
    nodeClass: YAMLSet,
    default: false,
    tag: 'tag:yaml.org,2002:set',
    createNode: (schema, iterable, ctx) => YAMLSet.from(schema, iterable, ctx),
    resolve(map, onError) {
        if (identity.isMap(map)) {
            if (map.hasAllNullValues(true))
                return Object.assign(new YAMLSet(), map);
            else
                onError('Set items must all have null values');
        }
        else
            onError('Expected a mapping for this tag');
        return map;
    }
};

exports.YAMLSet = YAMLSet;
exports.set = set;


/***/ }),

/***/ 6752:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var stringifyNumber = __nccwpck_require__(8689);

/** Internal types handle bigint as number, because TS can't figure it out. */
function parseSexagesimal(str, asBigInt) {
    const sign = str[0];
    const parts = sign === '-' || sign === '+' ? str.substring(1) : str;
    const num = (n) => asBigInt ? BigInt(n) : Number(n);
    const res = parts
        .replace(/_/g, '')
        .split(':')
        .reduce((res, p) => res * num(60) + num(p), num(0));
    return (sign === '-' ? num(-1) * res : res);
}
/**
 * hhhh:mm:ss.sss
 *
 * Internal types handle bigint as number, because TS can't figure it out.
 */
function stringifySexagesimal(node) {
    let { value } = node;
    let num = (n) => n;
    if (typeof value === 'bigint')
        num = n => BigInt(n);
    else if (isNaN(value) || !isFinite(value))
        return stringifyNumber.stringifyNumber(node);
    let sign = '';
    if (value < 0) {
        sign = '-';
        value *= num(-1);
    }
    const _60 = num(60);
    const parts = [value % _60]; // seconds, including ms
    if (value < 60) {
        parts.unshift(0); // at least one : is required
    }
    else {
        value = (value - parts[0]) / _60;
        parts.unshift(value % _60); // minutes
        if (value >= 60) {
            value = (value - parts[0]) / _60;
            parts.unshift(value); // hours
        }
    }
    return (sign +
        parts
            .map(n => String(n).padStart(2, '0'))
            .join(':')
            .replace(/000000\d*$/, '') // % 60 may introduce error
    );
}
const intTime = {
    identify: value => typeof value === 'bigint' || Number.isInteger(value),
    default: true,
    tag: 'tag:yaml.org,2002:int',
    format: 'TIME',
    test: /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+$/,
    resolve: (str, _onError, { intAsBigInt }) => parseSexagesimal(str, intAsBigInt),
    stringify: stringifySexagesimal
};
const floatTime = {
    identify: value => typeof value === 'number',
    default: true,
    tag: 'tag:yaml.org,2002:float',
    format: 'TIME',
    test: /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*$/,
    resolve: str => parseSexagesimal(str, false),
    stringify: stringifySexagesimal
};
const timestamp = {
    identify: value => value instanceof Date,
    default: true,
    tag: 'tag:yaml.org,2002:timestamp',
    // If the time zone is omitted, the timestamp is assumed to be specified in UTC. The time part
    // may be omitted altogether, resulting in a date format. In such a case, the time part is
    // assumed to be 00:00:00Z (start of day, UTC).
    test: RegExp('^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})' + // YYYY-Mm-Dd
        '(?:' + // time is optional
        '(?:t|T|[ \\t]+)' + // t | T | whitespace
        '([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2}(\\.[0-9]+)?)' + // Hh:Mm:Ss(.ss)?
        '(?:[ \\t]*(Z|[-+][012]?[0-9](?::[0-9]{2})?))?' + // Z | +5 | -03:30
        ')?$'),
    resolve(str) {
        const match = str.match(timestamp.test);
        if (!match)
            throw new Error('!!timestamp expects a date, starting with yyyy-mm-dd');
        const [, year, month, day, hour, minute, second] = match.map(Number);
        const millisec = match[7] ? Number((match[7] + '00').substr(1, 3)) : 0;
        let date = Date.UTC(year, month - 1, day, hour || 0, minute || 0, second || 0, millisec);
        const tz = match[8];
        if (tz && tz !== 'Z') {
            let d = parseSexagesimal(tz, false);
            if (Math.abs(d) < 30)
                d *= 60;
            date -= 60000 * d;
        }
        return new Date(date);
    },
    stringify: ({ value }) => value?.toISOString().replace(/(T00:00:00)?\.000Z$/, '') ?? ''
};

exports.floatTime = floatTime;
exports.intTime = intTime;
exports.timestamp = timestamp;


/***/ }),

/***/ 4475:
/***/ ((__unused_webpack_module, exports) => {



const FOLD_FLOW = 'flow';
const FOLD_BLOCK = 'block';
const FOLD_QUOTED = 'quoted';
/**
 * Tries to keep input at up to `lineWidth` characters, splitting only on spaces
 * not followed by newlines or spaces unless `mode` is `'quoted'`. Lines are
 * terminated with `\n` and started with `indent`.
 */
function foldFlowLines(text, indent, mode = 'flow', { indentAtStart, lineWidth = 80, minContentWidth = 20, onFold, onOverflow } = {}) {
    if (!lineWidth || lineWidth < 0)
        return text;
    if (lineWidth < minContentWidth)
        minContentWidth = 0;
    const endStep = Math.max(1 + minContentWidth, 1 + lineWidth - indent.length);
    if (text.length <= endStep)
        return text;
    const folds = [];
    const escapedFolds = {};
    let end = lineWidth - indent.length;
    if (typeof indentAtStart === 'number') {
        if (indentAtStart > lineWidth - Math.max(2, minContentWidth))
            folds.push(0);
        else
            end = lineWidth - indentAtStart;
    }
    let split = undefined;
    let prev = undefined;
    let overflow = false;
    let i = -1;
    let escStart = -1;
    let escEnd = -1;
    if (mode === FOLD_BLOCK) {
        i = consumeMoreIndentedLines(text, i, indent.length);
        if (i !== -1)
            end = i + endStep;
    }
    for (let ch; (ch = text[(i += 1)]);) {
        if (mode === FOLD_QUOTED && ch === '\\') {
            escStart = i;
            switch (text[i + 1]) {
                case 'x':
                    i += 3;
                    break;
                case 'u':
                    i += 5;
                    break;
                case 'U':
                    i += 9;
                    break;
                default:
                    i += 1;
            }
            escEnd = i;
        }
        if (ch === '\n') {
            if (mode === FOLD_BLOCK)
                i = consumeMoreIndentedLines(text, i, indent.length);
            end = i + indent.length + endStep;
            split = undefined;
        }
        else {
            if (ch === ' ' &&
                prev &&
                prev !== ' ' &&
                prev !== '\n' &&
                prev !== '\t') {
                // space surrounded by non-space can be replaced with newline + indent
                const next = text[i + 1];
                if (next && next !== ' ' && next !== '\n' && next !== '\t')
                    split = i;
            }
            if (i >= end) {
                if (split) {
                    folds.push(split);
                    end = split + endStep;
                    split = undefined;
                }
                else if (mode === FOLD_QUOTED) {
                    // white-space collected at end may stretch past lineWidth
                    while (prev === ' ' || prev === '\t') {
                        prev = ch;
                        ch = text[(i += 1)];
                        overflow = true;
                    }
                    // Account for newline escape, but don't break preceding escape
                    const j = i > escEnd + 1 ? i - 2 : escStart - 1;
                    // Bail out if lineWidth & minContentWidth are shorter than an escape string
                    if (escapedFolds[j])
                        return text;
                    folds.push(j);
                    escapedFolds[j] = true;
                    end = j + endStep;
                    split = undefined;
                }
                else {
                    overflow = true;
                }
            }
        }
        prev = ch;
    }
    if (overflow && onOverflow)
        onOverflow();
    if (folds.length === 0)
        return text;
    if (onFold)
        onFold();
    let res = text.slice(0, folds[0]);
    for (let i = 0; i < folds.length; ++i) {
        const fold = folds[i];
        const end = folds[i + 1] || text.length;
        if (fold === 0)
            res = `\n${indent}${text.slice(0, end)}`;
        else {
            if (mode === FOLD_QUOTED && escapedFolds[fold])
                res += `${text[fold]}\\`;
            res += `\n${indent}${text.slice(fold + 1, end)}`;
        }
    }
    return res;
}
/**
 * Presumes `i + 1` is at the start of a line
 * @returns index of last newline in more-indented block
 */
function consumeMoreIndentedLines(text, i, indent) {
    let end = i;
    let start = i + 1;
    let ch = text[start];
    while (ch === ' ' || ch === '\t') {
        if (i < start + indent) {
            ch = text[++i];
        }
        else {
            do {
                ch = text[++i];
            } while (ch && ch !== '\n');
            end = i;
            start = i + 1;
            ch = text[start];
        }
    }
    return end;
}

exports.FOLD_BLOCK = FOLD_BLOCK;
exports.FOLD_FLOW = FOLD_FLOW;
exports.FOLD_QUOTED = FOLD_QUOTED;
exports.foldFlowLines = foldFlowLines;


/***/ }),

/***/ 2148:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var anchors = __nccwpck_require__(1596);
var identity = __nccwpck_require__(1127);
var stringifyComment = __nccwpck_require__(9799);
var stringifyString = __nccwpck_require__(3069);

function createStringifyContext(doc, options) {
    const opt = Object.assign({
        blockQuote: true,
        commentString: stringifyComment.stringifyComment,
        defaultKeyType: null,
        defaultStringType: 'PLAIN',
        directives: null,
        doubleQuotedAsJSON: false,
        doubleQuotedMinMultiLineLength: 40,
        falseStr: 'false',
        flowCollectionPadding: true,
        indentSeq: true,
        lineWidth: 80,
        minContentWidth: 20,
        nullStr: 'null',
        simpleKeys: false,
        singleQuote: null,
        trailingComma: false,
        trueStr: 'true',
        verifyAliasOrder: true
    }, doc.schema.toStringOptions, options);
    let inFlow;
    switch (opt.collectionStyle) {
        case 'block':
            inFlow = false;
            break;
        case 'flow':
            inFlow = true;
            break;
        default:
            inFlow = null;
    }
    return {
        anchors: new Set(),
        doc,
        flowCollectionPadding: opt.flowCollectionPadding ? ' ' : '',
        indent: '',
        indentStep: typeof opt.indent === 'number' ? ' '.repeat(opt.indent) : '  ',
        inFlow,
        options: opt
    };
}
function getTagObject(tags, item) {
    if (item.tag) {
        const match = tags.filter(t => t.tag === item.tag);
        if (match.length > 0)
            return match.find(t => t.format === item.format) ?? match[0];
    }
    let tagObj = undefined;
    let obj;
    if (identity.isScalar(item)) {
        obj = item.value;
        let match = tags.filter(t => t.identify?.(obj));
        if (match.length > 1) {
            const testMatch = match.filter(t => t.test);
            if (testMatch.length > 0)
                match = testMatch;
        }
        tagObj =
            match.find(t => t.format === item.format) ?? match.find(t => !t.format);
    }
    else {
        obj = item;
        tagObj = tags.find(t => t.nodeClass && obj instanceof t.nodeClass);
    }
    if (!tagObj) {
        const name = obj?.constructor?.name ?? (obj === null ? 'null' : typeof obj);
        throw new Error(`Tag not resolved for ${name} value`);
    }
    return tagObj;
}
// needs to be called before value stringifier to allow for circular anchor refs
function stringifyProps(node, tagObj, { anchors: anchors$1, doc }) {
    if (!doc.directives)
        return '';
    const props = [];
    const anchor = (identity.isScalar(node) || identity.isCollection(node)) && node.anchor;
    if (anchor && anchors.anchorIsValid(anchor)) {
        anchors$1.add(anchor);
        props.push(`&${anchor}`);
    }
    const tag = node.tag ?? (tagObj.default ? null : tagObj.tag);
    if (tag)
        props.push(doc.directives.tagString(tag));
    return props.join(' ');
}
function stringify(item, ctx, onComment, onChompKeep) {
    if (identity.isPair(item))
        return item.toString(ctx, onComment, onChompKeep);
    if (identity.isAlias(item)) {
        if (ctx.doc.directives)
            return item.toString(ctx);
        if (ctx.resolvedAliases?.has(item)) {
            throw new TypeError(`Cannot stringify circular structure without alias nodes`);
        }
        else {
            if (ctx.resolvedAliases)
                ctx.resolvedAliases.add(item);
            else
                ctx.resolvedAliases = new Set([item]);
            item = item.resolve(ctx.doc);
        }
    }
    let tagObj = undefined;
    const node = identity.isNode(item)
        ? item
        : ctx.doc.createNode(item, { onTagObj: o => (tagObj = o) });
    tagObj ?? (tagObj = getTagObject(ctx.doc.schema.tags, node));
    const props = stringifyProps(node, tagObj, ctx);
    if (props.length > 0)
        ctx.indentAtStart = (ctx.indentAtStart ?? 0) + props.length + 1;
    const str = typeof tagObj.stringify === 'function'
        ? tagObj.stringify(node, ctx, onComment, onChompKeep)
        : identity.isScalar(node)
            ? stringifyString.stringifyString(node, ctx, onComment, onChompKeep)
            : node.toString(ctx, onComment, onChompKeep);
    if (!props)
        return str;
    return identity.isScalar(node) || str[0] === '{' || str[0] === '['
        ? `${props} ${str}`
        : `${props}\n${ctx.indent}${str}`;
}

exports.createStringifyContext = createStringifyContext;
exports.stringify = stringify;


/***/ }),

/***/ 1212:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var stringify = __nccwpck_require__(2148);
var stringifyComment = __nccwpck_require__(9799);

function stringifyCollection(collection, ctx, options) {
    const flow = ctx.inFlow ?? collection.flow;
    const stringify = flow ? stringifyFlowCollection : stringifyBlockCollection;
    return stringify(collection, ctx, options);
}
function stringifyBlockCollection({ comment, items }, ctx, { blockItemPrefix, flowChars, itemIndent, onChompKeep, onComment }) {
    const { indent, options: { commentString } } = ctx;
    const itemCtx = Object.assign({}, ctx, { indent: itemIndent, type: null });
    let chompKeep = false; // flag for the preceding node's status
    const lines = [];
    for (let i = 0; i < items.length; ++i) {
        const item = items[i];
        let comment = null;
        if (identity.isNode(item)) {
            if (!chompKeep && item.spaceBefore)
                lines.push('');
            addCommentBefore(ctx, lines, item.commentBefore, chompKeep);
            if (item.comment)
                comment = item.comment;
        }
        else if (identity.isPair(item)) {
            const ik = identity.isNode(item.key) ? item.key : null;
            if (ik) {
                if (!chompKeep && ik.spaceBefore)
                    lines.push('');
                addCommentBefore(ctx, lines, ik.commentBefore, chompKeep);
            }
        }
        chompKeep = false;
        let str = stringify.stringify(item, itemCtx, () => (comment = null), () => (chompKeep = true));
        if (comment)
            str += stringifyComment.lineComment(str, itemIndent, commentString(comment));
        if (chompKeep && comment)
            chompKeep = false;
        lines.push(blockItemPrefix + str);
    }
    let str;
    if (lines.length === 0) {
        str = flowChars.start + flowChars.end;
    }
    else {
        str = lines[0];
        for (let i = 1; i < lines.length; ++i) {
            const line = lines[i];
            str += line ? `\n${indent}${line}` : '\n';
        }
    }
    if (comment) {
        str += '\n' + stringifyComment.indentComment(commentString(comment), indent);
        if (onComment)
            onComment();
    }
    else if (chompKeep && onChompKeep)
        onChompKeep();
    return str;
}
function stringifyFlowCollection({ items }, ctx, { flowChars, itemIndent }) {
    const { indent, indentStep, flowCollectionPadding: fcPadding, options: { commentString } } = ctx;
    itemIndent += indentStep;
    const itemCtx = Object.assign({}, ctx, {
        indent: itemIndent,
        inFlow: true,
        type: null
    });
    let reqNewline = false;
    let linesAtValue = 0;
    const lines = [];
    for (let i = 0; i < items.length; ++i) {
        const item = items[i];
        let comment = null;
        if (identity.isNode(item)) {
            if (item.spaceBefore)
                lines.push('');
            addCommentBefore(ctx, lines, item.commentBefore, false);
            if (item.comment)
                comment = item.comment;
        }
        else if (identity.isPair(item)) {
            const ik = identity.isNode(item.key) ? item.key : null;
            if (ik) {
                if (ik.spaceBefore)
                    lines.push('');
                addCommentBefore(ctx, lines, ik.commentBefore, false);
                if (ik.comment)
                    reqNewline = true;
            }
            const iv = identity.isNode(item.value) ? item.value : null;
            if (iv) {
                if (iv.comment)
                    comment = iv.comment;
                if (iv.commentBefore)
                    reqNewline = true;
            }
            else if (item.value == null && ik?.comment) {
                comment = ik.comment;
            }
        }
        if (comment)
            reqNewline = true;
        let str = stringify.stringify(item, itemCtx, () => (comment = null));
        reqNewline || (reqNewline = lines.length > linesAtValue || str.includes('\n'));
        if (i < items.length - 1) {
            str += ',';
        }
        else if (ctx.options.trailingComma) {
            if (ctx.options.lineWidth > 0) {
                reqNewline || (reqNewline = lines.reduce((sum, line) => sum + line.length + 2, 2) +
                    (str.length + 2) >
                    ctx.options.lineWidth);
            }
            if (reqNewline) {
                str += ',';
            }
        }
        if (comment)
            str += stringifyComment.lineComment(str, itemIndent, commentString(comment));
        lines.push(str);
        linesAtValue = lines.length;
    }
    const { start, end } = flowChars;
    if (lines.length === 0) {
        return start + end;
    }
    else {
        if (!reqNewline) {
            const len = lines.reduce((sum, line) => sum + line.length + 2, 2);
            reqNewline = ctx.options.lineWidth > 0 && len > ctx.options.lineWidth;
        }
        if (reqNewline) {
            let str = start;
            for (const line of lines)
                str += line ? `\n${indentStep}${indent}${line}` : '\n';
            return `${str}\n${indent}${end}`;
        }
        else {
            return `${start}${fcPadding}${lines.join(' ')}${fcPadding}${end}`;
        }
    }
}
function addCommentBefore({ indent, options: { commentString } }, lines, comment, chompKeep) {
    if (comment && chompKeep)
        comment = comment.replace(/^\n+/, '');
    if (comment) {
        const ic = stringifyComment.indentComment(commentString(comment), indent);
        lines.push(ic.trimStart()); // Avoid double indent on first line
    }
}

exports.stringifyCollection = stringifyCollection;


/***/ }),

/***/ 9799:
/***/ ((__unused_webpack_module, exports) => {



/**
 * Stringifies a comment.
 *
 * Empty comment lines are left empty,
 * lines consisting of a single space are replaced by `#`,
 * and all other lines are prefixed with a `#`.
 */
const stringifyComment = (str) => str.replace(/^(?!$)(?: $)?/gm, '#');
function indentComment(comment, indent) {
    if (/^\n+$/.test(comment))
        return comment.substring(1);
    return indent ? comment.replace(/^(?! *$)/gm, indent) : comment;
}
const lineComment = (str, indent, comment) => str.endsWith('\n')
    ? indentComment(comment, indent)
    : comment.includes('\n')
        ? '\n' + indentComment(comment, indent)
        : (str.endsWith(' ') ? '' : ' ') + comment;

exports.indentComment = indentComment;
exports.lineComment = lineComment;
exports.stringifyComment = stringifyComment;


/***/ }),

/***/ 6829:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var stringify = __nccwpck_require__(2148);
var stringifyComment = __nccwpck_require__(9799);

function stringifyDocument(doc, options) {
    const lines = [];
    let hasDirectives = options.directives === true;
    if (options.directives !== false && doc.directives) {
        const dir = doc.directives.toString(doc);
        if (dir) {
            lines.push(dir);
            hasDirectives = true;
        }
        else if (doc.directives.docStart)
            hasDirectives = true;
    }
    if (hasDirectives)
        lines.push('---');
    const ctx = stringify.createStringifyContext(doc, options);
    const { commentString } = ctx.options;
    if (doc.commentBefore) {
        if (lines.length !== 1)
            lines.unshift('');
        const cs = commentString(doc.commentBefore);
        lines.unshift(stringifyComment.indentComment(cs, ''));
    }
    let chompKeep = false;
    let contentComment = null;
    if (doc.contents) {
        if (identity.isNode(doc.contents)) {
            if (doc.contents.spaceBefore && hasDirectives)
                lines.push('');
            if (doc.contents.commentBefore) {
                const cs = commentString(doc.contents.commentBefore);
                lines.push(stringifyComment.indentComment(cs, ''));
            }
            // top-level block scalars need to be indented if followed by a comment
            ctx.forceBlockIndent = !!doc.comment;
            contentComment = doc.contents.comment;
        }
        const onChompKeep = contentComment ? undefined : () => (chompKeep = true);
        let body = stringify.stringify(doc.contents, ctx, () => (contentComment = null), onChompKeep);
        if (contentComment)
            body += stringifyComment.lineComment(body, '', commentString(contentComment));
        if ((body[0] === '|' || body[0] === '>') &&
            lines[lines.length - 1] === '---') {
            // Top-level block scalars with a preceding doc marker ought to use the
            // same line for their header.
            lines[lines.length - 1] = `--- ${body}`;
        }
        else
            lines.push(body);
    }
    else {
        lines.push(stringify.stringify(doc.contents, ctx));
    }
    if (doc.directives?.docEnd) {
        if (doc.comment) {
            const cs = commentString(doc.comment);
            if (cs.includes('\n')) {
                lines.push('...');
                lines.push(stringifyComment.indentComment(cs, ''));
            }
            else {
                lines.push(`... ${cs}`);
            }
        }
        else {
            lines.push('...');
        }
    }
    else {
        let dc = doc.comment;
        if (dc && chompKeep)
            dc = dc.replace(/^\n+/, '');
        if (dc) {
            if ((!chompKeep || contentComment) && lines[lines.length - 1] !== '')
                lines.push('');
            lines.push(stringifyComment.indentComment(commentString(dc), ''));
        }
    }
    return lines.join('\n') + '\n';
}

exports.stringifyDocument = stringifyDocument;


/***/ }),

/***/ 8689:
/***/ ((__unused_webpack_module, exports) => {



function stringifyNumber({ format, minFractionDigits, tag, value }) {
    if (typeof value === 'bigint')
        return String(value);
    const num = typeof value === 'number' ? value : Number(value);
    if (!isFinite(num))
        return isNaN(num) ? '.nan' : num < 0 ? '-.inf' : '.inf';
    let n = Object.is(value, -0) ? '-0' : JSON.stringify(value);
    if (!format &&
        minFractionDigits &&
        (!tag || tag === 'tag:yaml.org,2002:float') &&
        /^-?\d/.test(n) &&
        !n.includes('e')) {
        let i = n.indexOf('.');
        if (i < 0) {
            i = n.length;
            n += '.';
        }
        let d = minFractionDigits - (n.length - i - 1);
        while (d-- > 0)
            n += '0';
    }
    return n;
}

exports.stringifyNumber = stringifyNumber;


/***/ }),

/***/ 9748:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);
var Scalar = __nccwpck_require__(3301);
var stringify = __nccwpck_require__(2148);
var stringifyComment = __nccwpck_require__(9799);

function stringifyPair({ key, value }, ctx, onComment, onChompKeep) {
    const { allNullValues, doc, indent, indentStep, options: { commentString, indentSeq, simpleKeys } } = ctx;
    let keyComment = (identity.isNode(key) && key.comment) || null;
    if (simpleKeys) {
        if (keyComment) {
            throw new Error('With simple keys, key nodes cannot have comments');
        }
        if (identity.isCollection(key) || (!identity.isNode(key) && typeof key === 'object')) {
            const msg = 'With simple keys, collection cannot be used as a key value';
            throw new Error(msg);
        }
    }
    let explicitKey = !simpleKeys &&
        (!key ||
            (keyComment && value == null && !ctx.inFlow) ||
            identity.isCollection(key) ||
            (identity.isScalar(key)
                ? key.type === Scalar.Scalar.BLOCK_FOLDED || key.type === Scalar.Scalar.BLOCK_LITERAL
                : typeof key === 'object'));
    ctx = Object.assign({}, ctx, {
        allNullValues: false,
        implicitKey: !explicitKey && (simpleKeys || !allNullValues),
        indent: indent + indentStep
    });
    let keyCommentDone = false;
    let chompKeep = false;
    let str = stringify.stringify(key, ctx, () => (keyCommentDone = true), () => (chompKeep = true));
    if (!explicitKey && !ctx.inFlow && str.length > 1024) {
        if (simpleKeys)
            throw new Error('With simple keys, single line scalar must not span more than 1024 characters');
        explicitKey = true;
    }
    if (ctx.inFlow) {
        if (allNullValues || value == null) {
            if (keyCommentDone && onComment)
                onComment();
            return str === '' ? '?' : explicitKey ? `? ${str}` : str;
        }
    }
    else if ((allNullValues && !simpleKeys) || (value == null && explicitKey)) {
        str = `? ${str}`;
        if (keyComment && !keyCommentDone) {
            str += stringifyComment.lineComment(str, ctx.indent, commentString(keyComment));
        }
        else if (chompKeep && onChompKeep)
            onChompKeep();
        return str;
    }
    if (keyCommentDone)
        keyComment = null;
    if (explicitKey) {
        if (keyComment)
            str += stringifyComment.lineComment(str, ctx.indent, commentString(keyComment));
        str = `? ${str}\n${indent}:`;
    }
    else {
        str = `${str}:`;
        if (keyComment)
            str += stringifyComment.lineComment(str, ctx.indent, commentString(keyComment));
    }
    let vsb, vcb, valueComment;
    if (identity.isNode(value)) {
        vsb = !!value.spaceBefore;
        vcb = value.commentBefore;
        valueComment = value.comment;
    }
    else {
        vsb = false;
        vcb = null;
        valueComment = null;
        if (value && typeof value === 'object')
            value = doc.createNode(value);
    }
    ctx.implicitKey = false;
    if (!explicitKey && !keyComment && identity.isScalar(value))
        ctx.indentAtStart = str.length + 1;
    chompKeep = false;
    if (!indentSeq &&
        indentStep.length >= 2 &&
        !ctx.inFlow &&
        !explicitKey &&
        identity.isSeq(value) &&
        !value.flow &&
        !value.tag &&
        !value.anchor) {
        // If indentSeq === false, consider '- ' as part of indentation where possible
        ctx.indent = ctx.indent.substring(2);
    }
    let valueCommentDone = false;
    const valueStr = stringify.stringify(value, ctx, () => (valueCommentDone = true), () => (chompKeep = true));
    let ws = ' ';
    if (keyComment || vsb || vcb) {
        ws = vsb ? '\n' : '';
        if (vcb) {
            const cs = commentString(vcb);
            ws += `\n${stringifyComment.indentComment(cs, ctx.indent)}`;
        }
        if (valueStr === '' && !ctx.inFlow) {
            if (ws === '\n' && valueComment)
                ws = '\n\n';
        }
        else {
            ws += `\n${ctx.indent}`;
        }
    }
    else if (!explicitKey && identity.isCollection(value)) {
        const vs0 = valueStr[0];
        const nl0 = valueStr.indexOf('\n');
        const hasNewline = nl0 !== -1;
        const flow = ctx.inFlow ?? value.flow ?? value.items.length === 0;
        if (hasNewline || !flow) {
            let hasPropsLine = false;
            if (hasNewline && (vs0 === '&' || vs0 === '!')) {
                let sp0 = valueStr.indexOf(' ');
                if (vs0 === '&' &&
                    sp0 !== -1 &&
                    sp0 < nl0 &&
                    valueStr[sp0 + 1] === '!') {
                    sp0 = valueStr.indexOf(' ', sp0 + 1);
                }
                if (sp0 === -1 || nl0 < sp0)
                    hasPropsLine = true;
            }
            if (!hasPropsLine)
                ws = `\n${ctx.indent}`;
        }
    }
    else if (valueStr === '' || valueStr[0] === '\n') {
        ws = '';
    }
    str += ws + valueStr;
    if (ctx.inFlow) {
        if (valueCommentDone && onComment)
            onComment();
    }
    else if (valueComment && !valueCommentDone) {
        str += stringifyComment.lineComment(str, ctx.indent, commentString(valueComment));
    }
    else if (chompKeep && onChompKeep) {
        onChompKeep();
    }
    return str;
}

exports.stringifyPair = stringifyPair;


/***/ }),

/***/ 3069:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var Scalar = __nccwpck_require__(3301);
var foldFlowLines = __nccwpck_require__(4475);

const getFoldOptions = (ctx, isBlock) => ({
    indentAtStart: isBlock ? ctx.indent.length : ctx.indentAtStart,
    lineWidth: ctx.options.lineWidth,
    minContentWidth: ctx.options.minContentWidth
});
// Also checks for lines starting with %, as parsing the output as YAML 1.1 will
// presume that's starting a new document.
const containsDocumentMarker = (str) => /^(%|---|\.\.\.)/m.test(str);
function lineLengthOverLimit(str, lineWidth, indentLength) {
    if (!lineWidth || lineWidth < 0)
        return false;
    const limit = lineWidth - indentLength;
    const strLen = str.length;
    if (strLen <= limit)
        return false;
    for (let i = 0, start = 0; i < strLen; ++i) {
        if (str[i] === '\n') {
            if (i - start > limit)
                return true;
            start = i + 1;
            if (strLen - start <= limit)
                return false;
        }
    }
    return true;
}
function doubleQuotedString(value, ctx) {
    const json = JSON.stringify(value);
    if (ctx.options.doubleQuotedAsJSON)
        return json;
    const { implicitKey } = ctx;
    const minMultiLineLength = ctx.options.doubleQuotedMinMultiLineLength;
    const indent = ctx.indent || (containsDocumentMarker(value) ? '  ' : '');
    let str = '';
    let start = 0;
    for (let i = 0, ch = json[i]; ch; ch = json[++i]) {
        if (ch === ' ' && json[i + 1] === '\\' && json[i + 2] === 'n') {
            // space before newline needs to be escaped to not be folded
            str += json.slice(start, i) + '\\ ';
            i += 1;
            start = i;
            ch = '\\';
        }
        if (ch === '\\')
            switch (json[i + 1]) {
                case 'u':
                    {
                        str += json.slice(start, i);
                        const code = json.substr(i + 2, 4);
                        switch (code) {
                            case '0000':
                                str += '\\0';
                                break;
                            case '0007':
                                str += '\\a';
                                break;
                            case '000b':
                                str += '\\v';
                                break;
                            case '001b':
                                str += '\\e';
                                break;
                            case '0085':
                                str += '\\N';
                                break;
                            case '00a0':
                                str += '\\_';
                                break;
                            case '2028':
                                str += '\\L';
                                break;
                            case '2029':
                                str += '\\P';
                                break;
                            default:
                                if (code.substr(0, 2) === '00')
                                    str += '\\x' + code.substr(2);
                                else
                                    str += json.substr(i, 6);
                        }
                        i += 5;
                        start = i + 1;
                    }
                    break;
                case 'n':
                    if (implicitKey ||
                        json[i + 2] === '"' ||
                        json.length < minMultiLineLength) {
                        i += 1;
                    }
                    else {
                        // folding will eat first newline
                        str += json.slice(start, i) + '\n\n';
                        while (json[i + 2] === '\\' &&
                            json[i + 3] === 'n' &&
                            json[i + 4] !== '"') {
                            str += '\n';
                            i += 2;
                        }
                        str += indent;
                        // space after newline needs to be escaped to not be folded
                        if (json[i + 2] === ' ')
                            str += '\\';
                        i += 1;
                        start = i + 1;
                    }
                    break;
                default:
                    i += 1;
            }
    }
    str = start ? str + json.slice(start) : json;
    return implicitKey
        ? str
        : foldFlowLines.foldFlowLines(str, indent, foldFlowLines.FOLD_QUOTED, getFoldOptions(ctx, false));
}
function singleQuotedString(value, ctx) {
    if (ctx.options.singleQuote === false ||
        (ctx.implicitKey && value.includes('\n')) ||
        /[ \t]\n|\n[ \t]/.test(value) // single quoted string can't have leading or trailing whitespace around newline
    )
        return doubleQuotedString(value, ctx);
    const indent = ctx.indent || (containsDocumentMarker(value) ? '  ' : '');
    const res = "'" + value.replace(/'/g, "''").replace(/\n+/g, `$&\n${indent}`) + "'";
    return ctx.implicitKey
        ? res
        : foldFlowLines.foldFlowLines(res, indent, foldFlowLines.FOLD_FLOW, getFoldOptions(ctx, false));
}
function quotedString(value, ctx) {
    const { singleQuote } = ctx.options;
    let qs;
    if (singleQuote === false)
        qs = doubleQuotedString;
    else {
        const hasDouble = value.includes('"');
        const hasSingle = value.includes("'");
        if (hasDouble && !hasSingle)
            qs = singleQuotedString;
        else if (hasSingle && !hasDouble)
            qs = doubleQuotedString;
        else
            qs = singleQuote ? singleQuotedString : doubleQuotedString;
    }
    return qs(value, ctx);
}
// The negative lookbehind avoids a polynomial search,
// but isn't supported yet on Safari: https://caniuse.com/js-regexp-lookbehind
let blockEndNewlines;
try {
    blockEndNewlines = new RegExp('(^|(?<!\n))\n+(?!\n|$)', 'g');
}
catch {
    blockEndNewlines = /\n+(?!\n|$)/g;
}
function blockString({ comment, type, value }, ctx, onComment, onChompKeep) {
    const { blockQuote, commentString, lineWidth } = ctx.options;
    // 1. Block can't end in whitespace unless the last line is non-empty.
    // 2. Strings consisting of only whitespace are best rendered explicitly.
    if (!blockQuote || /\n[\t ]+$/.test(value)) {
        return quotedString(value, ctx);
    }
    const indent = ctx.indent ||
        (ctx.forceBlockIndent || containsDocumentMarker(value) ? '  ' : '');
    const literal = blockQuote === 'literal'
        ? true
        : blockQuote === 'folded' || type === Scalar.Scalar.BLOCK_FOLDED
            ? false
            : type === Scalar.Scalar.BLOCK_LITERAL
                ? true
                : !lineLengthOverLimit(value, lineWidth, indent.length);
    if (!value)
        return literal ? '|\n' : '>\n';
    // determine chomping from whitespace at value end
    let chomp;
    let endStart;
    for (endStart = value.length; endStart > 0; --endStart) {
        const ch = value[endStart - 1];
        if (ch !== '\n' && ch !== '\t' && ch !== ' ')
            break;
    }
    let end = value.substring(endStart);
    const endNlPos = end.indexOf('\n');
    if (endNlPos === -1) {
        chomp = '-'; // strip
    }
    else if (value === end || endNlPos !== end.length - 1) {
        chomp = '+'; // keep
        if (onChompKeep)
            onChompKeep();
    }
    else {
        chomp = ''; // clip
    }
    if (end) {
        value = value.slice(0, -end.length);
        if (end[end.length - 1] === '\n')
            end = end.slice(0, -1);
        end = end.replace(blockEndNewlines, `$&${indent}`);
    }
    // determine indent indicator from whitespace at value start
    let startWithSpace = false;
    let startEnd;
    let startNlPos = -1;
    for (startEnd = 0; startEnd < value.length; ++startEnd) {
        const ch = value[startEnd];
        if (ch === ' ')
            startWithSpace = true;
        else if (ch === '\n')
            startNlPos = startEnd;
        else
            break;
    }
    let start = value.substring(0, startNlPos < startEnd ? startNlPos + 1 : startEnd);
    if (start) {
        value = value.substring(start.length);
        start = start.replace(/\n+/g, `$&${indent}`);
    }
    const indentSize = indent ? '2' : '1'; // root is at -1
    // Leading | or > is added later
    let header = (startWithSpace ? indentSize : '') + chomp;
    if (comment) {
        header += ' ' + commentString(comment.replace(/ ?[\r\n]+/g, ' '));
        if (onComment)
            onComment();
    }
    if (!literal) {
        const foldedValue = value
            .replace(/\n+/g, '\n$&')
            .replace(/(?:^|\n)([\t ].*)(?:([\n\t ]*)\n(?![\n\t ]))?/g, '$1$2') // more-indented lines aren't folded
            //                ^ more-ind. ^ empty     ^ capture next empty lines only at end of indent
            .replace(/\n+/g, `$&${indent}`);
        let literalFallback = false;
        const foldOptions = getFoldOptions(ctx, true);
        if (blockQuote !== 'folded' && type !== Scalar.Scalar.BLOCK_FOLDED) {
            foldOptions.onOverflow = () => {
                literalFallback = true;
            };
        }
        const body = foldFlowLines.foldFlowLines(`${start}${foldedValue}${end}`, indent, foldFlowLines.FOLD_BLOCK, foldOptions);
        if (!literalFallback)
            return `>${header}\n${indent}${body}`;
    }
    value = value.replace(/\n+/g, `$&${indent}`);
    return `|${header}\n${indent}${start}${value}${end}`;
}
function plainString(item, ctx, onComment, onChompKeep) {
    const { type, value } = item;
    const { actualString, implicitKey, indent, indentStep, inFlow } = ctx;
    if ((implicitKey && value.includes('\n')) ||
        (inFlow && /[[\]{},]/.test(value))) {
        return quotedString(value, ctx);
    }
    if (/^[\n\t ,[\]{}#&*!|>'"%@`]|^[?-]$|^[?-][ \t]|[\n:][ \t]|[ \t]\n|[\n\t ]#|[\n\t :]$/.test(value)) {
        // not allowed:
        // - '-' or '?'
        // - start with an indicator character (except [?:-]) or /[?-] /
        // - '\n ', ': ' or ' \n' anywhere
        // - '#' not preceded by a non-space char
        // - end with ' ' or ':'
        return implicitKey || inFlow || !value.includes('\n')
            ? quotedString(value, ctx)
            : blockString(item, ctx, onComment, onChompKeep);
    }
    if (!implicitKey &&
        !inFlow &&
        type !== Scalar.Scalar.PLAIN &&
        value.includes('\n')) {
        // Where allowed & type not set explicitly, prefer block style for multiline strings
        return blockString(item, ctx, onComment, onChompKeep);
    }
    if (containsDocumentMarker(value)) {
        if (indent === '') {
            ctx.forceBlockIndent = true;
            return blockString(item, ctx, onComment, onChompKeep);
        }
        else if (implicitKey && indent === indentStep) {
            return quotedString(value, ctx);
        }
    }
    const str = value.replace(/\n+/g, `$&\n${indent}`);
    // Verify that output will be parsed as a string, as e.g. plain numbers and
    // booleans get parsed with those types in v1.2 (e.g. '42', 'true' & '0.9e-3'),
    // and others in v1.1.
    if (actualString) {
        const test = (tag) => tag.default && tag.tag !== 'tag:yaml.org,2002:str' && tag.test?.test(str);
        const { compat, tags } = ctx.doc.schema;
        if (tags.some(test) || compat?.some(test))
            return quotedString(value, ctx);
    }
    return implicitKey
        ? str
        : foldFlowLines.foldFlowLines(str, indent, foldFlowLines.FOLD_FLOW, getFoldOptions(ctx, false));
}
function stringifyString(item, ctx, onComment, onChompKeep) {
    const { implicitKey, inFlow } = ctx;
    const ss = typeof item.value === 'string'
        ? item
        : Object.assign({}, item, { value: String(item.value) });
    let { type } = item;
    if (type !== Scalar.Scalar.QUOTE_DOUBLE) {
        // force double quotes on control characters & unpaired surrogates
        if (/[\x00-\x08\x0b-\x1f\x7f-\x9f\u{D800}-\u{DFFF}]/u.test(ss.value))
            type = Scalar.Scalar.QUOTE_DOUBLE;
    }
    const _stringify = (_type) => {
        switch (_type) {
            case Scalar.Scalar.BLOCK_FOLDED:
            case Scalar.Scalar.BLOCK_LITERAL:
                return implicitKey || inFlow
                    ? quotedString(ss.value, ctx) // blocks are not valid inside flow containers
                    : blockString(ss, ctx, onComment, onChompKeep);
            case Scalar.Scalar.QUOTE_DOUBLE:
                return doubleQuotedString(ss.value, ctx);
            case Scalar.Scalar.QUOTE_SINGLE:
                return singleQuotedString(ss.value, ctx);
            case Scalar.Scalar.PLAIN:
                return plainString(ss, ctx, onComment, onChompKeep);
            default:
                return null;
        }
    };
    let res = _stringify(type);
    if (res === null) {
        const { defaultKeyType, defaultStringType } = ctx.options;
        const t = (implicitKey && defaultKeyType) || defaultStringType;
        res = _stringify(t);
        if (res === null)
            throw new Error(`Unsupported default string type ${t}`);
    }
    return res;
}

exports.stringifyString = stringifyString;


/***/ }),

/***/ 204:
/***/ ((__unused_webpack_module, exports, __nccwpck_require__) => {



var identity = __nccwpck_require__(1127);

const BREAK = Symbol('break visit');
const SKIP = Symbol('skip children');
const REMOVE = Symbol('remove node');
/**
 * Apply a visitor to an AST node or document.
 *
 * Walks through the tree (depth-first) starting from `node`, calling a
 * `visitor` function with three arguments:
 *   - `key`: For sequence values and map `Pair`, the node's index in the
 *     collection. Within a `Pair`, `'key'` or `'value'`, correspondingly.
 *     `null` for the root node.
 *   - `node`: The current node.
 *   - `path`: The ancestry of the current node.
 *
 * The return value of the visitor may be used to control the traversal:
 *   - `undefined` (default): Do nothing and continue
 *   - `visit.SKIP`: Do not visit the children of this node, continue with next
 *     sibling
 *   - `visit.BREAK`: Terminate traversal completely
 *   - `visit.REMOVE`: Remove the current node, then continue with the next one
 *   - `Node`: Replace the current node, then continue by visiting it
 *   - `number`: While iterating the items of a sequence or map, set the index
 *     of the next step. This is useful especially if the index of the current
 *     node has changed.
 *
 * If `visitor` is a single function, it will be called with all values
 * encountered in the tree, including e.g. `null` values. Alternatively,
 * separate visitor functions may be defined for each `Map`, `Pair`, `Seq`,
 * `Alias` and `Scalar` node. To define the same visitor function for more than
 * one node type, use the `Collection` (map and seq), `Value` (map, seq & scalar)
 * and `Node` (alias, map, seq & scalar) targets. Of all these, only the most
 * specific defined one will be used for each node.
 */
function visit(node, visitor) {
    const visitor_ = initVisitor(visitor);
    if (identity.isDocument(node)) {
        const cd = visit_(null, node.contents, visitor_, Object.freeze([node]));
        if (cd === REMOVE)
            node.contents = null;
    }
    else
        visit_(null, node, visitor_, Object.freeze([]));
}
// Without the `as symbol` casts, TS declares these in the `visit`
// namespace using `var`, but then complains about that because
// `unique symbol` must be `const`.
/** Terminate visit traversal completely */
visit.BREAK = BREAK;
/** Do not visit the children of the current node */
visit.SKIP = SKIP;
/** Remove the current node */
visit.REMOVE = REMOVE;
function visit_(key, node, visitor, path) {
    const ctrl = callVisitor(key, node, visitor, path);
    if (identity.isNode(ctrl) || identity.isPair(ctrl)) {
        replaceNode(key, path, ctrl);
        return visit_(key, ctrl, visitor, path);
    }
    if (typeof ctrl !== 'symbol') {
        if (identity.isCollection(node)) {
            path = Object.freeze(path.concat(node));
            for (let i = 0; i < node.items.length; ++i) {
                const ci = visit_(i, node.items[i], visitor, path);
                if (typeof ci === 'number')
                    i = ci - 1;
                else if (ci === BREAK)
                    return BREAK;
                else if (ci === REMOVE) {
                    node.items.splice(i, 1);
                    i -= 1;
                }
            }
        }
        else if (identity.isPair(node)) {
            path = Object.freeze(path.concat(node));
            const ck = visit_('key', node.key, visitor, path);
            if (ck === BREAK)
                return BREAK;
            else if (ck === REMOVE)
                node.key = null;
            const cv = visit_('value', node.value, visitor, path);
            if (cv === BREAK)
                return BREAK;
            else if (cv === REMOVE)
                node.value = null;
        }
    }
    return ctrl;
}
/**
 * Apply an async visitor to an AST node or document.
 *
 * Walks through the tree (depth-first) starting from `node`, calling a
 * `visitor` function with three arguments:
 *   - `key`: For sequence values and map `Pair`, the node's index in the
 *     collection. Within a `Pair`, `'key'` or `'value'`, correspondingly.
 *     `null` for the root node.
 *   - `node`: The current node.
 *   - `path`: The ancestry of the current node.
 *
 * The return value of the visitor may be used to control the traversal:
 *   - `Promise`: Must resolve to one of the following values
 *   - `undefined` (default): Do nothing and continue
 *   - `visit.SKIP`: Do not visit the children of this node, continue with next
 *     sibling
 *   - `visit.BREAK`: Terminate traversal completely
 *   - `visit.REMOVE`: Remove the current node, then continue with the next one
 *   - `Node`: Replace the current node, then continue by visiting it
 *   - `number`: While iterating the items of a sequence or map, set the index
 *     of the next step. This is useful especially if the index of the current
 *     node has changed.
 *
 * If `visitor` is a single function, it will be called with all values
 * encountered in the tree, including e.g. `null` values. Alternatively,
 * separate visitor functions may be defined for each `Map`, `Pair`, `Seq`,
 * `Alias` and `Scalar` node. To define the same visitor function for more than
 * one node type, use the `Collection` (map and seq), `Value` (map, seq & scalar)
 * and `Node` (alias, map, seq & scalar) targets. Of all these, only the most
 * specific defined one will be used for each node.
 */
async function visitAsync(node, visitor) {
    const visitor_ = initVisitor(visitor);
    if (identity.isDocument(node)) {
        const cd = await visitAsync_(null, node.contents, visitor_, Object.freeze([node]));
        if (cd === REMOVE)
            node.contents = null;
    }
    else
        await visitAsync_(null, node, visitor_, Object.freeze([]));
}
// Without the `as symbol` casts, TS declares these in the `visit`
// namespace using `var`, but then complains about that because
// `unique symbol` must be `const`.
/** Terminate visit traversal completely */
visitAsync.BREAK = BREAK;
/** Do not visit the children of the current node */
visitAsync.SKIP = SKIP;
/** Remove the current node */
visitAsync.REMOVE = REMOVE;
async function visitAsync_(key, node, visitor, path) {
    const ctrl = await callVisitor(key, node, visitor, path);
    if (identity.isNode(ctrl) || identity.isPair(ctrl)) {
        replaceNode(key, path, ctrl);
        return visitAsync_(key, ctrl, visitor, path);
    }
    if (typeof ctrl !== 'symbol') {
        if (identity.isCollection(node)) {
            path = Object.freeze(path.concat(node));
            for (let i = 0; i < node.items.length; ++i) {
                const ci = await visitAsync_(i, node.items[i], visitor, path);
                if (typeof ci === 'number')
                    i = ci - 1;
                else if (ci === BREAK)
                    return BREAK;
                else if (ci === REMOVE) {
                    node.items.splice(i, 1);
                    i -= 1;
                }
            }
        }
        else if (identity.isPair(node)) {
            path = Object.freeze(path.concat(node));
            const ck = await visitAsync_('key', node.key, visitor, path);
            if (ck === BREAK)
                return BREAK;
            else if (ck === REMOVE)
                node.key = null;
            const cv = await visitAsync_('value', node.value, visitor, path);
            if (cv === BREAK)
                return BREAK;
            else if (cv === REMOVE)
                node.value = null;
        }
    }
    return ctrl;
}
function initVisitor(visitor) {
    if (typeof visitor === 'object' &&
        (visitor.Collection || visitor.Node || visitor.Value)) {
        return Object.assign({
            Alias: visitor.Node,
            Map: visitor.Node,
            Scalar: visitor.Node,
            Seq: visitor.Node
        }, visitor.Value && {
            Map: visitor.Value,
            Scalar: visitor.Value,
            Seq: visitor.Value
        }, visitor.Collection && {
            Map: visitor.Collection,
            Seq: visitor.Collection
        }, visitor);
    }
    return visitor;
}
function callVisitor(key, node, visitor, path) {
    if (typeof visitor === 'function')
        return visitor(key, node, path);
    if (identity.isMap(node))
        return visitor.Map?.(key, node, path);
    if (identity.isSeq(node))
        return visitor.Seq?.(key, node, path);
    if (identity.isPair(node))
        return visitor.Pair?.(key, node, path);
    if (identity.isScalar(node))
        return visitor.Scalar?.(key, node, path);
    if (identity.isAlias(node))
        return visitor.Alias?.(key, node, path);
    return undefined;
}
function replaceNode(key, path, node) {
    const parent = path[path.length - 1];
    if (identity.isCollection(parent)) {
        parent.items[key] = node;
    }
    else if (identity.isPair(parent)) {
        if (key === 'key')
            parent.key = node;
        else
            parent.value = node;
    }
    else if (identity.isDocument(parent)) {
        parent.contents = node;
    }
    else {
        const pt = identity.isAlias(parent) ? 'alias' : 'scalar';
        throw new Error(`Cannot replace node with ${pt} parent`);
    }
}

exports.visit = visit;
exports.visitAsync = visitAsync;


/***/ }),

/***/ 5847:
/***/ ((module) => {

module.exports = /*#__PURE__*/JSON.parse('{"name":"thread-stream","version":"4.2.1","description":"A streaming way to send data to a Node.js Worker Thread","main":"index.js","types":"index.d.ts","engines":{"node":">=20"},"dependencies":{"real-require":"^1.0.0"},"devDependencies":{"@types/node":"^26.1.1","@yao-pkg/pkg":"^6.0.0","borp":"^1.0.0","desm":"^1.3.0","eslint":"^9.39.1","fastbench":"^1.0.1","neostandard":"^0.13.0","pino-elasticsearch":"^9.0.0","sonic-boom":"^5.0.0","ts-node":"^10.8.0","tsd":"^0.33.0","typescript":"~5.7.3"},"scripts":{"build":"tsc --noEmit","lint":"eslint","test":"npm run lint && npm run build && npm run test:types && npm run transpile && borp --expose-gc --pattern \\"test/*.test.{js,mjs}\\"","test:ci":"npm run lint && npm run test:types && npm run transpile && borp --expose-gc --pattern \\"test/*.test.{js,mjs}\\"","test:types":"tsd","test:yarn":"npm run transpile && borp --expose-gc --pattern \\"test/*.test.js\\"","transpile":"sh ./test/ts/transpile.sh"},"tsd":{"directory":"test/types"},"repository":{"type":"git","url":"git+https://github.com/mcollina/thread-stream.git"},"keywords":["worker","thread","threads","stream"],"author":"Matteo Collina <hello@matteocollina.com>","license":"MIT","bugs":{"url":"https://github.com/mcollina/thread-stream/issues"},"homepage":"https://github.com/mcollina/thread-stream#readme"}');

/***/ })

/******/ });
/************************************************************************/
/******/ // The module cache
/******/ var __webpack_module_cache__ = {};
/******/ 
/******/ // The require function
/******/ function __nccwpck_require__(moduleId) {
/******/ 	// Check if module is in cache
/******/ 	var cachedModule = __webpack_module_cache__[moduleId];
/******/ 	if (cachedModule !== undefined) {
/******/ 		return cachedModule.exports;
/******/ 	}
/******/ 	// Create a new module (and put it into the cache)
/******/ 	var module = __webpack_module_cache__[moduleId] = {
/******/ 		// no module.id needed
/******/ 		// no module.loaded needed
/******/ 		exports: {}
/******/ 	};
/******/ 
/******/ 	// Execute the module function
/******/ 	var threw = true;
/******/ 	try {
/******/ 		__webpack_modules__[moduleId].call(module.exports, module, module.exports, __nccwpck_require__);
/******/ 		threw = false;
/******/ 	} finally {
/******/ 		if(threw) delete __webpack_module_cache__[moduleId];
/******/ 	}
/******/ 
/******/ 	// Return the exports of the module
/******/ 	return module.exports;
/******/ }
/******/ 
/******/ // expose the modules object (__webpack_modules__)
/******/ __nccwpck_require__.m = __webpack_modules__;
/******/ 
/************************************************************************/
/******/ /* webpack/runtime/asset-relocator-loader */
/******/ if (typeof __nccwpck_require__ !== 'undefined') __nccwpck_require__.ab = decodeURIComponent(new URL('.', import.meta.url).pathname).slice(import.meta.url.match(/^file:\/\/\/\w:/) ? 1 : 0, -1) + "/";
/******/ 
/******/ /* webpack/runtime/async module */
/******/ (() => {
/******/ 	var webpackQueues = typeof Symbol === "function" ? Symbol("webpack queues") : "__webpack_queues__";
/******/ 	var webpackExports = typeof Symbol === "function" ? Symbol("webpack exports") : "__webpack_exports__";
/******/ 	var webpackError = typeof Symbol === "function" ? Symbol("webpack error") : "__webpack_error__";
/******/ 	var resolveQueue = (queue) => {
/******/ 		if(queue && queue.d < 1) {
/******/ 			queue.d = 1;
/******/ 			queue.forEach((fn) => (fn.r--));
/******/ 			queue.forEach((fn) => (fn.r-- ? fn.r++ : fn()));
/******/ 		}
/******/ 	}
/******/ 	var wrapDeps = (deps) => (deps.map((dep) => {
/******/ 		if(dep !== null && typeof dep === "object") {
/******/ 			if(dep[webpackQueues]) return dep;
/******/ 			if(dep.then) {
/******/ 				var queue = [];
/******/ 				queue.d = 0;
/******/ 				dep.then((r) => {
/******/ 					obj[webpackExports] = r;
/******/ 					resolveQueue(queue);
/******/ 				}, (e) => {
/******/ 					obj[webpackError] = e;
/******/ 					resolveQueue(queue);
/******/ 				});
/******/ 				var obj = {};
/******/ 				obj[webpackQueues] = (fn) => (fn(queue));
/******/ 				return obj;
/******/ 			}
/******/ 		}
/******/ 		var ret = {};
/******/ 		ret[webpackQueues] = x => {};
/******/ 		ret[webpackExports] = dep;
/******/ 		return ret;
/******/ 	}));
/******/ 	__nccwpck_require__.a = (module, body, hasAwait) => {
/******/ 		var queue;
/******/ 		hasAwait && ((queue = []).d = -1);
/******/ 		var depQueues = new Set();
/******/ 		var exports = module.exports;
/******/ 		var currentDeps;
/******/ 		var outerResolve;
/******/ 		var reject;
/******/ 		var promise = new Promise((resolve, rej) => {
/******/ 			reject = rej;
/******/ 			outerResolve = resolve;
/******/ 		});
/******/ 		promise[webpackExports] = exports;
/******/ 		promise[webpackQueues] = (fn) => (queue && fn(queue), depQueues.forEach(fn), promise["catch"](x => {}));
/******/ 		module.exports = promise;
/******/ 		body((deps) => {
/******/ 			currentDeps = wrapDeps(deps);
/******/ 			var fn;
/******/ 			var getResult = () => (currentDeps.map((d) => {
/******/ 				if(d[webpackError]) throw d[webpackError];
/******/ 				return d[webpackExports];
/******/ 			}))
/******/ 			var promise = new Promise((resolve) => {
/******/ 				fn = () => (resolve(getResult));
/******/ 				fn.r = 0;
/******/ 				var fnQueue = (q) => (q !== queue && !depQueues.has(q) && (depQueues.add(q), q && !q.d && (fn.r++, q.push(fn))));
/******/ 				currentDeps.map((dep) => (dep[webpackQueues](fnQueue)));
/******/ 			});
/******/ 			return fn.r ? promise : getResult();
/******/ 		}, (err) => ((err ? reject(promise[webpackError] = err) : outerResolve(exports)), resolveQueue(queue)));
/******/ 		queue && queue.d < 0 && (queue.d = 0);
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/compat get default export */
/******/ (() => {
/******/ 	// getDefaultExport function for compatibility with non-harmony modules
/******/ 	__nccwpck_require__.n = (module) => {
/******/ 		var getter = module && module.__esModule ?
/******/ 			() => (module['default']) :
/******/ 			() => (module);
/******/ 		__nccwpck_require__.d(getter, { a: getter });
/******/ 		return getter;
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/create fake namespace object */
/******/ (() => {
/******/ 	var getProto = Object.getPrototypeOf ? (obj) => (Object.getPrototypeOf(obj)) : (obj) => (obj.__proto__);
/******/ 	var leafPrototypes;
/******/ 	// create a fake namespace object
/******/ 	// mode & 1: value is a module id, require it
/******/ 	// mode & 2: merge all properties of value into the ns
/******/ 	// mode & 4: return value when already ns object
/******/ 	// mode & 16: return value when it's Promise-like
/******/ 	// mode & 8|1: behave like require
/******/ 	__nccwpck_require__.t = function(value, mode) {
/******/ 		if(mode & 1) value = this(value);
/******/ 		if(mode & 8) return value;
/******/ 		if(typeof value === 'object' && value) {
/******/ 			if((mode & 4) && value.__esModule) return value;
/******/ 			if((mode & 16) && typeof value.then === 'function') return value;
/******/ 		}
/******/ 		var ns = Object.create(null);
/******/ 		__nccwpck_require__.r(ns);
/******/ 		var def = {};
/******/ 		leafPrototypes = leafPrototypes || [null, getProto({}), getProto([]), getProto(getProto)];
/******/ 		for(var current = mode & 2 && value; typeof current == 'object' && !~leafPrototypes.indexOf(current); current = getProto(current)) {
/******/ 			Object.getOwnPropertyNames(current).forEach((key) => (def[key] = () => (value[key])));
/******/ 		}
/******/ 		def['default'] = () => (value);
/******/ 		__nccwpck_require__.d(ns, def);
/******/ 		return ns;
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/define property getters */
/******/ (() => {
/******/ 	// define getter functions for harmony exports
/******/ 	__nccwpck_require__.d = (exports, definition) => {
/******/ 		for(var key in definition) {
/******/ 			if(__nccwpck_require__.o(definition, key) && !__nccwpck_require__.o(exports, key)) {
/******/ 				Object.defineProperty(exports, key, { enumerable: true, get: definition[key] });
/******/ 			}
/******/ 		}
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/ensure chunk */
/******/ (() => {
/******/ 	__nccwpck_require__.f = {};
/******/ 	// This file contains only the entry chunk.
/******/ 	// The chunk loading function for additional chunks
/******/ 	__nccwpck_require__.e = (chunkId) => {
/******/ 		return Promise.all(Object.keys(__nccwpck_require__.f).reduce((promises, key) => {
/******/ 			__nccwpck_require__.f[key](chunkId, promises);
/******/ 			return promises;
/******/ 		}, []));
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/get javascript chunk filename */
/******/ (() => {
/******/ 	// This function allow to reference async chunks
/******/ 	__nccwpck_require__.u = (chunkId) => {
/******/ 		// return url for filenames based on template
/******/ 		return "" + chunkId + ".index.js";
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/hasOwnProperty shorthand */
/******/ (() => {
/******/ 	__nccwpck_require__.o = (obj, prop) => (Object.prototype.hasOwnProperty.call(obj, prop))
/******/ })();
/******/ 
/******/ /* webpack/runtime/make namespace object */
/******/ (() => {
/******/ 	// define __esModule on exports
/******/ 	__nccwpck_require__.r = (exports) => {
/******/ 		if(typeof Symbol !== 'undefined' && Symbol.toStringTag) {
/******/ 			Object.defineProperty(exports, Symbol.toStringTag, { value: 'Module' });
/******/ 		}
/******/ 		Object.defineProperty(exports, '__esModule', { value: true });
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/import chunk loading */
/******/ (() => {
/******/ 	// no baseURI
/******/ 	
/******/ 	// object to store loaded and loading chunks
/******/ 	// undefined = chunk not loaded, null = chunk preloaded/prefetched
/******/ 	// [resolve, Promise] = chunk loading, 0 = chunk loaded
/******/ 	var installedChunks = {
/******/ 		792: 0
/******/ 	};
/******/ 	
/******/ 	var installChunk = (data) => {
/******/ 		var {ids, modules, runtime} = data;
/******/ 		// add "modules" to the modules object,
/******/ 		// then flag all "ids" as loaded and fire callback
/******/ 		var moduleId, chunkId, i = 0;
/******/ 		for(moduleId in modules) {
/******/ 			if(__nccwpck_require__.o(modules, moduleId)) {
/******/ 				__nccwpck_require__.m[moduleId] = modules[moduleId];
/******/ 			}
/******/ 		}
/******/ 		if(runtime) runtime(__nccwpck_require__);
/******/ 		for(;i < ids.length; i++) {
/******/ 			chunkId = ids[i];
/******/ 			if(__nccwpck_require__.o(installedChunks, chunkId) && installedChunks[chunkId]) {
/******/ 				installedChunks[chunkId][0]();
/******/ 			}
/******/ 			installedChunks[ids[i]] = 0;
/******/ 		}
/******/ 	
/******/ 	}
/******/ 	
/******/ 	__nccwpck_require__.f.j = (chunkId, promises) => {
/******/ 			// import() chunk loading for javascript
/******/ 			var installedChunkData = __nccwpck_require__.o(installedChunks, chunkId) ? installedChunks[chunkId] : undefined;
/******/ 			if(installedChunkData !== 0) { // 0 means "already installed".
/******/ 	
/******/ 				// a Promise means "currently loading".
/******/ 				if(installedChunkData) {
/******/ 					promises.push(installedChunkData[1]);
/******/ 				} else {
/******/ 					if(true) { // all chunks have JS
/******/ 						// setup Promise in chunk cache
/******/ 						var promise = import("./" + __nccwpck_require__.u(chunkId)).then(installChunk, (e) => {
/******/ 							if(installedChunks[chunkId] !== 0) installedChunks[chunkId] = undefined;
/******/ 							throw e;
/******/ 						});
/******/ 						var promise = Promise.race([promise, new Promise((resolve) => (installedChunkData = installedChunks[chunkId] = [resolve]))])
/******/ 						promises.push(installedChunkData[1] = promise);
/******/ 					}
/******/ 				}
/******/ 			}
/******/ 	};
/******/ 	
/******/ 	// no prefetching
/******/ 	
/******/ 	// no preloaded
/******/ 	
/******/ 	// no external install chunk
/******/ 	
/******/ 	// no on chunks loaded
/******/ })();
/******/ 
/************************************************************************/
/******/ 
/******/ // startup
/******/ // Load entry module and return exports
/******/ // This entry module used 'module' so it can't be inlined
/******/ var __webpack_exports__ = __nccwpck_require__(9921);
/******/ __webpack_exports__ = await __webpack_exports__;
/******/ 
