// updates.test.mjs: model updates in the background (issue 18). With the
// default `updates = off` the server asks the catalog server nothing; with
// `updates = daily` it checks at start (never checked before), downloads
// the version the signed catalog publishes meanwhile, verifies it and
// offers it in /api/status and the web UI -- the current version stays in
// use until the user switches; a restart does not check again before its
// time; the switch keeps the old version as the fallback.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, testCatalog, BIN, ROOT, CLI_TIMEOUT_MS } from './server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STORIES = path.join(ROOT, 'tests/data/models/stories260K-rvspoc.gguf');

describe('model updates', () => {
    let cat;
    const cli = (args) => execFileSync(BIN, args, { env: { ...process.env, ...cat.env, CAIRN_HOME: cat.home },
                                                    encoding: 'utf8', timeout: CLI_TIMEOUT_MS });
    before(async () => {
        cat = await testCatalog();
        cli(['models', 'pull', 'dreams']);
    });
    after(() => cat.close());

    test('updates = off: not one request to the catalog server', async () => {
        cat.requests();
        const srv = await startServer([], { home: cat.home, env: cat.env });
        try {
            const st = await (await fetch(`${srv.url}/api/status`)).json();
            assert.equal(st.updates.schedule, 'off');
            await sleep(3000);
            assert.deepEqual(cat.requests(), []);
        } finally { assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000)); }
    });

    test('the schedule set from the web UI is saved in the settings; only on a loopback server', async () => {
        const srv = await startServer([], { home: cat.home, env: cat.env });
        try {
            const bad = await fetch(`${srv.url}/api/updates`, { method: 'POST', body: '{"schedule": "hourly"}' });
            assert.equal(bad.status, 400);
            const r = await fetch(`${srv.url}/api/updates`, { method: 'POST', body: '{"schedule": "weekly"}' });
            assert.equal(r.status, 200);
            assert.equal((await r.json()).schedule, 'weekly');
            assert.match(fs.readFileSync(cat.config, 'utf8'), /^updates = weekly$/m);
            assert.match(fs.readFileSync(cat.config, 'utf8'), /^catalog_key = /m); // other lines kept
            const off = await fetch(`${srv.url}/api/updates`, { method: 'POST', body: '{"schedule": "off"}' });
            assert.equal((await off.json()).schedule, 'off');
            assert.match(fs.readFileSync(cat.config, 'utf8'), /^updates = off$/m);
            assert.equal((fs.readFileSync(cat.config, 'utf8').match(/^updates =/mg) || []).length, 1);
        } finally { assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000)); }
        const net = await startServer(['--host', '0.0.0.0', '--api-key', 'k'], { home: cat.home, env: { ...cat.env, CAIRN_API_KEY: 'k' } });
        try {
            const r = await fetch(`${net.url}/api/updates`, { method: 'POST', headers: { Authorization: 'Bearer k' }, body: '{"schedule": "daily"}' });
            assert.equal(r.status, 403);
        } finally { assert.deepEqual(await net.stop(), { code: 0, sig: null }); }
        cat.requests();
    });

    test('updates = daily: a version published meanwhile is fetched, verified, offered, not used', async () => {
        const sha = cat.publish(3, STORIES);
        fs.writeFileSync(cat.config, fs.readFileSync(cat.config, 'utf8').replace(/^updates = .*\n/m, '') +
                         'updates = daily\nupdate_rate = 20MB/s\n');
        cat.requests();
        const before = JSON.parse(cli(['models', 'list', '--json'])).installed[0];
        const srv = await startServer([], { home: cat.home, env: cat.env });
        try {
            let st;
            for (let i = 0; i < 100; i++) {
                st = await (await fetch(`${srv.url}/api/status`)).json();
                if (st.updates.offers?.[0]?.ready) break;
                await sleep(200);
            }
            assert.equal(st.updates.schedule, 'daily');
            assert.equal(st.updates.offers[0].name, 'dreams');
            assert.equal(st.updates.offers[0].version, sha.slice(0, 12), JSON.stringify(st.updates));
            assert.equal(st.updates.offers[0].ready, true);
            const asked = cat.requests().join('\n');
            assert.match(asked, /catalog\.json/);
            assert.match(asked, /stories260K-rvspoc\.gguf/);
            assert.match(srv.log(), /dreams: an updated version is ready/);
            // still the old version in use
            const now = JSON.parse(cli(['models', 'list', '--json'])).installed[0];
            assert.equal(now.sha256, before.sha256);
            assert.equal(now.update_ready, sha.slice(0, 12));
            // switched when told: the old one is the fallback
            const r = await fetch(`${srv.url}/api/models/use`, { method: 'POST', body: JSON.stringify({ name: `dreams@${sha.slice(0, 12)}` }) });
            assert.equal(r.status, 200, await r.clone().text());
            const after = JSON.parse(cli(['models', 'list', '--json'])).installed[0];
            assert.equal(after.sha256, sha);
            assert.equal(after.rollback, true);
        } finally { assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000)); }
        // a restart does not check again before a day has passed
        cat.requests();
        const again = await startServer([], { home: cat.home, env: cat.env });
        try {
            await sleep(2500);
            assert.deepEqual(cat.requests(), []);
        } finally { assert.deepEqual(await again.stop(), { code: 0, sig: null }); }
    });

    test('switching while requests run: none is dropped, the new version answers after', async () => {
        // v3: the first file with 4096 bytes after its end (another sha256)
        const v3 = path.join(path.dirname(cat.config), 'v3.gguf');
        fs.writeFileSync(v3, Buffer.concat([fs.readFileSync(path.join(ROOT, 'tests/data/models/aidreams260K.gguf')),
                                            Buffer.alloc(4096)]));
        const sha = cat.publish(4, v3);
        cli(['models', 'update', '--check']);
        const srv = await startServer(['-m', 'dreams', '--queue', '64'], { home: cat.home, env: cat.env });
        try {
            const size0 = (await (await fetch(`${srv.url}/api/status`)).json()).models[0].size;
            const chat = (i) => fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'dreams', max_tokens: 400, temperature: 0, stream: i % 2 === 0,
                messages: [{ role: 'user', content: `Once upon a time ${i}` }] }) })
                .then(async (r) => ({ status: r.status, text: await r.text(), at: Date.now() }));
            // the first streams (inside, running), the others wait in the worker's
            // queue (inside too): then the switch is asked for
            let first;
            const started = new Promise((res) => { first = res; });
            const before = [fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({
                model: 'dreams', max_tokens: 400, temperature: 0, stream: true,
                messages: [{ role: 'user', content: 'Once upon a time' }] }) })
                .then(async (r) => {
                    const rd = r.body.getReader();
                    let text = '';
                    for (;;) {
                        const { value, done } = await rd.read();
                        if (done) break;
                        text += Buffer.from(value).toString();
                        first();
                    }
                    return { status: r.status, text };
                }), ...Array.from({ length: 23 }, (_, i) => chat(i))];
            await started;
            const use = fetch(`${srv.url}/api/models/use`, { method: 'POST', body: JSON.stringify({ name: `dreams@${sha.slice(0, 12)}` }) })
                .then(async (r) => ({ status: r.status, body: await r.json(), at: Date.now() }));
            await sleep(20);
            const during = Array.from({ length: 4 }, (_, i) => chat(100 + i));
            const [u, ...rs] = await Promise.all([use, ...before, ...during]);
            assert.equal(u.status, 200, JSON.stringify(u.body));
            assert.equal(u.body.switched, true);
            for (const r of rs) {
                assert.equal(r.status, 200, r.text.slice(0, 300));
                assert.ok(r.text.includes('"content"') || r.text.includes('[DONE]'), r.text.slice(0, 300));
            }
            const line = srv.log().match(/dreams: switched to .* the (\d+) requests using models/);
            assert.ok(line, srv.log().slice(-2000));
            console.log(`# ${line[0]}`);
            assert.ok(Number(line[1]) >= 1, 'the switch waited for the requests inside');
            const st = await (await fetch(`${srv.url}/api/status`)).json();
            assert.notEqual(st.models[0].size, size0);
            assert.equal(st.models[0].size, fs.statSync(v3).size);
            const after = await chat(7);
            assert.equal(after.status, 200);
            assert.equal(JSON.parse(cli(['models', 'list', '--json'])).installed[0].sha256, sha);
        } finally { assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000)); }
    });
});
