// models.test.mjs: the model manager through the API. testhttpd (a file
// server on 127.0.0.1, from tools/) serves a catalog signed with a key made
// for the test and a small model; the server lists, pulls with progress,
// activates and removes it, and a second server loads it by name.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, testCatalog } from './server.mjs';

describe('model manager', () => {
    let cat, home, srv;
    before(async () => {
        cat = await testCatalog();
        home = cat.home;
        srv = await startServer([], { home, env: cat.env });
    });
    after(async () => {
        const x = await srv.stop();
        cat?.close();
        assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000));
    });

    const list = async () => (await fetch(`${srv.url}/api/models`)).json();
    const post = (p, body) => fetch(`${srv.url}${p}`, { method: 'POST', body: JSON.stringify(body) });

    test('list: the signed catalog, fit for this machine, nothing installed', async () => {
        const l = await list();
        assert.deepEqual(l.installed, []);
        assert.equal(l.available.length, 1);
        const d = l.available[0];
        assert.equal(d.name, 'dreams');
        assert.equal(d.installed, false);
        assert.ok(['fits', 'tight', 'too big'].includes(d.fit));
        assert.ok(l.machine.ram_total > 0 && l.machine.cores >= 1);
        assert.match(l.catalog, /catalog\.json/);
        assert.equal(l.recommended.chat.name, 'dreams');
    });

    test('pull: progress events, then installed and active', async () => {
        const res = await post('/api/models/pull', { name: 'dreams' });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
        const events = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
        const phases = new Set(events.filter((e) => e.event === 'progress').map((e) => e.phase));
        assert.ok(phases.has('download') && phases.has('install'), [...phases].join());
        const dl = events.filter((e) => e.phase === 'download').at(-1);
        assert.equal(dl.done, dl.total);
        const last = events.at(-1);
        assert.equal(last.event, 'done', JSON.stringify(last));
        assert.equal(last.active, true);
        // the server had no language model: the first one lands in use at once
        assert.equal(last.loaded, true, JSON.stringify(last));
        const l = await list();
        assert.equal(l.installed.length, 1);
        assert.equal(l.installed[0].name, 'dreams');
        assert.equal(l.installed[0].verified, true);
        assert.equal(l.installed[0].loaded, true);
        assert.equal(l.available[0].installed, true);
        const st = await (await fetch(`${srv.url}/api/status`)).json();
        assert.equal(st.level, 'answers');
        const r = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
            model: 'dreams', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }) });
        assert.equal(r.status, 200);
        assert.match(srv.log(), /dreams: loaded .* waiting for the \d+ requests/);
    });

    test('use, unknown names, and a server that loads the model by name', async () => {
        const u = await post('/api/models/use', { name: 'dreams' });
        assert.equal(u.status, 200);
        const uj = await u.json();
        assert.equal(uj.role, 'chat');
        assert.equal(uj.loaded, true);
        assert.equal((await post('/api/models/use', { name: 'nope' })).status, 404);
        assert.equal((await post('/api/models/pull', { name: 'nope' })).status, 404);
        assert.equal((await post('/api/models/pull', { name: 5 })).status, 400);
        assert.equal((await fetch(`${srv.url}/api/models/nope`, { method: 'DELETE' })).status, 404);
        // a second server: the active chat model, named as installed
        const two = await startServer([], { home, env: cat.env });
        try {
            const ids = (await (await fetch(`${two.url}/v1/models`)).json()).data.map((m) => m.id);
            assert.ok(ids.includes('dreams'), ids.join());
            const r = await fetch(`${two.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'dreams', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }) });
            assert.equal(r.status, 200);
            const busy = await fetch(`${two.url}/api/models/dreams`, { method: 'DELETE' });
            assert.equal(busy.status, 409);
        } finally {
            assert.deepEqual(await two.stop(), { code: 0, sig: null });
        }
    });

    test('remove: not while this server runs it', async () => {
        const r = await fetch(`${srv.url}/api/models/dreams`, { method: 'DELETE' });
        assert.equal(r.status, 409);
        assert.match((await r.json()).error.message, /loaded by this server/);
        assert.equal((await list()).installed.length, 1);
    });
});
