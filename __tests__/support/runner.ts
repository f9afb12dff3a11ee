/**
 * A stand-in for the GitHub Actions runner: runs the Action's *bundled* steps (built by ncc from
 * the current sources) as child processes of Node 24, the way the runner does: `INPUT_*` with the
 * defaults from action.yml, the file commands (GITHUB_STATE → `STATE_*` for the post step,
 * GITHUB_ENV → later steps, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY), RUNNER_TEMP, `::add-mask::`.
 *
 * A `Job` is: main step, the user's `run:` steps (real Nix, with the job's environment), post step.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
  cpSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { makeNixMachine, nix, type NixMachine } from './nix.js';

const REPO = resolve(import.meta.dirname, '..', '..');
/** Node 24, as `runs.using: node24` gives the steps. */
export const NODE24 = realpathSync(join(REPO, 'node_modules', '.bin', 'node'));
const ACTION_BUNDLES = ['main', 'post', 'hook', 'proxy', 'cli', 'verify-worker'];

/**
 * Bundles the Action's entry points (and the CLI) from the current sources into a temporary dist/ (never the
 * committed one), reused while the sources are unchanged so each test file does not pay for ncc.
 * ncc type-checks every file its tsconfig includes, so the build runs on a copy of `src/` alone, with
 * the entry points as the only included files: half-written tests or benchmarks elsewhere in the
 * tree cannot break it, errors in what the Action imports still do.
 */
export function buildActionBundles(): string {
  const entries = ACTION_BUNDLES.filter((name) => existsSync(join(REPO, 'src', 'entrypoints', `${name}.ts`)));
  const hash = createHash('sha256');
  for (const file of sourceFiles(join(REPO, 'src'))) hash.update(file).update(readFileSync(file));
  hash.update(readFileSync(join(REPO, 'package-lock.json')));
  const dist = join(tmpdir(), `sluice-action-dist-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(dist)) return dist;
  const work = mkdtempSync(join(tmpdir(), 'sluice-action-src-'));
  const building = join(work, 'dist');
  try {
    cpSync(join(REPO, 'src'), join(work, 'src'), { recursive: true });
    cpSync(join(REPO, 'package.json'), join(work, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(work, 'node_modules'));
    const tsconfig = JSON.parse(readFileSync(join(REPO, 'tsconfig.json'), 'utf8')) as Record<string, unknown>;
    // Only what the entry points import: type-checking all of src/ (the server's S3 and PostgreSQL
    // types among it) cost ncc a quarter more CPU per bundle; `npm run typecheck` covers the rest.
    const include = entries.map((name) => `src/entrypoints/${name}.ts`);
    writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({ ...tsconfig, include }));
    for (const name of entries) {
      execFileSync(
        NODE24,
        [
          join(REPO, 'node_modules/@vercel/ncc/dist/ncc/cli.js'),
          'build',
          `src/entrypoints/${name}.ts`,
          '-o',
          join(building, name),
          '--quiet',
          '--no-source-map-register',
        ],
        { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] },
      );
    }
    renameSync(building, dist);
  } catch (error) {
    if (!existsSync(dist)) throw error;
    // Another worker built the same sources first.
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dist;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => join(dir, f));
}

/** The input defaults from action.yml, as the runner fills them in. */
function inputDefaults(): Record<string, string> {
  const action = parseYaml(readFileSync(join(REPO, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  return Object.fromEntries(Object.entries(action.inputs).map(([name, spec]) => [name, spec.default ?? '']));
}

export function inputEnv(inputs: Record<string, string>): Record<string, string> {
  const all = { ...inputDefaults(), ...inputs };
  return Object.fromEntries(
    Object.entries(all).map(([name, value]) => [`INPUT_${name.replace(/ /g, '_').toUpperCase()}`, value]),
  );
}

/** Parses a file-command file: `name=value` lines and `name<<DELIM` … `DELIM` heredocs. */
export function parseFileCommands(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const heredoc = /^([^=]+?)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== delimiter; i++) value.push(lines[i]!);
      if (i >= lines.length) throw new Error(`file command '${name}' has no closing delimiter`);
      result[name!] = value.join('\n');
    } else {
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`malformed file command line: ${line}`);
      result[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return result;
}

export interface StepResult {
  exitCode: number | null;
  /** stdout and stderr as the step wrote them, before masking. */
  rawLog: string;
  /** The log as the runner would show it: commands removed, registered secrets replaced by ***. */
  log: string;
  outputs: Record<string, string>;
  summary: string;
  warnings: string[];
  notices: string[];
  errors: string[];
  durationMs: number;
}

export interface JobOptions {
  inputs: Record<string, string>;
  /** The isolated Nix "machine" the job runs on; a fresh one by default. */
  machine?: NixMachine;
  /** Answers `core.getIDToken()`; absent like in a fork's pull request or without `id-token: write`. */
  idTokenRequest?: { url: string; token: string };
  /** Extra environment for every step (e.g. PATH without nix). */
  env?: NodeJS.ProcessEnv;
  dist?: string;
  /** The runner's view of the workflow run: ref, event and the Actions cache service it may use. */
  github?: GitHubContext;
}

export interface GitHubContext {
  /** GITHUB_REF, e.g. `refs/heads/main` or `refs/pull/4/merge`. */
  ref: string;
  /** GITHUB_BASE_REF (pull requests): the base branch's name. */
  baseRef?: string;
  eventName?: string;
  defaultBranch?: string;
  runId?: string;
  /** The cache service (ACTIONS_RESULTS_URL) and this job's ACTIONS_RUNTIME_TOKEN. */
  cache?: { url: string; token: string };
}

let runIds = 1000;

/** The variables the runner sets for a run on `github` (cache service v2 included). */
function githubEnv(github: GitHubContext, runnerTemp: string, runId: string): NodeJS.ProcessEnv {
  const eventPath = join(runnerTemp, 'event.json');
  writeFileSync(
    eventPath,
    JSON.stringify({ repository: { full_name: 'acme/app', default_branch: github.defaultBranch ?? 'main' } }),
  );
  return {
    GITHUB_REF: github.ref,
    GITHUB_BASE_REF: github.baseRef ?? '',
    GITHUB_HEAD_REF: '',
    GITHUB_EVENT_NAME: github.eventName ?? (github.ref.startsWith('refs/pull/') ? 'pull_request' : 'push'),
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_REPOSITORY: 'acme/app',
    GITHUB_RUN_ID: runId,
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_SERVER_URL: 'https://github.com',
    RUNNER_ARCH: 'X64',
    ...(github.cache
      ? {
          ACTIONS_RESULTS_URL: github.cache.url,
          ACTIONS_RUNTIME_TOKEN: github.cache.token,
          ACTIONS_CACHE_SERVICE_V2: 'True',
        }
      : {}),
  };
}

/** One job on one runner: its RUNNER_TEMP, environment, saved state and results of each step. */
export class Job {
  readonly machine: NixMachine;
  readonly runnerTemp: string;
  readonly dist: string;
  /** Variables exported through GITHUB_ENV, applied to every later step. */
  readonly exported: Record<string, string> = {};
  /** Secrets registered with `::add-mask::`. */
  readonly secrets = new Set<string>();
  /** Saved state per use of the Action in the job (`uses:` twice gives two). */
  readonly states = new Map<string, Record<string, string>>();
  main?: StepResult;
  post?: StepResult;
  /** GITHUB_RUN_ID of this job. */
  readonly runId = String(runIds++);

  constructor(private readonly options: JobOptions) {
    this.machine = options.machine ?? makeNixMachine();
    this.runnerTemp = mkdtempSync(join(tmpdir(), 'sluice-runner-'));
    this.dist = options.dist ?? buildActionBundles();
  }

  /** The environment a `run:` step sees: the machine's, the job's and what steps exported. */
  get env(): NodeJS.ProcessEnv {
    return { ...this.machine.env, ...this.options.env, ...this.exported };
  }

  /** The main step of one use of the Action (`use` tells uses apart; inputs override the job's). */
  async runMain(use = 'sluice', inputs: Record<string, string> = {}): Promise<StepResult> {
    this.main = await this.step('main', use, inputs);
    return this.main;
  }

  /** The post step of one use; the runner runs post steps in the reverse order of the uses. */
  async runPost(use = 'sluice', inputs: Record<string, string> = {}): Promise<StepResult> {
    this.post = await this.step('post', use, inputs);
    return this.post;
  }

  /** What the main step of `use` saved, as the Action's JSON state. */
  savedState(use = 'sluice'): Record<string, unknown> | undefined {
    const raw = this.states.get(use)?.SLUICE_STATE;
    return raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
  }

  /** A user `run:` step with Nix: the job's environment and Nix configuration. */
  async run(command: string, args: string[]): Promise<string> {
    return nix(command, args, { machine: this.machine, env: { ...this.options.env, ...this.exported } });
  }

  async nixBuild(expression: string): Promise<string[]> {
    const out = await this.run('nix-build', ['--no-out-link', '--expr', expression]);
    return out.trim().split('\n').filter(Boolean);
  }

  /** Everything the job printed or wrote where a user could read it. */
  get everything(): string {
    return [this.main, this.post]
      .filter((s) => s !== undefined)
      .map((s) => `${s.rawLog}\n${s.summary}`)
      .join('\n');
  }

  private async step(
    name: 'main' | 'post',
    use: string,
    inputs: Record<string, string>,
  ): Promise<StepResult> {
    const files = mkdtempSync(join(this.runnerTemp, `_runner_file_commands_${name}_`));
    const fileFor = (kind: string) => {
      const path = join(files, `${kind}_${randomUUID()}`);
      writeFileSync(path, '');
      return path;
    };
    const paths = {
      GITHUB_STATE: fileFor('save_state'),
      GITHUB_ENV: fileFor('set_env'),
      GITHUB_OUTPUT: fileFor('set_output'),
      GITHUB_STEP_SUMMARY: fileFor('step_summary'),
      GITHUB_PATH: fileFor('add_path'),
    };
    const stateEnv = Object.fromEntries(
      Object.entries(this.states.get(use) ?? {}).map(([k, v]) => [`STATE_${k}`, v]),
    );
    const env: NodeJS.ProcessEnv = {
      ...this.env,
      ...inputEnv({ ...this.options.inputs, ...inputs }),
      ...stateEnv,
      ...paths,
      GITHUB_ACTIONS: 'true',
      CI: 'true',
      RUNNER_TEMP: this.runnerTemp,
      RUNNER_OS: 'Linux',
      GITHUB_WORKSPACE: this.runnerTemp,
      ...(this.options.github ? githubEnv(this.options.github, this.runnerTemp, this.runId) : {}),
      ...(this.options.idTokenRequest
        ? {
            ACTIONS_ID_TOKEN_REQUEST_URL: this.options.idTokenRequest.url,
            ACTIONS_ID_TOKEN_REQUEST_TOKEN: this.options.idTokenRequest.token,
          }
        : {}),
    };
    mkdirSync(this.runnerTemp, { recursive: true });
    const started = Date.now();
    const { exitCode, output } = await runNode(join(this.dist, name, 'index.js'), env);
    const durationMs = Date.now() - started;

    if (name === 'main') this.states.set(use, parseFileCommands(readFileSync(paths.GITHUB_STATE, 'utf8')));
    Object.assign(this.exported, parseFileCommands(readFileSync(paths.GITHUB_ENV, 'utf8')));
    return {
      exitCode,
      durationMs,
      ...this.interpret(output),
      outputs: parseFileCommands(readFileSync(paths.GITHUB_OUTPUT, 'utf8')),
      summary: readFileSync(paths.GITHUB_STEP_SUMMARY, 'utf8'),
    };
  }

  /** Workflow commands in the output, as the runner reads them. */
  private interpret(rawLog: string) {
    const warnings: string[] = [];
    const notices: string[] = [];
    const errors: string[] = [];
    const shown: string[] = [];
    for (const line of rawLog.split('\n')) {
      const command = /^::([a-z-]+)(?: [^:]*)?::(.*)$/.exec(line);
      if (command) {
        const [, kind, message] = command;
        const text = decodeCommandData(message!);
        if (kind === 'add-mask') {
          this.secrets.add(text);
          continue;
        }
        if (kind === 'warning') warnings.push(text);
        else if (kind === 'notice') notices.push(text);
        else if (kind === 'error') errors.push(text);
        if (kind === 'debug' || kind === 'group' || kind === 'endgroup') continue;
      }
      shown.push(line);
    }
    let log = shown.join('\n');
    for (const secret of this.secrets) if (secret) log = log.split(secret).join('***');
    return { rawLog, log, warnings, notices, errors };
  }
}

function decodeCommandData(data: string): string {
  return data.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
}

/** Runs a step's bundle under Node 24; its output (stdout then stderr, interleaved) is collected. */
function runNode(
  bundle: string,
  env: NodeJS.ProcessEnv,
): Promise<{ exitCode: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(NODE24, [bundle], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    // 'close' waits for the pipes: a daemon that kept the step's stdio open would hang the step here,
    // exactly as it would hang the real runner.
    child.on('close', (exitCode) =>
      resolvePromise({ exitCode, output: Buffer.concat(chunks).toString('utf8') }),
    );
  });
}
