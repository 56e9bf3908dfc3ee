// rerank.test.mjs: POST /v1/rerank in the shape llama.cpp's server and
// Jina/Cohere clients use, against `cairn rerank` on the same model.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, BIN, BERT, RERANK, CLI_TIMEOUT_MS } from './server.mjs';

const NAME = 'tiny-rerank-f16';
const QUERY = 'How do I cancel a print job?';
const DOCS = ['Use lprm with the job number to remove a queued job.',
              'The printer supports duplex output.', 'Paris is the capital of France.'];

async function post(url, body) {
    const r = await fetch(`${url}/v1/rerank`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: r.status, json: await r.json() };
}

describe('POST /v1/rerank', () => {
    let srv;
    before(async () => { srv = await startServer(['--rerank-model', RERANK]); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('scores match `cairn rerank`, best first, top_n honoured', async () => {
        const cli = execFileSync(BIN, ['rerank', '-m', RERANK, '-t', '1', QUERY, ...DOCS],
                                 { encoding: 'utf8', timeout: CLI_TIMEOUT_MS })
            .trim().split('\n').map(Number);
        assert.equal(cli.length, 3);
        const all = await post(srv.url, { model: NAME, query: QUERY, documents: DOCS });
        assert.equal(all.status, 200, JSON.stringify(all.json));
        assert.equal(all.json.model, NAME);
        assert.equal(all.json.results.length, 3);
        assert.deepEqual(all.json.results.map((x) => x.index).sort(), [0, 1, 2]);
        for (let i = 0; i < 3; i++) {
            const x = all.json.results[i];
            assert.ok(Math.abs(x.relevance_score - cli[x.index]) < 1e-6, `${x.relevance_score} vs ${cli[x.index]}`);
            if (i) assert.ok(all.json.results[i - 1].relevance_score >= x.relevance_score);
        }
        assert.ok(all.json.usage.prompt_tokens > 0);
        const two = await post(srv.url, { query: QUERY, documents: DOCS, top_n: 2 });
        assert.equal(two.status, 200);
        assert.deepEqual(two.json.results, all.json.results.slice(0, 2));
        // Jina/Cohere: documents as {text}, return_documents
        const objs = await post(srv.url, { model: NAME, query: QUERY, top_n: 1, return_documents: true,
                                           documents: DOCS.map((text) => ({ text })) });
        assert.equal(objs.status, 200);
        assert.equal(objs.json.results.length, 1);
        assert.equal(objs.json.results[0].index, all.json.results[0].index);
        assert.equal(objs.json.results[0].document.text, DOCS[all.json.results[0].index]);
    });

    test('bad requests are 400/404 naming the field', async () => {
        for (const [body, status, param] of [
            [{ documents: DOCS }, 400, 'query'],
            [{ query: QUERY, documents: [] }, 400, 'documents'],
            [{ query: QUERY, documents: [1] }, 400, 'documents'],
            [{ query: QUERY, documents: DOCS, top_n: 0 }, 400, 'top_n'],
            [{ model: 'nope', query: QUERY, documents: DOCS }, 404, 'model'],
        ]) {
            const r = await post(srv.url, body);
            assert.equal(r.status, status, JSON.stringify(body));
            assert.equal(r.json.error.param, param, JSON.stringify(r.json));
        }
        assert.equal((await post(srv.url, '{"query": ')).status, 400);
    });
});

describe('a server without a reranker', () => {
    test('answers /v1/rerank with 400, and an embedding model is no reranker', async () => {
        const srv = await startServer(['-e', BERT]);
        try {
            const r = await post(srv.url, { query: QUERY, documents: DOCS });
            assert.equal(r.status, 400);
            assert.match(r.json.error.message, /no reranker/);
        } finally {
            await srv.stop();
        }
        await assert.rejects(startServer(['--rerank-model', BERT]), /is not a reranker/);
    });
});
