'use strict';
/**
 * Dispatch's Node.js function server: runs the function's handler once per request.
 *
 * Self-contained on purpose (Node.js >= 18 built-ins only): it is copied into function
 * images as is and run by every driver, with the same command line as the Python server:
 *
 *     node [--max-old-space-size=MB] server.js [--handler FILE.js | --stem] --dir /function [--socket PATH | --port N]
 *
 * The handler is `module.exports = function (context, payload) {...}` returning a value
 * or a Promise. `--handler` names its file (`hello.js`, `./lib/hello.js`, `hello`), or an
 * export of it (`hello.handle` is `exports.handle` of hello.js); ES modules (`.mjs`)
 * work too, through their default or named export.
 *
 * Protocols spoken (one invocation at a time; `GET /healthz` is answered at once):
 *
 * - Dispatch: `GET /healthz` -> `{}`; `POST /` with `{"context", "payload"}` ->
 *   `{"context": {"logs": {"stdout", "stderr"}, "error"}, "payload"}`.
 * - OpenWhisk actions (`docs/actions-new.md`): `POST /init` with `{"value": {name, main,
 *   code, binary, env}}`, accepted once (a second is a 403). With `--handler` (a blackbox
 *   action: the function is in the image) it only applies `env`; without it (a native
 *   `nodejs:*` action) `code` is the action: a base64 zip when `binary` (its
 *   `package.json` `main`, else `index.js`; `node_modules/` beside it) or the source of
 *   one file, and `main` names the exported entry function `main(args)`; a failure is a
 *   502 `{"error": "..."}`. `POST /run` with `{"value", "namespace", "action_name",
 *   "activation_id", "transaction_id", "deadline", ...}` sets each field but `value` as
 *   `__OW_<FIELD>` in the environment and answers the result object or `{"error": ...}`;
 *   the activation's output goes to stdout/stderr, each ended by the line
 *   `XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX`. With `--handler`, a `value` of exactly
 *   `{context, payload}` is answered as `POST /` is (plus a top-level `error` when the
 *   function failed, so that OpenWhisk records an application error).
 *
 * Output of an invocation: when fds 1 and 2 already are the files `stdout` and `stderr`
 * beside `--socket` (the local driver opens them so), they are truncated before and read
 * after each invocation, which captures everything: console, process.stdout/stderr,
 * child processes, V8's own fatal messages. Otherwise (a container's port) only
 * `process.stdout.write` / `process.stderr.write` (and so `console`) are captured, in
 * memory: what child processes write to the inherited descriptors is not, because Node
 * cannot redirect its own descriptors (it has no dup2).
 *
 * Limits: a result whose JSON is over 1 MB is refused; logs are capped at 64 KB per
 * stream (marked `... [truncated]`). `--memory-mb` and `--file-mb` are accepted for
 * symmetry with the Python server, but Node can neither lower its own heap limit once
 * started nor set rlimits: the launcher passes `--max-old-space-size` to node and applies
 * the rest (the local driver uses rlimits and cgroups).
 *
 * A handler that cannot be loaded: one line saying why on stderr (prefixed
 * `dispatch-runtime: handler error:`) and exit code 3. Exit codes: 0 after SIGTERM (the
 * request in flight is finished first) or when the lifeline fd reaches EOF, 2 bad usage.
 *
 * `--stem` starts a pre-warmed "stem cell": node and this server are loaded, the function
 * is not yet known. Its one `POST /init` with `{"value": {"main": "FILE.js"}}` loads the
 * handler from `--dir` (filled meanwhile by the driver) as `--handler` would have at
 * start-up; a handler that cannot be loaded is a 502 `{"error": "<the reason>"}`.
 */

const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');
const os = require('os');
const util = require('util');
const zlib = require('zlib');
const { createRequire } = require('module');
const { pathToFileURL } = require('url');

const EXIT_USAGE = 2;
const EXIT_HANDLER_ERROR = 3;
/** the per-stream cap on captured log bytes of one invocation */
const LOG_CAP_BYTES = 64 * 1024;
/** the largest result, as JSON, a function may return */
const OUTPUT_CAP_BYTES = 1024 * 1024;
const TRUNCATED_MARK = '... [truncated]';
const OPENWHISK_SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
const FLAGS = ['handler', 'dir', 'socket', 'port', 'ready-fd', 'lifeline-fd', 'memory-mb', 'file-mb', 'stem'];
/** flags that take no value */
const SWITCHES = ['stem'];

class HandlerError extends Error {}

function parseArgs(argv) {
  const args = { dir: '/function', port: Number(process.env.PORT || 8080) };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].startsWith('--') ? argv[i].slice(2).split(/=(.*)/s) : [argv[i]];
    if (!FLAGS.includes(flag)) usage(`unrecognized argument: ${argv[i]}`);
    if (SWITCHES.includes(flag)) {
      args[flag] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`--${flag} needs a value`);
      value = argv[++i];
    }
    args[flag.replace(/-(.)/g, (_, c) => c.toUpperCase())] = value;
  }
  for (const key of ['port', 'readyFd', 'lifelineFd', 'memoryMb', 'fileMb']) {
    if (args[key] !== undefined && !/^\d+$/.test(String(args[key]))) usage(`--${key} must be a number`);
    if (args[key] !== undefined) args[key] = Number(args[key]);
  }
  return args;
}

function usage(message) {
  process.stderr.write(`usage: server.js [--handler FILE.js] --dir DIR [--socket PATH | --port N]\nserver.js: error: ${message}\n`);
  process.exit(EXIT_USAGE);
}

/** Split `hello.js` / `./lib/hello` (module.exports) from `hello.handle` (an export). */
function parseHandlerSpec(spec) {
  const base = spec.slice(spec.lastIndexOf('/') + 1);
  if (!base || base === '.' || base === '..') throw new HandlerError(`handler '${spec}' must be FILE.js or FILE.EXPORT`);
  if (/\.[cm]?js$/.test(base) || !base.slice(1).includes('.')) return { file: spec, name: null };
  const dot = spec.lastIndexOf('.');
  const [file, name] = [spec.slice(0, dot), spec.slice(dot + 1)];
  if (!file || !name) throw new HandlerError(`handler '${spec}' must be FILE.js or FILE.EXPORT`);
  return { file, name };
}

/** Load the handler from `directory`: resolves to `(context, payload) => result`. */
async function loadHandler(spec, directory) {
  const { file, name } = parseHandlerSpec(spec);
  // relative to the function's directory, never a package from node_modules
  const target = path.isAbsolute(file) || /^\.\.?\//.test(file) ? file : `./${file}`;
  const req = createRequire(path.join(directory, '__dispatch__.js'));
  let resolved;
  for (const candidate of [target, `${target}.mjs`]) { // require() does not look for .mjs
    try {
      resolved = req.resolve(candidate);
      break;
    } catch (err) { /* the next candidate */ }
  }
  if (!resolved) throw new HandlerError(`handler module '${file}' not found`);
  let exported;
  try {
    exported = req(resolved);
  } catch (err) {
    // an ES module require() cannot load (top-level await; any, before Node 20.19)
    if (!err || !['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE'].includes(err.code)) throw loadError(err, file, directory);
    exported = await import(pathToFileURL(resolved).href).catch((e) => { throw loadError(e, file, directory); });
  }
  // an ES module, through import() or (Node >= 20.19) require(): its default export
  if (name === null && util.types.isModuleNamespaceObject(exported)) exported = exported.default;
  if (name === null) {
    if (typeof exported !== 'function') {
      throw new HandlerError(`handler '${spec}' is not a function: module.exports is ${describeType(exported)}`);
    }
    return (context, payload) => exported(context, payload);
  }
  if (exported === null || exported === undefined || !(name in Object(exported))) {
    throw new HandlerError(`module '${file}' has no export '${name}'`);
  }
  if (typeof exported[name] !== 'function') throw new HandlerError(`handler '${spec}' is not a function`);
  return (context, payload) => exported[name](context, payload);
}

function loadError(err, file, directory) {
  if (err instanceof SyntaxError && typeof err.stack === 'string') {
    // the first stack line of a compile error is "<path>:<line>"
    const where = /^(.*):(\d+)$/.exec(err.stack.split('\n')[0]);
    if (where) {
      let shown = where[1];
      if (shown.startsWith(path.resolve(directory) + path.sep)) shown = path.relative(directory, shown);
      return new HandlerError(`SyntaxError in ${shown} line ${where[2]}: ${oneLine(err.message)}`);
    }
  }
  const kind = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? String(err.message).split('\n')[0] : util.inspect(err);
  return new HandlerError(`${kind} while loading '${file}': ${message}`);
}

function describeType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function oneLine(text) {
  return String(text).replace(/\s*\n\s*/g, ' ');
}

/** Captures through the descriptors: fds 1 and 2 are files this process may truncate. */
class FileCapture {
  constructor(directory) {
    this.readers = ['stdout', 'stderr'].map((n) => fs.openSync(path.join(directory, n), 'r'));
    this.memory = false;
  }

  start() {
    fs.ftruncateSync(1, 0); // opened O_APPEND by the launcher: writes go to the new end
    fs.ftruncateSync(2, 0);
  }

  stop() {
    return this.readers.map((fd) => {
      const size = fs.fstatSync(fd).size;
      const data = Buffer.alloc(Math.min(size, LOG_CAP_BYTES));
      if (data.length) fs.readSync(fd, data, 0, data.length, 0);
      return { data, truncated: size > LOG_CAP_BYTES };
    });
  }

  static usable(socketPath) {
    if (!socketPath) return false;
    try {
      return ['stdout', 'stderr'].every((n, fd) => {
        const [own, file] = [fs.fstatSync(fd + 1), fs.statSync(path.join(path.dirname(socketPath), n))];
        return own.isFile() && own.dev === file.dev && own.ino === file.ino;
      });
    } catch (err) {
      return false;
    }
  }
}

/** Captures what goes through process.stdout/stderr.write (console included), in memory. */
class MemoryCapture {
  constructor() {
    this.memory = true;
    this.streams = [process.stdout, process.stderr].map((stream) => {
      const state = { original: stream.write, chunks: [], kept: 0, size: 0, active: false, passThrough: false };
      stream.write = function write(chunk, encoding, callback) {
        if (!state.active) return state.original.apply(this, arguments);
        if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding || 'utf8') : Buffer.from(chunk);
        state.size += buf.length;
        if (state.kept < LOG_CAP_BYTES) {
          const part = buf.subarray(0, LOG_CAP_BYTES - state.kept);
          state.chunks.push(part);
          state.kept += part.length;
          // an OpenWhisk activation: out at once, in order with what child processes write
          if (state.passThrough) state.original.call(this, part);
        }
        if (typeof callback === 'function') process.nextTick(callback);
        return true;
      };
      return state;
    });
  }

  start(passThrough = false) {
    for (const s of this.streams) Object.assign(s, { chunks: [], kept: 0, size: 0, active: true, passThrough });
  }

  stop() {
    return this.streams.map((s) => {
      s.active = false;
      return { data: Buffer.concat(s.chunks), truncated: s.size > LOG_CAP_BYTES };
    });
  }

  /** Write to the real descriptor (the OpenWhisk log protocol). */
  writeThrough(index, text) {
    this.streams[index].original.call(index ? process.stderr : process.stdout, text);
  }
}

function logLines({ data, truncated }) {
  const text = data.toString('utf8');
  const lines = text ? text.split(/\r\n|\r|\n/) : [];
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (truncated) lines.push(TRUNCATED_MARK);
  return lines;
}

/** Dispatch's error object for a value the handler threw or rejected with. */
function functionError(err) {
  if (err instanceof Error || (err && typeof err === 'object' && typeof err.stack === 'string')) {
    const name = err.name || 'Error';
    const message = oneLine(err.message === undefined ? '' : err.message);
    const stack = [];
    for (const line of String(err.stack).split('\n')) {
      if (line.includes(__filename)) break; // the runtime's own frames, and its callers
      if (!line.includes('(node:internal/')) stack.push(line);
    }
    return { type: 'FunctionError', message: message ? `${name}: ${message}` : name, stacktrace: stack };
  }
  const shown = typeof err === 'string' ? err : util.inspect(err, { depth: 2, breakLength: Infinity });
  return { type: 'FunctionError', message: `a non-Error value was thrown: ${oneLine(shown)}`, stacktrace: [] };
}

function outputError(message) {
  return { type: 'FunctionError', message, stacktrace: [] };
}

/** `{text}` of a result's JSON, or `{error}` when it cannot or may not be returned. */
function encodeResult(result, subject = "the function's output") {
  let text;
  try {
    text = JSON.stringify(result);
  } catch (err) {
    return { error: outputError(`${subject} is not JSON-serializable: ${err.name}: ${oneLine(err.message)}`) };
  }
  if (text === undefined) text = 'null'; // undefined, a function or a symbol: no value
  const size = Buffer.byteLength(text);
  if (size > OUTPUT_CAP_BYTES) {
    return { error: outputError(`output is larger than ${OUTPUT_CAP_BYTES} bytes: the function returned ${size} bytes of JSON`) };
  }
  return { text };
}

/** The files of a zip archive (stored or deflated entries): `[{name, data}]`. */
function readZip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new HandlerError('the action\'s code is not a zip archive');
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const files = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new HandlerError('the action\'s zip has a bad central directory');
    const [method, size, nameLen, extraLen, commentLen] = [buf.readUInt16LE(at + 10), buf.readUInt32LE(at + 20),
      buf.readUInt16LE(at + 28), buf.readUInt16LE(at + 30), buf.readUInt16LE(at + 32)];
    const local = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLen);
    at += 46 + nameLen + extraLen + commentLen;
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + size);
    if (name.endsWith('/')) continue;
    if (method !== 0 && method !== 8) throw new HandlerError(`zip entry ${name}: compression method ${method} is not supported`);
    files.push({ name, data: method === 8 ? zlib.inflateRawSync(raw) : raw });
  }
  return files;
}

/** An OpenWhisk native action's entry function, from `/init`'s `value` (see the top). */
function loadAction(value) {
  const code = value.code;
  if (!code || typeof code !== 'string') throw new HandlerError('Missing main/no code to execute.');
  const main = value.main || 'main';
  if (!/^[A-Za-z_$][\w$]*$/.test(main)) throw new HandlerError(`main ${JSON.stringify(main)} is not a function name`);
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'dispatch-action-'));
  let entry;
  if (value.binary) {
    for (const { name, data } of readZip(Buffer.from(code, 'base64'))) {
      const target = path.resolve(directory, name);
      if (!target.startsWith(directory + path.sep)) throw new HandlerError(`zip entry ${name} leaves the action's directory`);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, data);
    }
    let pkgMain = 'index.js';
    try {
      pkgMain = JSON.parse(fs.readFileSync(path.join(directory, 'package.json'), 'utf8')).main || pkgMain;
    } catch (err) { /* no package.json: index.js */ }
    entry = path.resolve(directory, pkgMain);
    if (!fs.existsSync(entry)) throw new HandlerError(`Zip file does not include ${pkgMain}`);
  } else {
    entry = path.join(directory, 'index.js');
    fs.writeFileSync(entry, `${code}\nif (typeof ${main} === 'function') module.exports.${main} = ${main};\n`);
  }
  process.chdir(directory);
  let exported;
  try {
    exported = require(entry);
  } catch (err) {
    throw new HandlerError(`${err && err.name}: ${oneLine(err && err.message)} (while loading the action)`);
  }
  const fn = exported && (typeof exported === 'function' && main === 'main' && !exported.main ? exported : exported[main]);
  if (typeof fn !== 'function') throw new HandlerError(`the action has no function '${main}'`);
  return fn;
}

/** Write one activation's output, each stream ended by OpenWhisk's sentinel line. */
function writeActivationLogs(capture, out, err) {
  [out, err].forEach((captured, index) => {
    if (!capture.memory) return fs.writeSync(index + 1, OPENWHISK_SENTINEL);
    // the output itself went out as it was written (MemoryCapture's passThrough)
    const data = captured.data;
    let text = data.length && data[data.length - 1] !== 10 ? '\n' : '';
    if (captured.truncated) text += `${TRUNCATED_MARK}\n`;
    capture.writeThrough(index, text + OPENWHISK_SENTINEL);
  });
}

/** Calls the handler with captured output and shapes the protocols' answers. */
class Runtime {
  constructor(handler, capture, stemDir = null) {
    this.handler = handler; // null until /init loads a native action
    this.capture = capture;
    // a stem cell's function directory: /init names the handler to load from it
    this.stemDir = stemDir;
    this.inflight = null;
    this.native = false;
    this.initialized = false;
  }

  /** An error thrown outside the handler's own call chain (a timer, a stray promise). */
  stray(err) {
    if (this.inflight) return this.inflight(err);
    process.stderr.write(`dispatch-runtime: error outside an invocation: ${util.inspect(err)}\n`);
  }

  async invoke(context, payload, passThrough = false) {
    this.capture.start(passThrough);
    let result = null;
    let error = null;
    try {
      const failed = new Promise((_, reject) => { this.inflight = reject; });
      failed.catch(() => {});
      result = this.handler(context, payload);
      if (result && typeof result.then === 'function') result = await Promise.race([result, failed]);
    } catch (err) {
      error = functionError(err);
      result = null;
    } finally {
      this.inflight = null;
    }
    const [out, err] = this.capture.stop();
    return { result, error, out, err };
  }

  async dispatch(request, openwhisk = false) {
    if (this.native || !this.handler) return [400, '{"error": "this server runs an OpenWhisk action: use POST /run"}'];
    const context = request.context || {};
    const { result, error, out, err } = await this.invoke(context, request.payload === undefined ? null : request.payload, openwhisk);
    if (openwhisk) writeActivationLogs(this.capture, out, err);
    let payload = 'null';
    let finalError = error;
    if (error === null) {
      const encoded = encodeResult(result);
      if (encoded.error) finalError = encoded.error;
      else payload = encoded.text;
    }
    const ctx = { logs: { stdout: logLines(out), stderr: logLines(err) }, error: finalError };
    const extra = openwhisk && finalError ? `, "error": ${JSON.stringify(finalError)}` : '';
    return `{"context": ${JSON.stringify(ctx)}, "payload": ${payload}${extra}}`;
  }

  async openwhiskRun(request) {
    if (!this.handler) return [502, '{"error": "the action has not been initialized (POST /init first)"}'];
    const value = request.value;
    for (const [key, item] of Object.entries(request)) { // activation metadata, as OpenWhisk's runtimes do
      if (key !== 'value' && ['string', 'number', 'boolean'].includes(typeof item)) process.env[`__OW_${key.toUpperCase()}`] = String(item);
    }
    if (!this.native && value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value).sort();
      if (keys.length === 2 && keys[0] === 'context' && keys[1] === 'payload') return this.dispatch(value, true);
    }
    const context = 'deadline' in request ? { deadline: request.deadline } : {};
    const { result, error, out, err } = await this.invoke(context, value === undefined || value === null ? {} : value, true);
    // OpenWhisk collects an activation's logs from the container's own output
    writeActivationLogs(this.capture, out, err);
    if (error !== null) return JSON.stringify({ error: error.message });
    if (!result || typeof result !== 'object' || Array.isArray(result)) return '{"error": "the action did not return a dictionary"}';
    const encoded = encodeResult(result, "the action's result");
    return encoded.error ? JSON.stringify({ error: encoded.error.message }) : encoded.text;
  }

  openwhiskInit(request) {
    if (this.initialized) return [403, '{"error": "Cannot initialize the action more than once."}'];
    const value = request.value && typeof request.value === 'object' ? request.value : {};
    if (this.stemDir !== null) return this.stemInit(value);
    const env = value.env;
    if (env && typeof env === 'object') {
      for (const [key, item] of Object.entries(env)) process.env[key] = typeof item === 'string' ? item : JSON.stringify(item);
    }
    if (!this.handler) {
      try {
        const main = loadAction(value);
        this.handler = (context, payload) => main(payload);
        this.native = true;
      } catch (err) {
        const message = err instanceof HandlerError ? err.message : `${err && err.name}: ${oneLine(err && err.message)}`;
        process.stderr.write(`dispatch-runtime: init error: ${message}\n`);
        writeActivationLogs(this.capture, { data: Buffer.alloc(0) }, { data: Buffer.alloc(0) });
        return [502, JSON.stringify({ error: message })];
      }
    }
    this.initialized = true;
    return '{"ok": true}';
  }

  /** A stem cell's `/init`: load `value.main` (the handler) from its directory. */
  async stemInit(value) {
    try {
      process.chdir(this.stemDir);
      this.handler = await loadHandler(String(value.main || ''), this.stemDir);
    } catch (err) {
      const reason = oneLine(err instanceof HandlerError ? err.message : `${err.code || err.name}: ${err.message}`);
      process.stderr.write(`dispatch-runtime: handler error: ${reason}\n`);
      return [502, JSON.stringify({ error: reason })];
    }
    this.stemDir = null;
    this.initialized = true;
    return '{"ok": true}';
  }
}

/** The HTTP side: routes requests, runs invocations one at a time, stops on SIGTERM. */
class Server {
  constructor(runtime, socketPath) {
    this.runtime = runtime;
    this.socketPath = socketPath;
    this.queue = Promise.resolve();
    this.busy = 0;
    this.stopping = false;
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    // the driver keeps one connection per instance for as long as the instance lives
    this.http.keepAliveTimeout = 0;
    this.http.requestTimeout = 0;
    this.http.headersTimeout = 0;
  }

  onRequest(req, res) {
    const urlPath = req.url.split('?')[0];
    const routes = { '/': (r) => this.runtime.dispatch(r), '/run': (r) => this.runtime.openwhiskRun(r), '/init': (r) => this.runtime.openwhiskInit(r) };
    if (urlPath === '/healthz') {
      req.resume();
      return ['GET', 'HEAD'].includes(req.method) ? this.send(res, 200, '{}') : this.send(res, 405, '{"error": "use GET"}');
    }
    const route = routes[urlPath];
    if (!route || req.method !== 'POST') {
      req.resume();
      return route ? this.send(res, 405, '{"error": "use POST"}') : this.send(res, 404, JSON.stringify({ error: `no route ${urlPath}` }));
    }
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let request;
      try {
        const body = Buffer.concat(chunks).toString('utf8');
        request = body ? JSON.parse(body) : {};
      } catch (err) {
        return this.send(res, 400, JSON.stringify({ error: `request body is not JSON: ${err.message}` }));
      }
      if (!request || typeof request !== 'object' || Array.isArray(request)) {
        return this.send(res, 400, '{"error": "request body must be a JSON object"}');
      }
      this.busy += 1;
      const answer = this.queue.then(() => route(request));
      this.queue = answer.catch(() => {});
      answer.then((text) => (Array.isArray(text) ? text : [200, text]), (err) => [500, JSON.stringify({ error: `${err && err.name}: ${err && err.message}` })])
        .then(([status, text]) => {
          this.busy -= 1;
          if (this.stopping && this.busy === 0) { // after SIGTERM: exit once this answer is out
            if (res.destroyed) return this.exit();
            res.once('close', () => this.exit());
          }
          this.send(res, status, text);
        });
    });
  }

  send(res, status, text) {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  listen(port) {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      if (this.socketPath) {
        try { fs.unlinkSync(this.socketPath); } catch (err) { /* not there */ }
        this.http.listen(this.socketPath, resolve);
      } else {
        this.http.listen(port, '0.0.0.0', resolve);
      }
    });
  }

  onSigterm() {
    this.stopping = true;
    this.http.close();
    if (this.busy === 0) this.exit();
  }

  exit() {
    if (this.socketPath) {
      try { fs.unlinkSync(this.socketPath); } catch (err) { /* already gone */ }
    }
    // timers or servers the function left behind must not keep a stopped server alive
    process.exit(0);
  }
}

async function main(argv) {
  const args = parseArgs(argv);
  let handler;
  try {
    handler = null;
    if (args.handler) {
      process.chdir(args.dir);
      handler = await loadHandler(args.handler, path.resolve(args.dir));
    }
  } catch (err) {
    const reason = err instanceof HandlerError ? err.message : `${err.code || err.name}: ${err.message}`;
    process.stderr.write(`dispatch-runtime: handler error: ${oneLine(reason)}\n`);
    process.exit(EXIT_HANDLER_ERROR);
  }
  const capture = FileCapture.usable(args.socket) ? new FileCapture(path.dirname(args.socket)) : new MemoryCapture();
  const runtime = new Runtime(handler, capture, args.stem && !args.handler ? path.resolve(args.dir) : null);
  process.on('uncaughtException', (err) => runtime.stray(err));
  process.on('unhandledRejection', (err) => runtime.stray(err));
  // past RLIMIT_FSIZE a write fails with EFBIG instead of killing the process
  process.on('SIGXFSZ', () => {});
  const server = new Server(runtime, args.socket);
  process.on('SIGTERM', () => server.onSigterm());
  await server.listen(args.port);
  if (args.lifelineFd !== undefined) { // EOF here means the driver went away
    const lifeline = new net.Socket({ fd: args.lifelineFd, readable: true, writable: false });
    lifeline.on('end', () => server.exit());
    lifeline.on('error', () => server.exit());
    lifeline.resume();
  }
  if (args.readyFd !== undefined) {
    fs.writeSync(args.readyFd, 'ready\n');
    fs.closeSync(args.readyFd);
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`dispatch-runtime: ${err && err.stack}\n`);
  process.exit(1);
});
