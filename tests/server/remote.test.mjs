// remote.test.mjs: `cairn ask --remote` (issue 17). A second `cairn serve`
// on loopback plays the bigger model elsewhere; in front of it a proxy
// written here counts every connection and the bytes of each request, and
// injects the faults a real remote has (429 with Retry-After, 500, a cut
// stream, a malformed event, a stall, a huge answer). Checked: nothing
// leaves without consent (no terminal and no --yes: zero connections);
// with --yes exactly one request, of the size the preview announced; the
// answer's citations are checked against the passages sent; every failure
// is one line and the local answer follows; the audit log records each call
// without its text.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, BIN, TOOLS, ROOT, CLI_TIMEOUT_MS } from './server.mjs';

const CHROMIUM = process.env.CAIRN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(ROOT, process.env.CAIRN_ARTIFACTS || 'build/test-artifacts');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-remote-'));
const HOME = path.join(dir, 'home');
const CONFIG = path.join(dir, 'config');
const QUESTION = 'What is the monthly fee?';

/* Run the CLI without a controlling terminal (setsid), as a script would. */
function cli(args, env = {}) {
    return new Promise((resolve) => {
        execFile('setsid', ['-w', BIN, ...args], {
            env: { ...process.env, CAIRN_HOME: HOME, CAIRN_CONFIG: CONFIG, CAIRN_CHAT_MODEL: '',
                   CAIRN_EMBED_MODEL: '', ...env },
            encoding: 'utf8', timeout: CLI_TIMEOUT_MS, maxBuffer: 64 << 20,
        }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }));
    });
}

/* The proxy: forwards to the real remote unless a fault is set. */
const proxy = { connections: 0, requests: [], fault: null, times: 0 };
let upstream;
async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    proxy.requests.push({ url: req.url, bytes: body.length, auth: req.headers.authorization || null,
                          body: body.toString('utf8') });
    const f = proxy.times > 0 ? (proxy.times--, proxy.fault) : null;
    if (f === '429') { res.writeHead(429, { 'Retry-After': '1', 'Content-Type': 'application/json' }); res.end('{"error":{"message":"slow down"}}'); return; }
    if (f === '500') { /* Retry-After 0: the retries without the backoff's 7 s */
        res.writeHead(500, { 'Content-Type': 'application/json', 'Retry-After': '0' });
        res.end('{"error":{"message":"boom"}}');
        return;
    }
    if (f === '429long') { res.writeHead(429, { 'Retry-After': '30', 'Content-Type': 'application/json' }); res.end('{"error":{"message":"slow down"}}'); return; }
    if (f === '401') { res.writeHead(401, { 'Content-Type': 'application/json' }); res.end('{"error":{"message":"bad key"}}'); return; }
    if (f === 'stall') { return; /* never answer */ }
    if (f === 'whole') { /* a server that ignores "stream": true */
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: 'The fee is 4,500 euros a month [1], see also [7].' }, finish_reason: 'stop' }] }));
        return;
    }
    if (f === 'malformed') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.end('data: {"choices":[{"delta":{"content":"Hello"}}]}\n\ndata: {not json\n\n');
        return;
    }
    if (f === 'cut') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.write('data: {"choices":[{"delta":{"content":"The fee is"}}]}\n\n');
        setTimeout(() => res.socket?.destroy(), 50);
        return;
    }
    if (f === 'huge') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        const ev = `data: {"choices":[{"delta":{"content":"${'x'.repeat(60000)}"}}]}\n\n`;
        let sent = 0;
        const more = () => {
            while (sent < 20 << 20) {
                sent += ev.length;
                if (!res.write(ev)) { res.once('drain', more); return; }
            }
            res.end('data: [DONE]\n\n');
        };
        res.on('error', () => {});
        more();
        return;
    }
    /* a pooled connection the upstream closed meanwhile fails the first try:
    ** that is this proxy's own problem, not a fault under test -- once more */
    const forward = () => fetch(`${upstream.url}${req.url}`, { method: req.method, body: req.method === 'GET' ? undefined : body,
                                                              headers: { 'Content-Type': 'application/json' } });
    const up = await forward().catch((e) => {
        console.error(`proxy: forwarding ${req.url} failed (${e.cause?.code || e.message}); once more`);
        return forward();
    });
    res.writeHead(up.status, { 'Content-Type': up.headers.get('content-type') || 'text/plain' });
    for await (const c of up.body) res.write(c);
    res.end();
}
/* A client that leaves (the stall, the cut, the huge answer) or an upstream
** that stops must not end this process with an unhandled error. */
const server = http.createServer((req, res) => {
    res.on('error', () => {});
    req.on('error', () => {});
    handle(req, res).catch((e) => {
        console.error(`proxy: ${req.url}: ${e.cause?.code || e.message}`);
        try { res.destroy(); } catch { /* gone */ }
    });
});
server.on('connection', () => { proxy.connections++; });

/* Inject fault into the next `times` requests (all of them by default). */
function reset(fault = null, times = Infinity) {
    Object.assign(proxy, { connections: 0, requests: [], fault, times: fault ? times : 0 });
}

describe('ask --remote: consent, one request, failures, audit', () => {
    let port;
    before(async () => {
        const model = path.join(dir, 'remote-chat.gguf');
        await new Promise((resolve, reject) => execFile(path.join(TOOLS, 'mkmodel'), ['--shape', 'tiny', '--type', 'f16',
            '--ctx', '1024', '--untied', '--seed', '5', '--tokenizer',
            path.join(ROOT, 'tests/data/vocab/ggml-vocab-llama-bpe.gguf'), '-o', model], (e) => (e ? reject(e) : resolve())));
        upstream = await startServer(['-m', model]);
        await new Promise((r) => server.listen(0, '127.0.0.1', r));
        port = server.address().port;
        fs.writeFileSync(path.join(dir, 'contract.txt'),
                         'SERVICE AGREEMENT\n\nThe monthly fee is 4,500 euros, payable within 30 days of each invoice.\n\fTermination\n\nEither party may terminate with 90 days written notice.\n');
        assert.equal((await cli(['add', path.join(dir, 'contract.txt')])).code, 0);
        const add = await cli(['remote', 'add', 'big', '--url', `http://127.0.0.1:${port}/v1`, '--model', 'remote-chat',
                               '--api-key-env', 'BIG_KEY', '--timeout', '30']);
        assert.equal(add.code, 0, add.stderr);
        /* the same endpoint with a short stall timeout, for the stall case only */
        const slow = await cli(['remote', 'add', 'slow', '--url', `http://127.0.0.1:${port}/v1`, '--model', 'remote-chat',
                                '--api-key-env', 'BIG_KEY', '--timeout', '2']);
        assert.equal(slow.code, 0, slow.stderr);
    });
    after(async () => {
        server.close();
        const x = await upstream.stop();
        assert.deepEqual(x, { code: 0, sig: null }, upstream.log().slice(-2000));
        fs.rmSync(dir, { recursive: true, force: true });
    });

    test('the settings file has the endpoint; a key on the command line is refused', async () => {
        const cfg = fs.readFileSync(CONFIG, 'utf8');
        assert.match(cfg, /^remote\.big\.base_url = http:\/\/127\.0\.0\.1:\d+\/v1$/m);
        assert.match(cfg, /^remote\.big\.api_key_env = BIG_KEY$/m);
        assert.equal((fs.statSync(CONFIG).mode & 0o777), 0o600);
        const r = await cli(['remote', 'add', 'x', '--url', 'https://example.com/v1', '--model', 'm', '--api-key', 'sk-123']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /never given on the command line/);
        const plain = await cli(['remote', 'add', 'x', '--url', 'http://example.com/v1', '--model', 'm']);
        assert.equal(plain.code, 1);
        assert.match(plain.stderr, /plain http:\/\/ is refused/);
        const ls = JSON.parse((await cli(['remote', 'ls', '--json'])).stdout);
        assert.deepEqual(ls.map((e) => [e.name, e.model, e.key]), [['big', 'remote-chat', 'env'], ['slow', 'remote-chat', 'env']]);
    });

    test('nothing leaves without consent: no terminal, no --yes, zero connections', async () => {
        reset();
        const r = await cli(['ask', '--remote', 'big', QUESTION], { BIG_KEY: 'k1' });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /This would leave the machine, to remote big/);
        assert.match(r.stderr, /passage \[1\] contract\.txt, p\. 1 \(\d+ bytes\)/);
        assert.match(r.stderr, /nothing sent: no terminal to ask on/);
        assert.equal(proxy.connections, 0);
        // every other command with the remote configured: none either
        for (const args of [['ask', QUESTION], ['search', 'fee'], ['summarize', 'contract.txt'], ['ls'], ['remote', 'ls']])
            assert.equal((await cli(args, { BIG_KEY: 'k1' })).code, 0, args.join(' '));
        assert.equal(proxy.connections, 0);
    });

    test('with --yes: one request, the bytes the preview said, the key sent, citations checked', async () => {
        reset();
        const r = await cli(['ask', '--remote', 'big', '--yes', '-n', '24', '--json', QUESTION], { BIG_KEY: 'k1' });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(proxy.connections, 1);
        assert.equal(proxy.requests.length, 1);
        const said = Number(r.stderr.match(/with the instructions: (\d+) bytes in all/)[1]);
        assert.equal(proxy.requests[0].bytes, said);
        assert.equal(proxy.requests[0].auth, 'Bearer k1');
        const j = JSON.parse(r.stdout);
        assert.equal(j.mode, 'remote');
        assert.equal(j.bytes_sent, said);
        assert.equal(j.sources[0].doc, 'contract.txt');
        assert.ok(j.answer.length > 0);
        // the audit log: where, which pages, bytes; never the text
        const log = (await cli(['remote', 'log', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
        const last = log.at(-1);
        assert.equal(last.remote, 'big');
        assert.equal(last.bytes_sent, said);
        assert.deepEqual(last.passages.map((p) => [p.doc, p.page]), [['contract.txt', 1]]);
        assert.ok(!JSON.stringify(log).includes('4,500'), 'the audit log holds no document text');
        assert.ok(!JSON.stringify(log).includes('monthly fee'), 'nor the question');
        assert.equal((fs.statSync(path.join(HOME, 'remote-audit.jsonl')).mode & 0o777), 0o600);
    });

    test('a missing key: said, nothing sent', async () => {
        reset();
        const r = await cli(['ask', '--remote', 'big', '--yes', '-n', '24', QUESTION], { BIG_KEY: '' });
        assert.match(r.stderr, /its key is read from \$BIG_KEY, which is not set/);
        assert.equal(proxy.connections, 0);
    });

    test('429 with Retry-After is retried; 500, 401, a cut or malformed stream, a stall, a huge answer fail in one line and the local answer stands', async () => {
        reset('429', 1);
        let r = await cli(['ask', '--remote', 'big', '--yes', '-n', '24', QUESTION], { BIG_KEY: 'k1' });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(proxy.requests.length, 2, 'retried once after the 429');
        assert.doesNotMatch(r.stderr, /The local answer/);
        const cases = [
            ['500', /remote big: HTTP 500: boom\. The local answer:/, 4],
            ['401', /remote big: refused \(HTTP 401\): check its API key\. The local answer:/, 1],
            ['cut', /remote big: the answer was cut off before its end .*The local answer:/, 1],
            ['malformed', /remote big: a malformed event in its answer/, 1],
            ['stall', /remote slow: no answer for 2 s \(timeout\)\. The local answer:/, 1],
            ['huge', /remote big: its answer passed 16 MiB; stopped\. The local answer:/, 1],
        ];
        for (const [fault, re, tries] of cases) {
            reset(fault);
            r = await cli(['ask', '--remote', fault === 'stall' ? 'slow' : 'big', '--yes', '-n', '24', QUESTION],
                          { BIG_KEY: 'k1' });
            assert.equal(r.code, 0, `${fault}: ${r.stderr}`);
            assert.match(r.stderr, re, fault);
            assert.equal(proxy.requests.length, tries, `${fault}: requests`);
            // the local (extractive) answer follows
            assert.match(r.stdout, /4,500 euros/, fault);
        }
        const log = (await cli(['remote', 'log', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
        assert.ok(log.filter((x) => x.error).length >= cases.length);
    });

    test('a remote that answers whole instead of streaming; its citations checked', async () => {
        reset('whole');
        const r = await cli(['ask', '--remote', 'big', '--yes', '--json', QUESTION], { BIG_KEY: 'k1' });
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.equal(j.answer, 'The fee is 4,500 euros a month [1], see also .');
        assert.equal(j.sources[0].cited, true);
        assert.deepEqual(j.dropped_citations, [7]);
    });

    test('redact patterns: replaced in what is sent and shown; a bad one sends nothing', async () => {
        const before = fs.readFileSync(CONFIG, 'utf8');
        try {
            fs.writeFileSync(CONFIG, `${before}redact = 4,500\\s+euros\nredact = \\bmonthly\\b\n`);
            reset();
            const r = await cli(['ask', '--remote', 'big', '--yes', '-n', '8', QUESTION], { BIG_KEY: 'k1' });
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stderr, /the question: What is the \[redacted\] fee\?/);
            assert.match(r.stderr, /redacted: 3 matches of the 2 patterns in the settings/);
            const sent = proxy.requests[0].body;
            assert.ok(!sent.includes('4,500') && !/monthly/.test(sent), 'nothing a pattern matches left');
            assert.ok(sent.includes('[redacted]'));
            const said = Number(r.stderr.match(/with the instructions: (\d+) bytes in all/)[1]);
            assert.equal(proxy.requests[0].bytes, said);
            fs.writeFileSync(CONFIG, `${before}redact = ([\n`);
            reset();
            const bad = await cli(['ask', '--remote', 'big', '--yes', QUESTION], { BIG_KEY: 'k1' });
            assert.equal(bad.code, 1);
            assert.match(bad.stderr, /redact pattern '\(\[': .*nothing is sent until it is fixed/);
            assert.equal(proxy.connections, 0);
        } finally { fs.writeFileSync(CONFIG, before); }
    });

    test('the API: only a model named remote:NAME, and only with --allow-remote NAME', async () => {
        const env = { CAIRN_CONFIG: CONFIG, BIG_KEY: 'k1' };
        const plain = await startServer([], { home: HOME, env });
        try {
            reset();
            const r = await fetch(`${plain.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'remote:big', messages: [{ role: 'user', content: QUESTION }] }) });
            assert.equal(r.status, 403);
            assert.match(JSON.stringify(await r.json()), /--allow-remote big/);
            const lib = await fetch(`${plain.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'cairn-library', messages: [{ role: 'user', content: QUESTION }] }) });
            assert.equal(lib.status, 200);
            assert.equal(proxy.connections, 0);
        } finally { assert.deepEqual(await plain.stop(), { code: 0, sig: null }); }
        const allowed = await startServer(['--allow-remote', 'big'], { home: HOME, env });
        try {
            reset();
            const status = await (await fetch(`${allowed.url}/api/status`)).json();
            assert.deepEqual(status.remotes, ['big']);
            assert.equal(proxy.connections, 0, 'starting and status contact nothing');
            const r = await fetch(`${allowed.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'remote:big', max_tokens: 16, messages: [{ role: 'user', content: QUESTION }] }) });
            const text = await r.text();
            assert.equal(r.status, 200, `${text}\n${allowed.log().slice(-2000)}`);
            const j = JSON.parse(text);
            assert.equal(j.model, 'remote:big');
            assert.equal(j.citations[0].doc, 'contract.txt');
            assert.equal(proxy.requests.length, 1);
            assert.ok(proxy.requests[0].body.includes('4,500 euros'), 'the passage went');
            // a JSON shape cannot be held to a remote's answer: refused, nothing sent
            reset();
            const shaped = await fetch(`${allowed.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'remote:big', messages: [{ role: 'user', content: QUESTION }],
                response_format: { type: 'json_object' } }) });
            assert.equal(shaped.status, 400);
            const err = (await shaped.json()).error;
            assert.equal(err.param, 'response_format');
            assert.match(err.message, /a remote model's answer cannot be held to a JSON shape/);
            assert.equal(proxy.connections, 0);
        } finally { assert.deepEqual(await allowed.stop(), { code: 0, sig: null }); }
    });

    test('a client that leaves while the remote stalls or asks to retry in 30 s: the server stops at once', async () => {
        const env = { CAIRN_CONFIG: CONFIG, BIG_KEY: 'k1' };
        for (const fault of ['429long', 'stall']) {
            const srv = await startServer(['--allow-remote', 'big'], { home: HOME, env });
            reset(fault);
            const ac = new AbortController();
            const done = fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, body: JSON.stringify({
                model: 'remote:big', stream: true, max_tokens: 16, messages: [{ role: 'user', content: QUESTION }] }) })
                .then((r) => r.text()).catch((e) => e.name);
            for (let i = 0; i < 100 && proxy.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
            assert.equal(proxy.requests.length, 1, `${fault}: the request reached the remote`);
            ac.abort();
            assert.equal(await done, 'AbortError');
            const t0 = Date.now();
            assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000));
            const took = Date.now() - t0;
            assert.ok(took < 5000, `${fault}: the server took ${took} ms to stop (the remote's wait is 30 s)`);
            assert.equal(proxy.requests.length, 1, `${fault}: no retry after the client left`);
        }
    });

    test('web UI: the dialog lists the passages; one unticked is not sent', async () => {
        assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}`);
        fs.mkdirSync(SHOTS, { recursive: true });
        fs.writeFileSync(path.join(dir, 'invoice.txt'), 'INVOICE 17\n\nThe monthly fee for March is 4,500 euros; the fee is due on the first day of April.\n');
        assert.equal((await cli(['add', path.join(dir, 'invoice.txt')])).code, 0);
        const srv = await startServer(['--allow-remote', 'big'], { home: HOME, env: { CAIRN_CONFIG: CONFIG, BIG_KEY: 'k1' } });
        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                                args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        try {
            const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
            const errors = [];
            page.on('pageerror', (e) => errors.push(String(e)));
            await page.goto(srv.url);
            await page.waitForFunction(() => document.getElementById('level').textContent !== '…');
            reset();
            await page.fill('#question', QUESTION);
            await page.press('#question', 'Enter');
            await page.waitForSelector('.msg.assistant[data-done="true"] button:has-text("Ask a stronger model")');
            assert.equal(proxy.connections, 0, 'the local answer sends nothing');
            await page.click('.msg.assistant button:has-text("Ask a stronger model")');
            await page.waitForSelector('#remote-dialog[open] #remote-passages input');
            const boxes = page.locator('#remote-passages input');
            const n = await boxes.count();
            assert.ok(n >= 2, `${n} passages listed`);
            const labels = await page.locator('#remote-passages label').allTextContents();
            assert.ok(labels.some((l) => /contract\.txt, p\. 1/.test(l)) && labels.some((l) => /invoice\.txt, p\. 1/.test(l)), labels.join(' | '));
            assert.equal(proxy.connections, 0, 'the preview sends nothing');
            const invoice = labels.findIndex((l) => l.includes('invoice.txt'));
            await boxes.nth(invoice).uncheck();
            await page.screenshot({ path: path.join(SHOTS, 'remote-dialog.png') });
            await page.click('#remote-send');
            await page.waitForSelector('.msg.assistant[data-remote="big"][data-done="true"]', { timeout: 60000 });
            assert.equal(proxy.requests.length, 1);
            const sent = proxy.requests[0].body;
            assert.ok(sent.includes('Acme') || sent.includes('4,500 euros, payable'), 'the kept passage went');
            assert.ok(!sent.includes('INVOICE 17') && !sent.includes('due on the first day of April'), 'the unticked passage did not');
            assert.deepEqual(errors, []);
        } finally {
            await browser.close();
            assert.deepEqual(await srv.stop(), { code: 0, sig: null });
        }
    });

    test('a weak local answer suggests the remote and sends nothing; doctor --network asks it', async () => {
        reset();
        const r = await cli(['ask', QUESTION]);
        assert.equal(r.code, 0);
        assert.match(r.stderr, /note: no language model is installed here; a stronger model may do better: `cairn ask --remote big/);
        const d = await cli(['doctor'], { BIG_KEY: 'k1' });
        assert.match(d.stdout, /remote big .* \(not contacted: `cairn doctor --network` checks it\)/);
        assert.equal(proxy.connections, 0);
        const dn = await cli(['doctor', '--network'], { BIG_KEY: 'k1' });
        assert.match(dn.stdout, /remote big .*: answers \(HTTP 200\)/);
        assert.match(dn.stdout, /remote slow .*: answers \(HTTP 200\)/);
        assert.equal(proxy.requests.length, 2, 'one look at each remote');
        for (const q of proxy.requests) {
            assert.equal(q.url, '/v1/models');
            assert.equal(q.bytes, 0, 'no question sent');
        }
    });

    test('remote rm, and an unknown remote', async () => {
        assert.equal((await cli(['remote', 'rm', 'big'])).code, 0);
        const r = await cli(['ask', '--remote', 'big', '--yes', '-n', '24', QUESTION]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /no remote named big/);
        assert.doesNotMatch(fs.readFileSync(CONFIG, 'utf8'), /remote\.big/);
    });
});
