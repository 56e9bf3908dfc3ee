// race.test.mjs: everything at once against one server — status (which
// reads the queues), embeddings, hybrid searches, grounded (extractive) answers, uploads
// being indexed through the shared embedding model, removals. Every answer
// is a success or a clean refusal, and the server exits cleanly; `make tsan`
// runs this file against a ThreadSanitizer build, where a data race makes
// the server's exit status non-zero.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, curl, BERT, DOCS } from './server.mjs';

const json = (body) => ({ method: 'POST', headers: { 'Content-Type': 'application/json' },
                          body: JSON.stringify(body) });

describe('concurrent requests of every kind', () => {
    let srv;
    before(async () => { srv = await startServer(['-e', BERT, '--queue', '64', '--quiet']); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-6000)); });

    test('status, embeddings, search, ask, upload and remove side by side', async () => {
        const first = curl(['-F', `file=@${path.join(DOCS, 'simple.pdf')}`, `${srv.url}/api/library/documents`]);
        assert.equal(first.status, 200);
        const jobs = [];
        for (let i = 0; i < 6; i++) {
            jobs.push(fetch(`${srv.url}/api/status`).then(async (r) => {
                assert.equal(r.status, 200);
                const st = await r.json();
                for (const m of st.models) assert.ok(m.queued >= 0);
            }));
            jobs.push(fetch(`${srv.url}/v1/embeddings`, json({ model: 'tiny-bert-f16', input: [`text ${i}`, 'more'] }))
                .then(async (r) => {
                    assert.ok([200, 429].includes(r.status), `embeddings ${r.status}`);
                    if (r.status === 200) assert.equal((await r.json()).data.length, 2);
                }));
            jobs.push(fetch(`${srv.url}/api/library/search`, json({ query: 'crème brûlée Fridays' }))
                .then(async (r) => {
                    assert.equal(r.status, 200);
                    const j = await r.json();
                    assert.ok(['hybrid', 'keyword'].includes(j.mode));
                }));
            jobs.push(fetch(`${srv.url}/api/library/documents`).then((r) => assert.equal(r.status, 200)));
        }
        for (let i = 0; i < 2; i++)
            jobs.push(fetch(`${srv.url}/v1/chat/completions`, json({
                model: 'cairn-library', max_tokens: 4, messages: [{ role: 'user', content: 'When is crème brûlée served?' }] }))
                .then((r) => assert.equal(r.status, 200)));
        const up = new FormData();
        up.append('file', new Blob(['The heron waits by the river at dawn.\n']), 'heron.md');
        jobs.push(fetch(`${srv.url}/api/library/documents`, { method: 'POST', body: up }).then(async (r) => {
            assert.equal(r.status, 200);
            const events = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
            assert.equal(events.at(-1).event, 'done');
            assert.equal(events.at(-1).added, 1);
        }));
        // status while the embedding queue fills and drains (it reads the queue's length)
        for (let i = 0; i < 24; i++) {
            jobs.push(fetch(`${srv.url}/v1/embeddings`, json({ model: 'tiny-bert-f16', input: Array(8).fill(`queue ${i}`) }))
                .then((r) => assert.ok([200, 429].includes(r.status), `embeddings ${r.status}`)));
            jobs.push(fetch(`${srv.url}/api/status`).then((r) => assert.equal(r.status, 200)));
        }
        await Promise.all(jobs);
        const docs = (await (await fetch(`${srv.url}/api/library/documents`)).json()).documents;
        const heron = docs.find((d) => d.name === 'heron.md');
        const del = await fetch(`${srv.url}/api/library/documents/${heron.id}`, { method: 'DELETE' });
        assert.equal(del.status, 200);
        const s = await (await fetch(`${srv.url}/api/library/search`, json({ query: 'heron river' }))).json();
        assert.ok(!s.results.some((x) => x.doc === 'heron.md'));
    });
});
