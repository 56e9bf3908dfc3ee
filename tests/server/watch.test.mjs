// watch.test.mjs: `cairn serve` follows the watched folders (issue 18). A
// folder added from the web UI (or POST /api/watch); files written there
// show up in the documents list without a reload, with their vectors when
// the server has an embedding model; 10,000 files dropped at once all land
// while the server's memory stays bounded; only a loopback server lets the
// API add a folder; --no-watch follows nothing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, ROOT, BERT } from './server.mjs';

const CHROMIUM = process.env.CAIRN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(ROOT, process.env.CAIRN_ARTIFACTS || 'build/test-artifacts');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-watch-'));

const json = async (url, opts) => (await fetch(url, opts)).json();
async function until(what, fn, ms) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
        await sleep(200);
    }
}

describe('the server follows watched folders', () => {
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('web UI: a folder added there is followed; new files appear without a reload; stop watching', async () => {
        assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}`);
        fs.mkdirSync(SHOTS, { recursive: true });
        const folder = path.join(dir, 'ui');
        fs.mkdirSync(folder);
        fs.writeFileSync(path.join(folder, 'boiler.txt'), 'The boiler is serviced every spring by the contractor.\n');
        const srv = await startServer(['--watch-settle', '0.3', '-e', BERT]);
        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                                args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        try {
            const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
            const errors = [];
            page.on('pageerror', (e) => errors.push(e.message));
            await page.goto(srv.url);
            await page.getByRole('tab', { name: 'Documents' }).click();
            await page.getByText('no folder is watched yet').waitFor({ timeout: 10000 });
            await page.getByLabel(/Follow a folder/).fill(folder);
            await page.getByRole('button', { name: 'Watch', exact: true }).click();
            await page.locator('#watch-list li', { hasText: folder }).getByText('watched').waitFor({ timeout: 10000 });
            // the file already there: found by the folder's first scan
            await page.locator('#doc-rows tr', { hasText: 'boiler.txt' }).waitFor({ timeout: 15000 });
            // a file written now: listed without a reload
            fs.writeFileSync(path.join(folder, 'pump.md'), '# Pump\n\nPump P-101 needs priming before the first start.\n');
            await page.locator('#doc-rows tr', { hasText: 'pump.md' }).waitFor({ timeout: 15000 });
            await page.getByText(/last: added pump\.md/).waitFor({ timeout: 10000 });
            await page.screenshot({ path: path.join(SHOTS, 'watch.png'), fullPage: true });
            // with vectors: the embedding model ran on what the folder brought
            const st = await until('embedded', async () => {
                const s = await json(`${srv.url}/api/status`);
                return s.library.documents === 2 && s.library.embedded_passages === s.library.passages && s;
            }, 20000);
            assert.ok(st.library.passages >= 2);
            assert.equal(st.watch.folders[0].path, fs.realpathSync(folder));
            // deleted from the folder: gone from the list
            fs.rmSync(path.join(folder, 'boiler.txt'));
            await page.locator('#doc-rows tr', { hasText: 'boiler.txt' }).waitFor({ state: 'detached', timeout: 15000 });
            // stop watching: the folder goes, its documents stay, new files are not taken
            page.on('dialog', (d) => d.accept());
            await page.getByRole('button', { name: `Stop watching ${fs.realpathSync(folder)}` }).click();
            await page.getByText('no folder is watched yet').waitFor({ timeout: 10000 });
            fs.writeFileSync(path.join(folder, 'later.txt'), 'Written after the folder was no longer watched.\n');
            await sleep(3000);
            const docs = (await json(`${srv.url}/api/library/documents`)).documents.map((d) => d.name);
            assert.deepEqual(docs, ['pump.md']);
            assert.deepEqual(errors, []);
        } finally {
            await browser.close();
            assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000));
        }
    });

    test('10,000 files dropped at once: all indexed, memory bounded', async () => {
        const folder = path.join(dir, 'bulk');
        fs.mkdirSync(folder);
        const srv = await startServer(['--watch-settle', '0.5']);
        try {
            const add = await json(`${srv.url}/api/watch`, { method: 'POST', body: JSON.stringify({ add: folder }) });
            assert.equal(add.path, fs.realpathSync(folder));
            await until('watching', async () => (await json(`${srv.url}/api/watch`)).folders[0]?.state === 'watching', 10000);
            const before = srv.rssKb();
            const t0 = Date.now();
            for (let i = 0; i < 10000; i++)
                fs.writeFileSync(path.join(folder, `r${i}.txt`), `Record ${i} of the batch: widget${i}.\n`);
            const written = Date.now() - t0;
            let peak = 0;
            await until('10,000 documents', async () => {
                peak = Math.max(peak, srv.rssKb());
                return (await json(`${srv.url}/api/status`)).library.documents === 10000;
            }, 240000);
            const took = Date.now() - t0 - written;
            // the totals are reported when a batch is done: after an overflow the
            // rescan is one batch, whose documents are committed one by one before
            await until('the batch reported', async () => (await json(`${srv.url}/api/watch`)).activity === 'idle' &&
                        (await json(`${srv.url}/api/watch`)).totals.added === 10000, 60000);
            const w = await json(`${srv.url}/api/watch`);
            assert.equal(w.totals.added, 10000);
            assert.equal(w.totals.failed, 0);
            const hit = await json(`${srv.url}/api/library/search`, { method: 'POST', body: JSON.stringify({ query: 'widget9999' }) });
            assert.equal(hit.results[0].doc, 'r9999.txt');
            console.log(`# 10,000 files written in ${written} ms, indexed ${took} ms later; RSS ${before} kB before, peak ${peak} kB`);
            // an ASan server keeps freed memory in quarantine: its RSS says
            // little (LSan checks leaks when it exits), so a looser bound there
            const limitMb = process.env.CAIRN_SANITIZER === 'address' ? 400 : 150;
            assert.ok(peak - before < limitMb * 1024, `the server grew by ${peak - before} kB`);
        } finally {
            assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-2000));
        }
    });

    test('only a loopback server lets the API add a folder; --no-watch follows nothing', async () => {
        const folder = path.join(dir, 'net');
        fs.mkdirSync(folder);
        const net = await startServer(['--host', '0.0.0.0', '--api-key', 'k'], { env: { CAIRN_API_KEY: 'k' } });
        try {
            const r = await fetch(`${net.url}/api/watch`, { method: 'POST', headers: { Authorization: 'Bearer k' },
                                                            body: JSON.stringify({ add: folder }) });
            assert.equal(r.status, 403);
            assert.match((await r.json()).error.message, /cairn watch add/);
        } finally { assert.deepEqual(await net.stop(), { code: 0, sig: null }); }
        const off = await startServer(['--no-watch']);
        try {
            const bad = await fetch(`${off.url}/api/watch`, { method: 'POST', body: '{"add": 1}' });
            assert.equal(bad.status, 400);
            const missing = await fetch(`${off.url}/api/watch`, { method: 'POST', body: JSON.stringify({ add: path.join(dir, 'nope') }) });
            assert.equal(missing.status, 404);
            const ok = await json(`${off.url}/api/watch`, { method: 'POST', body: JSON.stringify({ add: folder }) });
            assert.equal(ok.already, false);
            fs.writeFileSync(path.join(folder, 'x.txt'), 'not followed\n');
            await sleep(2500);
            const w = await json(`${off.url}/api/watch`);
            assert.equal(w.activity, 'off');
            assert.equal((await json(`${off.url}/api/status`)).library.documents, 0);
        } finally { assert.deepEqual(await off.stop(), { code: 0, sig: null }); }
    });
});
