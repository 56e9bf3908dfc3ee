// browser.test.mjs: the web UI in a real browser. playwright-core drives
// Debian's chromium (headless, --no-sandbox): upload a real PDF, wait for it
// to be indexed, ask a question, see the answer stream in and a citation
// chip with the right page, open the passage, open the models view.
// Screenshots go to $CAIRN_ARTIFACTS (default build/test-artifacts).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, testCatalog, ROOT, SLOW, BERT, DOCS } from './server.mjs';

const CHROMIUM = process.env.CAIRN_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(ROOT, process.env.CAIRN_ARTIFACTS || 'build/test-artifacts');

describe('web UI in chromium', () => {
    let srv, browser, page;
    const errors = [];
    before(async () => {
        assert.ok(fs.existsSync(CHROMIUM), `no browser at ${CHROMIUM} (apt-get install chromium)`);
        fs.mkdirSync(SHOTS, { recursive: true });
        srv = await startServer(['-m', SLOW, '-e', BERT, '--max-tokens', '48']);
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                          args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
        page.on('pageerror', (e) => errors.push(String(e)));
        page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
        await page.goto(srv.url);
    });
    after(async () => {
        await browser?.close();
        const x = await srv.stop();
        assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000));
    });

    test('status line says which level of service is active', async () => {
        await page.waitForFunction(() => document.getElementById('level').textContent !== '…');
        assert.equal(await page.textContent('#level'), 'written answers');
        assert.match(await page.textContent('#status'), /language model tiny-llama-256-q4_k_m/);
    });

    test('documents: upload a PDF, see it indexed', async () => {
        await page.click('#tab-docs');
        await page.setInputFiles('#file', path.join(DOCS, 'simple.pdf'));
        await page.waitForSelector('.uploads li[data-done="true"]', { timeout: 60000 });
        assert.match(await page.textContent('.uploads li .state'), /indexed/);
        const row = page.locator('#doc-rows tr[data-name="simple.pdf"]');
        await row.waitFor();
        const cells = await row.locator('td').allTextContents();
        assert.equal(cells[1], '3');
        await page.screenshot({ path: path.join(SHOTS, 'documents.png'), fullPage: true });
    });

    test('chat: streamed answer and a citation chip with the right page', async () => {
        await page.click('#tab-chat');
        // streaming: text appears while the message is still marked as
        // streaming. A fast model can finish between two polls of a
        // selector, so a MutationObserver records it as it happens.
        await page.evaluate(() => {
            window.__sawStreamedText = false;
            window.__sawPendingChips = false;
            new MutationObserver(() => {
                const t = document.querySelector('.msg.assistant.streaming .text');
                if (t && t.textContent.length > 0)
                    window.__sawStreamedText = true;
                // the sources are on screen while the answer is being written
                if (document.querySelector('.msg.assistant.streaming .chips.pending .chip'))
                    window.__sawPendingChips = true;
            }).observe(document.body, { subtree: true, childList: true, characterData: true,
                                        attributes: true });
        });
        await page.fill('#question', 'When is crème brûlée served?');
        await page.press('#question', 'Enter');
        await page.waitForSelector('.msg.assistant[data-done="true"]', { timeout: 120000 });
        assert.ok(await page.evaluate(() => window.__sawStreamedText),
                  'text was shown while the answer was still streaming');
        assert.ok(await page.evaluate(() => window.__sawPendingChips),
                  'the sources were shown before the answer was complete');
        assert.equal(await page.locator('.msg.assistant .chips').count(), 1);
        assert.equal(await page.locator('.msg.assistant .chips.pending').count(), 0);
        assert.ok((await page.textContent('.msg.assistant .text')).length > 0);
        const chip = page.locator('.msg.assistant .chip').first();
        await chip.waitFor();
        assert.equal(await chip.textContent(), '[1] simple.pdf, p. 2');
        await chip.click();
        await page.waitForSelector('#passage:not([hidden]) mark');
        assert.equal(await page.textContent('#passage mark'), 'The café serves crème brûlée on Fridays.');
        await page.screenshot({ path: path.join(SHOTS, 'chat.png'), fullPage: true });
    });

    test('documents: a summary streamed with its pages; fields extracted with theirs', async () => {
        await page.click('#tab-docs');
        const row = page.locator('#doc-rows tr[data-name="simple.pdf"]');
        await row.locator('button:has-text("Summarize")').click();
        await page.waitForSelector('#doc-result:not([hidden])');
        await page.waitForSelector('#doc-result .summary li', { timeout: 120000 });
        const items = await page.locator('#doc-result .summary li').count();
        assert.ok(items > 0);
        for (const chip of await page.locator('#doc-result .summary li .pages').allTextContents())
            assert.match(chip, /^pp?\. [1-3](-[1-3])?(, [1-3](-[1-3])?)*$/);
        assert.match(await page.textContent('#doc-result-state'), /\d+ steps? \(\d+ done before\)|Extractive/);
        await page.screenshot({ path: path.join(SHOTS, 'summary.png'), fullPage: true });

        await page.click('#extract-box summary');
        await page.fill('#schema', JSON.stringify({ type: 'object', properties: {
            dessert: { type: 'string', description: 'the dessert the café serves' },
            day: { type: 'string', description: 'the day it is served' } } }));
        await row.locator('button:has-text("Extract")').click();
        await page.waitForSelector('#doc-result .fields tr', { timeout: 120000 });
        assert.equal(await page.locator('#doc-result .fields tr').count(), 2);
        // each field: a value with its page and quote, or a dash and the reason
        for (const cellText of await page.locator('#doc-result .fields tr td:nth-child(2)').allTextContents())
            assert.match(cellText, /p\. \d|— /);
        await page.screenshot({ path: path.join(SHOTS, 'extract.png'), fullPage: true });
    });

    test('models view: loaded, installed, the catalog with fit for this machine', async () => {
        await page.click('#tab-models');
        await page.waitForSelector('#model-rows tr td');
        const text = await page.textContent('#model-rows');
        assert.match(text, /tiny-llama-256-q4_k_m/);
        assert.match(text, /tiny-bert-f16/);
        await page.waitForSelector('#available-rows tr[data-name="llama3.2-1b"]');
        const cells = await page.locator('#available-rows tr[data-name="llama3.2-1b"] td').allTextContents();
        assert.equal(cells[1], 'chat');
        assert.equal(cells[2], '807.7 MB');
        assert.ok(['fits', 'tight', 'too big'].includes(cells[4]), cells[4]);
        assert.ok(await page.isVisible('#available-rows tr[data-name="llama3.2-1b"] button'));
        assert.match(await page.textContent('#installed-rows'), /No model installed/);
        assert.match(await page.textContent('#machine'), /memory/);
        await page.screenshot({ path: path.join(SHOTS, 'models.png'), fullPage: true });
    });

    test('keyboard: tabs move with the arrow keys; narrow window still usable', async () => {
        await page.focus('#tab-models');
        await page.keyboard.press('ArrowRight');
        assert.equal(await page.getAttribute('#tab-chat', 'aria-selected'), 'true');
        assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-chat');
        await page.setViewportSize({ width: 360, height: 700 });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
        assert.equal(overflow, false);
        await page.screenshot({ path: path.join(SHOTS, 'narrow.png'), fullPage: true });
        assert.deepEqual(errors, []);
    });
});

describe('web UI: downloading a model', () => {
    let cat, srv, browser, page;
    before(async () => {
        cat = await testCatalog('slow=300000/'); // about 3.5 s for the 1 MB model
        srv = await startServer([], { home: cat.home, env: cat.env });
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                          args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
        page.on('dialog', (d) => d.accept());
        await page.goto(srv.url);
    });
    after(async () => {
        await browser?.close();
        const x = await srv.stop();
        cat?.close();
        assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000));
    });

    test('download with a progress bar and time left, then installed and in use at once', async () => {
        await page.click('#tab-models');
        const row = '#available-rows tr[data-name="dreams"]';
        await page.waitForSelector(`${row} button`);
        assert.equal((await page.locator(`${row} td`).allTextContents())[4], 'fits');
        await page.click(`${row} button`);
        await page.waitForSelector(`${row} progress`);
        await page.waitForFunction((sel) => /download .* s left/.test(document.querySelector(sel)?.textContent || ''),
                                   `${row} .pull .state`, { timeout: 20000 });
        const value = await page.$eval(`${row} progress`, (p) => p.value / p.max);
        assert.ok(value > 0 && value < 1, `progress ${value}`);
        await page.screenshot({ path: path.join(SHOTS, 'download.png'), fullPage: true });
        await page.waitForSelector('#installed-rows tr[data-name="dreams"]', { timeout: 60000 });
        const cells = await page.locator('#installed-rows tr[data-name="dreams"] td').allTextContents();
        assert.equal(cells[1], 'chat');
        assert.match(cells[3], /active/);
        assert.match(cells[3], /verified/);
        // the server had no language model: this one is loaded as it lands,
        // and is not offered for removal while it runs
        assert.match(cells[3], /loaded/);
        assert.equal(await page.locator('#installed-rows tr[data-name="dreams"] button:has-text("Remove")').count(), 0);
        await page.waitForFunction(() => document.getElementById('level').textContent === 'written answers',
                                   null, { timeout: 20000 });
    });
});
