// server.mjs: start `cairn serve` on a free loopback port for a test, with
// its own data directory, and stop it afterwards. Paths come from the
// environment `make test` sets (CAIRN_BIN, CAIRN_TOOLS) or the defaults of a
// checkout (build/cairn, build/). Every model the suites use is in
// tests/data or made here by build/mkmodel: nothing outside the repository.
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.CAIRN_BIN || 'build/cairn');
export const TOOLS = path.resolve(ROOT, process.env.CAIRN_TOOLS || 'build');
export const CHAT = path.join(ROOT, 'tests/data/models/aidreams260K.gguf');
export const DOCS = path.join(ROOT, 'tests/data/docs');

for (const f of [BIN, CHAT, path.join(TOOLS, 'mkmodel')])
    if (!fs.existsSync(f)) throw new Error(`missing ${f} (run \`make all\` first)`);

/* No command a test runs may hang the suite: each has this long (ASan
** builds are several times slower than -O2 ones). */
export const CLI_TIMEOUT_MS = 120_000;

/* A random-weight model written by mkmodel (deterministic: same arguments,
** same file), kept in TOOLS/test-models/NAME.gguf between runs and made
** again when mkmodel is newer. The file name is the model's name in the API. */
function madeModel(name, args) {
    const dir = path.join(TOOLS, 'test-models');
    const file = path.join(dir, `${name}.gguf`);
    const mk = path.join(TOOLS, 'mkmodel');
    if (fs.existsSync(file) && fs.statSync(file).mtimeMs >= fs.statSync(mk).mtimeMs)
        return file;
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    execFileSync(mk, [...args, '-o', tmp], { stdio: 'ignore', timeout: CLI_TIMEOUT_MS });
    fs.renameSync(tmp, file);
    return file;
}

/* An embedding model shaped like llama.cpp's tiny-bert fixture (128 wide, 2
** layers, F16) with the bge WordPiece vocabulary. */
export const BERT = madeModel('tiny-bert-f16', [
    '--shape', 'minilm', '--n-layer', '2', '--n-embd', '128', '--n-head', '2', '--n-head-kv', '2',
    '--n-ff', '512', '--type', 'f16',
    '--tokenizer', path.join(ROOT, 'tests/data/vocab/ggml-vocab-bert-bge.gguf')]);
/* The same shape with a classification head: a reranker (cross-encoder). */
export const RERANK = madeModel('tiny-rerank-f16', [
    '--shape', 'minilm', '--n-layer', '2', '--n-embd', '128', '--n-head', '2', '--n-head-kv', '2',
    '--n-ff', '512', '--type', 'f16', '--rerank',
    '--tokenizer', path.join(ROOT, 'tests/data/vocab/ggml-vocab-bert-bge.gguf')]);
/* A chat model slow enough for the load tests: Llama 3 shape at 256 wide, a
** Q4_K_M mix, the 128k-token Llama 3 vocabulary. */
export const SLOW = madeModel('tiny-llama-256-q4_k_m', [
    '--shape', 'tiny', '--n-embd', '256', '--n-ff', '768', '--type', 'q4_k_m',
    '--tokenizer', path.join(ROOT, 'tests/data/vocab/ggml-vocab-llama-bpe.gguf')]);

/* A small chat model with a context large enough for a grounded answer
** (1024 tokens) and the Llama 3 vocabulary: the first-run walk's. */
export const HELPER = madeModel('tiny-chat-1k', [
    '--shape', 'tiny', '--type', 'f16', '--ctx', '1024', '--untied', '--seed', '5',
    '--tokenizer', path.join(ROOT, 'tests/data/vocab/ggml-vocab-llama-bpe.gguf')]);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Servers still running when this process ends (a failed or killed test
** run) are stopped with it. */
const running = new Set();
process.on('exit', () => { for (const p of running) p.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM'])
    process.on(sig, () => process.exit(1));

/* Start a server; args are extra `cairn serve` options. Resolves to
** { url, port, home, proc, log(), stop() }. */
export async function startServer(args = [], { home, env = {} } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-serve-'));
    home = home || path.join(dir, 'home');
    const portFile = path.join(dir, 'port');
    let log = '';
    const proc = spawn(BIN, ['serve', '--port', '0', '--port-file', portFile, '--home', home,
                             '-t', '1', ...args],
                       { stdio: ['ignore', 'ignore', 'pipe'],
                         env: { ...process.env, CAIRN_CHAT_MODEL: '', CAIRN_EMBED_MODEL: '',
                                CAIRN_API_KEY: '',
                                // tests/offline.sh's config: a remote nobody consents to
                                CAIRN_CONFIG: process.env.CAIRN_OFFLINE_CONFIG || path.join(dir, 'no-config'),
                                ...env } });
    proc.stderr.on('data', (d) => { log += d; });
    let exited = null;
    running.add(proc);
    proc.on('exit', (code, sig) => { exited = { code, sig }; running.delete(proc); });
    for (let i = 0; i < 200 && !exited; i++) {
        if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) break;
        await sleep(50);
    }
    if (exited || !fs.existsSync(portFile))
        throw new Error(`cairn serve did not start: ${JSON.stringify(exited)}\n${log}`);
    const port = Number(fs.readFileSync(portFile, 'utf8').trim());
    return {
        url: `http://127.0.0.1:${port}`, port, home, proc,
        log: () => log,
        alive: () => exited === null,
        rssKb: () => {
            const m = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
            return m ? Number(m[1]) : 0;
        },
        async stop() {
            if (exited) return exited;
            proc.kill('SIGTERM');
            for (let i = 0; i < 100 && !exited; i++) await sleep(50);
            if (!exited) proc.kill('SIGKILL');
            fs.rmSync(dir, { recursive: true, force: true });
            return exited;
        },
    };
}

/* Start a process that prints a line matching re when ready; resolves to
** { proc, match }. It is killed with this process at the latest. */
export async function startHelper(cmd, args, re) {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    proc.on('exit', () => running.delete(proc));
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    for (let i = 0; i < 200; i++) {
        const m = out.match(re);
        if (m) return { proc, match: m };
        await sleep(25);
    }
    proc.kill('SIGKILL');
    throw new Error(`${cmd} did not start: ${out}`);
}

/* curl, as a client nobody here wrote: returns { status, headers, body }. */
export function curl(args) {
    const out = execFileSync('curl', ['-sS', '-i', '--max-time', '60', ...args],
                             { encoding: 'utf8', maxBuffer: 64 << 20, timeout: CLI_TIMEOUT_MS });
    const cut = out.indexOf('\r\n\r\n');
    const head = out.slice(0, cut).split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const h of head.slice(1)) {
        const i = h.indexOf(':');
        headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
    }
    return { status, headers, body: out.slice(cut + 4) };
}

/* A model catalog for tests: testhttpd (tools/) serves models/ROOT files and
** a catalog of them signed with a key made here; `cairn models update` puts
** it in a fresh data directory. urlPrefix adds testhttpd's fault paths
** ("slow=200000/"). Resolves to { home, env, port, close() }. */
export async function testCatalog(urlPrefix = '', extra = [], { dreams = true } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-catalog-'));
    const root = path.join(dir, 'srv');
    fs.mkdirSync(root);
    fs.copyFileSync(CHAT, path.join(root, 'm1.gguf'));
    const key = path.join(dir, 'test.key');
    const sign = path.join(TOOLS, 'catalog-sign');
    const pub = execFileSync(sign, ['keygen', key], { encoding: 'utf8', timeout: CLI_TIMEOUT_MS })
        .trim().slice(0, 64);
    const log = path.join(dir, 'requests.log');
    const httpd = await startHelper(path.join(TOOLS, 'testhttpd'), [root, '--port', '0', '--log', log],
                                    /port (\d+)/);
    const port = Number(httpd.match[1]);
    const data = fs.readFileSync(CHAT);
    const catalog = { catalog: 'test', serial: 2, models: [{
        name: 'dreams', role: 'chat', arch: 'llama', params_b: 0.00028,
        url: `http://127.0.0.1:${port}/${urlPrefix}m1.gguf`, size: data.length,
        sha256: crypto.createHash('sha256').update(data).digest('hex'),
        ram_mb: 64, license: 'test', description: 'test model' }] };
    if (!dreams)
        catalog.models = [];
    /* more entries: { name, role, arch, file, tier? } (params_b 0: not checked) */
    for (const x of extra) {
        const bytes = fs.readFileSync(x.file);
        fs.writeFileSync(path.join(root, path.basename(x.file)), bytes);
        catalog.models.push({ name: x.name, role: x.role, arch: x.arch, params_b: 0,
                              url: `http://127.0.0.1:${port}/${urlPrefix}${path.basename(x.file)}`,
                              size: bytes.length, sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
                              ram_mb: 64, license: 'test', description: `test ${x.role} model`,
                              ...(x.tier ? { tier: x.tier } : {}) });
    }
    fs.writeFileSync(path.join(root, 'catalog.json'), JSON.stringify(catalog));
    execFileSync(sign, ['sign', key, path.join(root, 'catalog.json')], { timeout: CLI_TIMEOUT_MS });
    const config = path.join(dir, 'config');
    fs.writeFileSync(config, `catalog_url = http://127.0.0.1:${port}/catalog.json\ncatalog_key = ${pub}\n`);
    const home = path.join(dir, 'home');
    const env = { CAIRN_CONFIG: config };
    try {
        execFileSync(BIN, ['models', 'update'], { env: { ...process.env, ...env, CAIRN_HOME: home },
                                                  stdio: ['ignore', 'ignore', 'pipe'], timeout: CLI_TIMEOUT_MS });
    } catch (e) { /* the helper must not outlive a failed setup: node would wait for it */
        httpd.proc.kill('SIGTERM');
        throw new Error(`cairn models update: ${e.stderr || e.message}`);
    }
    /* a new catalog (serial) naming file (copied under root) as dreams */
    const publish = (serial, file) => {
        const bytes = fs.readFileSync(file);
        fs.writeFileSync(path.join(root, path.basename(file)), bytes);
        const cat = { catalog: 'test', serial, models: [{ ...catalog.models[0], name: 'dreams',
            url: `http://127.0.0.1:${port}/${urlPrefix}${path.basename(file)}`, size: bytes.length,
            sha256: crypto.createHash('sha256').update(bytes).digest('hex') }] };
        fs.writeFileSync(path.join(root, 'catalog.json'), JSON.stringify(cat));
        execFileSync(sign, ['sign', key, path.join(root, 'catalog.json')], { timeout: CLI_TIMEOUT_MS });
        return cat.models[0].sha256;
    };
    return {
        home, env, port, config, publish,
        /* the requests testhttpd answered since the last call, one a line */
        requests() {
            const t = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
            fs.writeFileSync(log, '');
            return t.split('\n').filter(Boolean);
        },
        close() {
            httpd.proc.kill('SIGTERM');
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}
