// encrypted.test.mjs: `cairn serve` on an encrypted library (issue 15).
// Uploaded files are kept sealed (no byte of their text, of the questions
// asked or of the answers anywhere under the data directory, the server's
// access log included), read back for search and for re-indexing, refused
// naming the file when damaged, and unsealed again by `cairn decrypt`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, BIN, DOCS, curl } from './server.mjs';

const SECRET = 'Quarterly xylophone tariffs for the Zanzibar subsidiary rose by eleven percent';
const QUESTION = 'what happened to the marimba duties in the island branch';

function filesUnder(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...filesUnder(p));
        else if (e.isFile()) out.push(p);
    }
    return out;
}

/* 8-byte windows of s, every 3 bytes */
const windows = (s) => { const w = []; for (let i = 0; i + 8 <= s.length; i += 3) w.push(s.slice(i, i + 8)); return w; };

describe('serve on an encrypted library', () => {
    let srv, home, key, tmp;
    before(async () => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-enc-'));
        home = path.join(tmp, 'home');
        key = path.join(tmp, 'lib.key');
        execFileSync(BIN, ['init', '--encrypt', '--key-file', key, '--home', home], { env: { ...process.env, CAIRN_ENCRYPT: '' } });
        srv = await startServer([], { home, env: { CAIRN_KEY_FILE: key, CAIRN_ENCRYPT: '' } });
    });
    after(async () => {
        if (srv) await srv.stop();
        fs.rmSync(tmp, { recursive: true, force: true });
    });

    test('uploads are sealed, searchable, and no text reaches the disk or the log', async () => {
        const txt = path.join(tmp, 'report.txt');
        fs.writeFileSync(txt, `${SECRET}.\n\nThe marimba levy on the island branch also doubled.\n`);
        const up = curl(['-F', `file=@${txt}`, '-F', `file=@${path.join(DOCS, 'simple.pdf')}`,
                         `${srv.url}/api/library/documents`]);
        assert.equal(up.status, 200, up.body);
        const done = up.body.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'done');
        assert.equal(done.added, 2, up.body);
        const s = await (await fetch(`${srv.url}/api/library/search`, {
            method: 'POST', body: JSON.stringify({ query: 'xylophone tariffs Zanzibar', k: 3 }) })).json();
        assert.match(JSON.stringify(s.results[0]), /report\.txt/);
        const a = await fetch(`${srv.url}/api/library/ask`, { method: 'POST', body: JSON.stringify({ question: QUESTION }) });
        assert.equal(a.status, 200);
        await a.text();

        const st = await (await fetch(`${srv.url}/api/status`)).json();
        assert.equal(st.library.encrypted, true);
        const copy = path.join(home, 'documents', 'report.txt');
        assert.equal(fs.readFileSync(copy).subarray(0, 8).toString(), 'CAIRNUP1');
        const needles = [...windows(SECRET), ...windows(QUESTION), ...windows('reciprocal rank fusion')];
        const hay = filesUnder(home).map((f) => fs.readFileSync(f));
        hay.push(Buffer.from(srv.log()));
        for (const n of needles)
            for (const h of hay)
                assert.equal(h.indexOf(n), -1, `"${n}" found at rest`);
    });

    test('a damaged sealed copy is an error naming it; decrypt unseals the copies', async () => {
        const x = await srv.stop();
        srv = null;
        assert.deepEqual(x, { code: 0, sig: null });
        const copy = path.join(home, 'documents', 'report.txt');
        const good = fs.readFileSync(copy);
        const bad = Buffer.from(good);
        bad[60] ^= 0x20;
        fs.writeFileSync(copy, bad);
        const env = { ...process.env, CAIRN_KEY_FILE: key, CAIRN_ENCRYPT: '' };
        let out = '';
        try {
            execFileSync(BIN, ['add', copy, '--home', home], { env, stdio: 'pipe' });
        } catch (e) { out = String(e.stderr) + String(e.stdout); }
        const all = out + execFileSync(BIN, ['ls', '--home', home], { env }).toString();
        assert.match(all, /report\.txt: the encrypted upload copy fails authentication/);
        fs.writeFileSync(copy, good); // put back (a new mtime: read again)
        execFileSync(BIN, ['add', copy, '--home', home], { env });
        execFileSync(BIN, ['decrypt', '--home', home], { env });
        assert.equal(fs.readFileSync(copy).toString().slice(0, 20), SECRET.slice(0, 20));
        const found = execFileSync(BIN, ['search', '--json', 'xylophone tariffs', '--home', home],
                                   { env: { ...process.env, CAIRN_ENCRYPT: '' } }).toString();
        assert.match(found, /report\.txt/);
        // and back: sealed again
        execFileSync(BIN, ['encrypt', '--key-file', key, '--home', home], { env: { ...process.env, CAIRN_ENCRYPT: '' } });
        assert.equal(fs.readFileSync(copy).subarray(0, 8).toString(), 'CAIRNUP1');
        const again = execFileSync(BIN, ['search', '--json', 'xylophone tariffs', '--home', home], { env }).toString();
        assert.match(again, /report\.txt/);
        const ls = execFileSync(BIN, ['ls', '--home', home], { env }).toString();
        assert.doesNotMatch(ls, /fail/i);
    });
});
