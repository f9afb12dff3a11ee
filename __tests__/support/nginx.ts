/**
 * The operator docs' nginx examples, run as written: a block is taken from docs/operations.md, its
 * addresses replaced by the test's, and served by the Debian nginx with a config of its own (own
 * pid, logs and temp dirs; the system's is never read).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

const NGINX = '/usr/sbin/nginx';
const DOC = fileURLToPath(new URL('../../docs/operations.md', import.meta.url));

export interface RunningNginx {
  url: string;
  close(): void;
}

/** The first ```nginx block of docs/operations.md containing `marker`, with `replacements` made. */
export function nginxExample(marker: string, replacements: [string, string][]): string {
  const blocks = [...readFileSync(DOC, 'utf8').matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((text) => text.includes(marker));
  if (!block) throw new Error(`docs/operations.md has no \`\`\`nginx block with '${marker}'`);
  let config = block;
  for (const [from, to] of replacements) {
    if (!config.includes(from)) throw new Error(`the nginx example no longer contains '${from}'`);
    config = config.replace(from, to);
  }
  return config;
}

/**
 * nginx with `http(port)` inside its `http` block, once it answers `/nix-cache-info` with 200.
 * `topLevel` goes before it (e.g. `user root;`).
 */
export async function startNginx(http: (port: number) => string, topLevel = ''): Promise<RunningNginx> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: apt-get install -y nginx-light`);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nginx-'));
  mkdirSync(join(dir, 'temp'));
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((name) => `${name}_temp_path ${join(dir, 'temp', name)};`)
    .join(' ');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `${topLevel}
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  ${temp}
  ${http(port)}
}
`,
  );
  const nginx = spawn(
    NGINX,
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  const close = () => void nginx.kill('SIGTERM');
  for (let i = 0; i < 100; i++) {
    if (nginx.exitCode !== null)
      throw new Error(`nginx exited: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    const ok = await fetch(`${url}/nix-cache-info`).then(
      (res) => res.status === 200,
      () => false,
    );
    if (ok) return { url, close };
    await sleep(100);
  }
  close();
  throw new Error('nginx did not answer');
}
