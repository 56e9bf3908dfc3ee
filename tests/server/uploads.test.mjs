// uploads.test.mjs: what happens to uploaded files. The body limit holds
// whatever the framing (chunked bodies have no Content-Length), a name that
// exists already never overwrites the earlier file, and removing a document
// (API or `cairn rm`) deletes the copy Cairn stored — never a file the user
// added from elsewhere.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, BIN } from './server.mjs';

/* POST files as multipart/form-data with chunked transfer encoding (no
** Content-Length), in 16 KiB writes. Resolves to { status, body }. */
function postChunked(url, files) {
    const boundary = 'cairnTestBoundary' + Math.random().toString(16).slice(2);
    const parts = [];
    for (const f of files) {
        parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ` +
                               `filename="${f.name}"\r\nContent-Type: text/plain\r\n\r\n`));
        parts.push(Buffer.from(f.data));
        parts.push(Buffer.from('\r\n'));
    }
    parts.push(Buffer.from(`--${boundary}--\r\n`));
    const body = Buffer.concat(parts);
    return new Promise((resolve, reject) => {
        const req = http.request(`${url}/api/library/documents`, {
            method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`,
                                       'Transfer-Encoding': 'chunked' } }, (res) => {
            let out = '';
            res.on('data', (d) => { out += d; });
            res.on('end', () => resolve({ status: res.statusCode, body: out }));
        });
        req.on('error', reject);
        req.setTimeout(60000, () => req.destroy(new Error('timeout')));
        for (let i = 0; i < body.length; i += 16384) req.write(body.subarray(i, i + 16384));
        req.end();
    });
}

const events = (body) => body.trim().split('\n').map((l) => JSON.parse(l));

/* The stored copy holds text: as it is, or (make test-encrypted: every
** library encrypted) sealed, with none of it readable. */
function assertStored(file, text) {
    const b = fs.readFileSync(file);
    if (process.env.CAIRN_ENCRYPT === '1') {
        assert.equal(b.subarray(0, 8).toString(), 'CAIRNUP1', file);
        assert.equal(b.indexOf(text.slice(0, 10)), -1, `${file}: plaintext in a sealed copy`);
    } else {
        assert.equal(b.toString('utf8'), text);
    }
}
const docs = async (srv) => (await (await fetch(`${srv.url}/api/library/documents`)).json()).documents;

describe('upload limits without Content-Length', () => {
    let srv;
    // each file is under --max-upload; together they are far over the body limit
    before(async () => { srv = await startServer(['--max-upload', '100000']); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('chunked: the total is counted as it arrives; 413, nothing kept', async () => {
        const files = [1, 2, 3, 4].map((i) => ({ name: `part${i}.txt`, data: `word${i} `.repeat(90000 / 6) }));
        const r = await postChunked(srv.url, files);
        assert.equal(r.status, 413, r.body.slice(0, 300));
        assert.match(JSON.parse(r.body).error.message, /over the limit of 165536 bytes/);
        const dir = path.join(srv.home, 'documents');
        assert.deepEqual(fs.existsSync(dir) ? fs.readdirSync(dir) : [], []);
        assert.deepEqual(await docs(srv), []);
        // under the limit, chunked works
        const ok = await postChunked(srv.url, [{ name: 'small.txt', data: 'a small chunked upload' }]);
        assert.equal(ok.status, 200);
        assert.equal(events(ok.body).at(-1).added, 1);
    });
});

describe('upload names and removal', () => {
    let srv, own;
    before(async () => {
        srv = await startServer([]);
        own = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-own-'));
    });
    after(async () => {
        const x = await srv.stop();
        fs.rmSync(own, { recursive: true, force: true });
        assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000));
    });

    test('a name that exists already keeps both files and both documents', async () => {
        const a = await postChunked(srv.url, [{ name: 'notes.md', data: 'The walrus sleeps on ice.\n' }]);
        assert.equal(a.status, 200);
        assert.deepEqual(events(a.body)[0].files, ['notes.md']);
        const b = await postChunked(srv.url, [{ name: 'notes.md', data: 'The narwhal swims deep.\n' },
                                              { name: 'notes.md', data: 'The puffin dives.\n' }]);
        assert.equal(b.status, 200);
        assert.deepEqual(events(b.body)[0].files, ['notes (2).md', 'notes (3).md']);
        const dir = path.join(srv.home, 'documents');
        assertStored(path.join(dir, 'notes.md'), 'The walrus sleeps on ice.\n');
        assertStored(path.join(dir, 'notes (2).md'), 'The narwhal swims deep.\n');
        assertStored(path.join(dir, 'notes (3).md'), 'The puffin dives.\n');
        assert.deepEqual((await docs(srv)).map((d) => d.name).sort(), ['notes (2).md', 'notes (3).md', 'notes.md']);
        const s = await (await fetch(`${srv.url}/api/library/search`, {
            method: 'POST', body: JSON.stringify({ query: 'walrus' }) })).json();
        assert.equal(s.results.length, 1);
        assert.equal(s.results[0].path, fs.realpathSync(path.join(dir, 'notes.md')));
    });

    test('a file that cannot be put in place is reported, never dropped in silence', async () => {
        const dir = path.join(srv.home, 'documents');
        fs.writeFileSync(path.join(dir, 'full.md'), 'x');
        for (let k = 2; k < 1000; k++) fs.writeFileSync(path.join(dir, `full (${k}).md`), 'x');
        const r = await postChunked(srv.url, [{ name: 'full.md', data: 'The otter floats.\n' },
                                              { name: 'fine.md', data: 'The seal basks.\n' }]);
        assert.equal(r.status, 200);
        const ev = events(r.body);
        assert.deepEqual(ev[0].files, ['fine.md']);
        assert.deepEqual(ev[0].not_stored, [{ name: 'full.md', error: 'too many files of this name' }]);
        assert.equal(ev.at(-1).added, 1);
        assert.equal(ev.at(-1).failed, 1);
        assert.ok(!fs.readdirSync(dir).some((f) => f.startsWith('.upload')), 'temporary file left');
        for (const f of fs.readdirSync(dir)) if (f.startsWith('full')) fs.rmSync(path.join(dir, f));
        const fine = (await docs(srv)).find((d) => d.name === 'fine.md');
        assert.equal((await fetch(`${srv.url}/api/library/documents/${fine.id}`, { method: 'DELETE' })).status, 200);
    });

    test('removing an uploaded document deletes its stored copy (API and cairn rm)', async () => {
        const dir = path.join(srv.home, 'documents');
        const list = await docs(srv);
        const two = list.find((d) => d.name === 'notes (2).md');
        const del = await fetch(`${srv.url}/api/library/documents/${two.id}`, { method: 'DELETE' });
        assert.equal(del.status, 200);
        assert.equal((await del.json()).file_deleted, true);
        assert.ok(!fs.existsSync(path.join(dir, 'notes (2).md')));
        assert.ok(fs.existsSync(path.join(dir, 'notes.md')));
        // the CLI on the same library, by id
        const three = list.find((d) => d.name === 'notes (3).md');
        execFileSync(BIN, ['rm', String(three.id), '--home', srv.home], { stdio: 'ignore', timeout: 30000 });
        assert.ok(!fs.existsSync(path.join(dir, 'notes (3).md')));
        assert.deepEqual((await docs(srv)).map((d) => d.name), ['notes.md']);
    });

    test("removing a document the user added by path never touches the user's file", async () => {
        const mine = path.join(own, 'mine.md');
        fs.writeFileSync(mine, 'My own lighthouse notes.\n');
        execFileSync(BIN, ['add', mine, '--home', srv.home], { stdio: 'ignore', timeout: 30000 });
        const doc = (await docs(srv)).find((d) => d.name === 'mine.md');
        assert.ok(doc, 'cairn add did not add mine.md');
        const del = await fetch(`${srv.url}/api/library/documents/${doc.id}`, { method: 'DELETE' });
        assert.equal(del.status, 200);
        assert.equal((await del.json()).file_deleted, false);
        assert.equal(fs.readFileSync(mine, 'utf8'), 'My own lighthouse notes.\n');
        // and by the CLI, by path
        execFileSync(BIN, ['add', mine, '--home', srv.home], { stdio: 'ignore', timeout: 30000 });
        execFileSync(BIN, ['rm', mine, '--home', srv.home], { stdio: 'ignore', timeout: 30000 });
        assert.ok(fs.existsSync(mine));
        assert.ok(!(await docs(srv)).some((d) => d.name === 'mine.md'));
    });
});
