// rerank_search.test.mjs: the server's library search and grounded answers
// use its reranker -- the active one by default, none with --no-rerank --
// and give the order `cairn search --rerank` gives.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, BIN, RERANK, CLI_TIMEOUT_MS } from './server.mjs';

const DOCS = ['The printer queue is emptied with lprm.',
              'A printer driver is installed with lpadmin.',
              'The printer prints on both sides of the sheet.',
              'Paper jams: open the printer cover and pull gently.',
              'The printer status page lists the ink levels.'];

function cli(home, args) {
    return execFileSync(BIN, [...args, '--home', home], {
        encoding: 'utf8', timeout: CLI_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CAIRN_EMBED_MODEL: '', CAIRN_CHAT_MODEL: '' } });
}

async function search(srv, query, k) {
    const r = await fetch(`${srv.url}/api/library/search`, {
        method: 'POST', body: JSON.stringify({ query, k }) });
    assert.equal(r.status, 200);
    return r.json();
}

describe('library search with a reranker', () => {
    let home, dir;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-rrs-'));
        home = path.join(dir, 'home');
        fs.mkdirSync(path.join(dir, 'docs'));
        DOCS.forEach((t, i) => fs.writeFileSync(path.join(dir, 'docs', `d${i}.txt`), `${t}\n`));
        cli(home, ['add', path.join(dir, 'docs')]);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('the active reranker is used by default, as `cairn search` uses it', async () => {
        const keyword = JSON.parse(cli(home, ['search', '--json', '-k', '5', 'printer']));
        const reranked = JSON.parse(cli(home, ['search', '--json', '-k', '5', '--rerank', RERANK,
                                               'printer']));
        assert.notDeepEqual(reranked.map((x) => x.text), keyword.map((x) => x.text));
        cli(home, ['models', 'import', RERANK, '--name', 'rr']);
        const srv = await startServer([], { home });
        try {
            const s = await search(srv, 'printer', 5);
            assert.equal(s.mode, 'keyword + rerank');
            assert.deepEqual(s.results.map((x) => x.text), reranked.map((x) => x.text));
            for (let i = 0; i < 5; i++)
                assert.ok(Math.abs(s.results[i].score - reranked[i].score) < 1e-5);
            const two = await search(srv, 'printer', 2); // the best 2 of the 30 candidates
            assert.deepEqual(two.results.map((x) => x.text), reranked.slice(0, 2).map((x) => x.text));
            // a grounded answer reads the reranked passages
            const a = await (await fetch(`${srv.url}/api/library/ask`, {
                method: 'POST', body: JSON.stringify({ question: 'printer' }) })).json();
            assert.deepEqual(a.citations.map((c) => c.text), reranked.slice(0, 4).map((x) => x.text));
        } finally {
            await srv.stop();
        }
        const off = await startServer(['--no-rerank'], { home });
        try {
            const s = await search(off, 'printer', 5);
            assert.equal(s.mode, 'keyword');
            assert.deepEqual(s.results.map((x) => x.text), keyword.map((x) => x.text));
        } finally {
            await off.stop();
        }
    });
});
