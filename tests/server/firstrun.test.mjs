// firstrun.test.mjs: the first run in the browser (issue 18). A fresh data
// directory, the test catalog (a chat and an embedding model served by
// tools/testhttpd): the welcome panel shows the machine and the two models
// recommended for it; a document added and searched before any model is
// there (keyword level); one button downloads both, each in use as it lands
// (the level rises, no restart), the library is embedded when the embedding
// model arrives, and the question is answered with its source.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, testCatalog, ROOT, DOCS, BERT, HELPER } from './server.mjs';

const CHROMIUM = process.env.CAIRN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(ROOT, process.env.CAIRN_ARTIFACTS || 'build/test-artifacts');

describe('first run in the browser', () => {
    let cat, srv, browser;
    before(async () => {
        cat = await testCatalog('', [{ name: 'helper', role: 'chat', arch: 'llama', file: HELPER },
                                     { name: 'minibert', role: 'embed', arch: 'bert', file: BERT }],
                                { dreams: false });
        srv = await startServer([], { home: cat.home, env: cat.env });
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                          args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    });
    after(async () => {
        await browser?.close();
        assert.deepEqual(await srv.stop(), { code: 0, sig: null }, srv.log().slice(-3000));
        cat.close();
    });

    test('from the first page to an answer', async () => {
        assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM}`);
        fs.mkdirSync(SHOTS, { recursive: true });
        const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        await page.goto(srv.url);
        // the welcome: this machine, and what to get for it
        await page.locator('#welcome').waitFor({ timeout: 10000 });
        assert.match(await page.textContent('#welcome-machine'), /This computer: .* memory .* cores .* free disk/);
        const models = await page.locator('#welcome-models li').allTextContents();
        assert.equal(models.length, 2, models.join(' | '));
        assert.match(models[0], /helper — writes answers/);
        assert.match(models[1], /minibert — finds passages by meaning/);
        assert.equal(await page.textContent('#level'), 'keyword search');
        await page.screenshot({ path: path.join(SHOTS, 'firstrun.png'), fullPage: true });

        // meanwhile: a document added and found, before any model
        await page.click('#tab-docs');
        await page.setInputFiles('#file', path.join(DOCS, 'simple.pdf'));
        await page.waitForSelector('.uploads li[data-done="true"]', { timeout: 60000 });
        const found = await (await fetch(`${srv.url}/api/library/search`, { method: 'POST',
            body: JSON.stringify({ query: 'crème brûlée' }) })).json();
        assert.equal(found.mode, 'keyword');
        assert.match(found.results[0].path, /simple\.pdf$/);

        // one button: both models, each in use as it lands
        await page.click('#tab-chat');
        await page.click('#welcome-get');
        await page.locator('#welcome-models li', { hasText: 'helper' }).getByText('installed, in use').waitFor({ timeout: 120000 });
        await page.locator('#welcome-models li', { hasText: 'minibert' }).getByText('installed, in use').waitFor({ timeout: 120000 });
        await page.waitForFunction(() => document.getElementById('level').textContent === 'written answers', null, { timeout: 20000 });
        // the library embedded once the embedding model arrived
        let st;
        for (let i = 0; i < 100; i++) {
            st = await (await fetch(`${srv.url}/api/status`)).json();
            if (st.library.embedded_passages === st.library.passages) break;
            await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(st.library.embedded_passages, st.library.passages);
        assert.deepEqual(st.models.map((m) => m.name).sort(), ['helper', 'minibert']);
        const hybrid = await (await fetch(`${srv.url}/api/library/search`, { method: 'POST',
            body: JSON.stringify({ query: 'crème brûlée' }) })).json();
        assert.equal(hybrid.mode, 'hybrid');

        // and the question answered, with its source
        await page.fill('#question', 'When is crème brûlée served?');
        await page.press('#question', 'Enter');
        await page.waitForSelector('.msg.assistant[data-done="true"]', { timeout: 120000 });
        const chips = await page.locator('.msg.assistant .chip').allTextContents();
        assert.ok(chips.some((c) => /simple\.pdf|Cairn Fixture/.test(c)), `chips: ${chips.join(' | ')}; ` +
                  `answer: ${await page.textContent('.msg.assistant')}`);
        await page.click('#welcome-later');
        assert.equal(await page.locator('#welcome').isHidden(), true);
        await page.screenshot({ path: path.join(SHOTS, 'firstrun-answer.png'), fullPage: true });
        assert.deepEqual(errors, []);
    });
});
