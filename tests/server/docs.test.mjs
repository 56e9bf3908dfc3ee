// docs.test.mjs: whole-document work over the API (issue 16): a summary
// streamed as NDJSON (steps with pages, the final text as it is written,
// then the sentences with their pages), resumed from the library by the
// next request and by the CLI alike; the extractive summary of a server
// with no language model; fields extracted with a citation each (the quote
// is on its page) or null with the reason; bad requests refused up front.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, BIN, TOOLS, ROOT, CLI_TIMEOUT_MS } from './server.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-docs-'));
const MODEL = path.join(dir, 'sum-chat.gguf');
const PAGES = [];
for (let p = 1; p <= 10; p++) {
    const w = ['pump', 'valve', 'seal', 'bearing', 'motor', 'filter', 'gauge', 'pipe'];
    const s = [];
    for (let i = 0; i < 10; i++)
        s.push(`Page ${p} says the ${w[(p + i) % 8]} needs the ${w[(p * i) % 8]} checked every ${p * 10 + i} hours.`);
    PAGES.push(s.join(' '));
}
const CONTRACT = ['SERVICE AGREEMENT\n\nThis agreement is made between Acme Pumps Ltd and Borealis Water Authority. The monthly fee is 4,500 euros.\n',
                  'Termination\n\nEither party may terminate this agreement with 90 days written notice.\n'];

function cli(home, args) {
    return execFileSync(BIN, args, { env: { ...process.env, CAIRN_HOME: home, CAIRN_CHAT_MODEL: '' },
                                     encoding: 'utf8', timeout: CLI_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function ndjson(url, body) {
    const r = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, text, lines: r.ok ? text.split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [] };
}

describe('documents: summarize and extract over the API', () => {
    let srv, home, ids = {};
    before(async () => {
        execFileSync(path.join(TOOLS, 'mkmodel'), ['--shape', 'tiny', '--type', 'f16', '--ctx', '512', '--untied',
            '--seed', '2', '--tokenizer', path.join(ROOT, 'tests/data/vocab/ggml-vocab-llama-bpe.gguf'), '-o', MODEL],
                     { stdio: 'ignore', timeout: CLI_TIMEOUT_MS });
        fs.writeFileSync(path.join(dir, 'manual.txt'), PAGES.join('\f'));
        fs.writeFileSync(path.join(dir, 'contract.txt'), CONTRACT.join('\f'));
        home = path.join(dir, 'home');
        cli(home, ['add', path.join(dir, 'manual.txt'), path.join(dir, 'contract.txt')]);
        srv = await startServer(['-m', MODEL], { home });
        const { documents } = await (await fetch(`${srv.url}/api/library/documents`)).json();
        for (const d of documents) ids[d.name] = d.id;
    });
    after(async () => {
        const x = await srv.stop();
        assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000));
        fs.rmSync(dir, { recursive: true, force: true });
    });

    test('summary: steps, streamed text, sentences with pages; then found in the library', async () => {
        const { status, lines } = await ndjson(`${srv.url}/api/library/summarize`, { document: ids['manual.txt'], length: 'short' });
        assert.equal(status, 200);
        const steps = lines.filter((l) => l.event === 'step');
        assert.ok(steps.length >= 3, JSON.stringify(lines.slice(0, 3)));
        assert.ok(lines.some((l) => l.event === 'text'), 'the final text streams as it is written');
        const fin = lines.at(-1);
        assert.equal(fin.event, 'summary', JSON.stringify(fin));
        assert.equal(fin.mode, 'generated');
        assert.equal(fin.pages, 10);
        assert.ok(fin.sentences.length > 0);
        for (const s of fin.sentences)
            for (const [a, b] of s.pages) assert.ok(a >= 1 && b >= a && b <= 10, JSON.stringify(s));
        // every page in exactly one first-level group
        let next = 1;
        for (const [a, b] of fin.groups) { assert.ok(a === next || a === next - 1); next = b + 1; }
        assert.equal(next, 11);
        assert.equal(fin.cached, 0);
        // again: every step found in the library, the same sentences
        const again = (await ndjson(`${srv.url}/api/library/summarize`, { document: ids['manual.txt'], length: 'short' })).lines.at(-1);
        assert.equal(again.cached, fin.steps);
        assert.deepEqual(again.sentences, fin.sentences);
        // the CLI with the same model takes up what the server made
        const c = JSON.parse(cli(home, ['summarize', '--json', '--length', 'short', '-m', MODEL, 'manual.txt']));
        assert.equal(c.cached, fin.steps);
        assert.deepEqual(c.sentences, fin.sentences);
    });

    test('summary: bad requests are 400 naming the field; a client that leaves stops it', async () => {
        for (const [body, field] of [[{ document: 'x' }, 'document'], [{ document: 1, length: 'huge' }, 'length'],
                                     [{ document: 1, extractive: 'yes' }, 'extractive']]) {
            const r = await fetch(`${srv.url}/api/library/summarize`, { method: 'POST', body: JSON.stringify(body) });
            assert.equal(r.status, 400);
            assert.match(JSON.stringify(await r.json()), new RegExp(field));
        }
        const gone = (await ndjson(`${srv.url}/api/library/summarize`, { document: 9999 })).lines.at(-1);
        assert.equal(gone.event, 'error');
        assert.match(gone.error, /no document 9999/);
        // leave in the middle of a long one: the server goes on serving
        const ac = new AbortController();
        const r = await fetch(`${srv.url}/api/library/summarize`, { method: 'POST', signal: ac.signal,
                                                                   body: JSON.stringify({ document: ids['manual.txt'], length: 'long' }) });
        const reader = r.body.getReader();
        await reader.read();
        ac.abort();
        const ok = await ndjson(`${srv.url}/api/library/summarize`, { document: ids['manual.txt'], extractive: true });
        assert.equal(ok.lines.at(-1).mode, 'extractive');
        assert.equal(ok.lines.at(-1).sentences.length, 7);
    });

    test('extract: each value with its page and sentence, or null with the reason', async () => {
        const schema = { type: 'object', properties: {
            monthly_fee: { type: 'number', description: 'the fee paid each month' },
            notice_days: { type: 'integer', description: 'days of notice to terminate' },
            parties: { type: 'array', items: { type: 'string' }, description: 'who the agreement is made between' },
            venue: { type: 'string', description: 'city of arbitration' } } };
        const { status, lines } = await ndjson(`${srv.url}/api/library/extract`,
                                               { documents: [ids['contract.txt'], ids['manual.txt']], schema });
        assert.equal(status, 200);
        assert.ok(lines.some((l) => l.event === 'field' && l.field === 'notice_days'));
        const results = lines.filter((l) => l.event === 'result');
        assert.equal(results.length, 2);
        for (const r of results) {
            assert.deepEqual(Object.keys(r.data), Object.keys(schema.properties));
            for (const [k, v] of Object.entries(r.data)) {
                const c = r.citations[k];
                if (v === null) { assert.equal(typeof c.reason, 'string'); continue; }
                // a value: its quote is on its page of the contract, whitespace aside
                const page = CONTRACT[c.page - 1].replace(/\s+/g, ' ');
                assert.ok(page.includes(c.quote), JSON.stringify(c));
            }
        }
        assert.match(results[0].citations.venue.reason, /no passage of the document mentions it/);
        assert.deepEqual(lines.at(-1), { event: 'done', results: 2, model: 'sum-chat' });
        // refused up front: the keyword named
        const bad = await fetch(`${srv.url}/api/library/extract`, { method: 'POST',
            body: JSON.stringify({ documents: [ids['contract.txt']], schema: { type: 'object', properties: { a: { type: 'string', format: 'ipv4' } } } }) });
        assert.equal(bad.status, 400);
        assert.match(JSON.stringify(await bad.json()), /ipv4/);
        const none = await fetch(`${srv.url}/api/library/extract`, { method: 'POST', body: JSON.stringify({ documents: [], schema }) });
        assert.equal(none.status, 400);
    });
});

describe('documents without a language model', () => {
    test('the summary is extractive, labelled so; extraction is refused with the reason', async () => {
        const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-docs-nolm-'));
        fs.writeFileSync(path.join(home, 'manual.txt'), PAGES.join('\f'));
        cli(home, ['add', path.join(home, 'manual.txt')]);
        const srv = await startServer([], { home });
        try {
            const { documents } = await (await fetch(`${srv.url}/api/library/documents`)).json();
            const fin = (await ndjson(`${srv.url}/api/library/summarize`, { document: documents[0].id })).lines.at(-1);
            assert.equal(fin.mode, 'extractive');
            assert.equal(fin.model, null);
            for (const s of fin.sentences) {
                const [[p]] = s.pages;
                assert.ok(s.text.startsWith(`Page ${p} says`), JSON.stringify(s));
            }
            const r = await fetch(`${srv.url}/api/library/extract`, { method: 'POST',
                body: JSON.stringify({ documents: [documents[0].id], schema: { type: 'object', properties: { a: { type: 'string' } } } }) });
            assert.equal(r.status, 409);
            assert.match(JSON.stringify(await r.json()), /needs a language model/);
        } finally {
            assert.deepEqual(await srv.stop(), { code: 0, sig: null });
            fs.rmSync(home, { recursive: true, force: true });
        }
    });
});
