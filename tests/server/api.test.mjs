// api.test.mjs: `cairn serve` spoken to by real clients: the official openai
// package for the OpenAI API, curl for the Ollama API, plain fetch for what
// a well-behaved client never sends (malformed JSON, huge bodies, ...).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import fs from 'node:fs';
import os from 'node:os';
import { startServer, curl, BIN, CHAT, BERT, SLOW, DOCS, CLI_TIMEOUT_MS } from './server.mjs';

const CHAT_NAME = 'aidreams260K', BERT_NAME = 'tiny-bert-f16';

describe('OpenAI API with the openai package', () => {
    let srv, client;
    before(async () => {
        srv = await startServer(['-m', CHAT, '-e', BERT]);
        client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('models lists the chat, embedding and library models', async () => {
        const ids = [];
        for await (const m of client.models.list()) ids.push(m.id);
        assert.deepEqual(ids.sort(), ['aidreams260K', 'cairn-library', 'tiny-bert-f16']);
        const one = await client.models.retrieve('tiny-bert-f16');
        assert.equal(one.id, 'tiny-bert-f16');
        assert.equal(one.owned_by, 'cairn');
        await assert.rejects(client.models.retrieve('nope'), (e) => e.status === 404);
        const help = execFileSync(BIN, ['serve', '--help'], { encoding: 'utf8', timeout: CLI_TIMEOUT_MS });
        for (const route of ['/v1/chat/completions', '/api/chat', '/api/library/documents/{id}'])
            assert.ok(help.includes(route), route);
    });

    test('chat completion, whole: text, finish reason, usage', async () => {
        const r = await client.chat.completions.create({
            model: CHAT_NAME, messages: [{ role: 'system', content: 'You dream.' },
                                         { role: 'user', content: 'Tell me a dream' }],
            max_tokens: 12, temperature: 0,
        });
        assert.equal(r.object, 'chat.completion');
        assert.equal(r.model, CHAT_NAME);
        assert.equal(r.choices.length, 1);
        assert.equal(r.choices[0].message.role, 'assistant');
        assert.ok(r.choices[0].message.content.length > 0);
        assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
        assert.ok(r.usage.prompt_tokens > 5);
        assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
        assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    });

    test('chat completion, streamed: same greedy text as whole, usage in the last chunk', async () => {
        const req = { model: CHAT_NAME, messages: [{ role: 'user', content: 'I dreamed of' }],
                      max_tokens: 16, temperature: 0 };
        const whole = await client.chat.completions.create(req);
        const stream = await client.chat.completions.create({
            ...req, stream: true, stream_options: { include_usage: true } });
        let text = '', chunks = 0, finish = null, usage = null, role = null;
        for await (const c of stream) {
            chunks++;
            if (c.usage) usage = c.usage;
            for (const ch of c.choices) {
                if (ch.delta.role) role = ch.delta.role;
                text += ch.delta.content || '';
                if (ch.finish_reason) finish = ch.finish_reason;
            }
        }
        assert.equal(role, 'assistant');
        assert.ok(chunks >= 3, `only ${chunks} chunks`);
        assert.equal(text, whole.choices[0].message.content);
        assert.equal(finish, whole.choices[0].finish_reason);
        assert.deepEqual(usage, whole.usage);
    });

    test('the raw SSE stream ends with data: [DONE]', async () => {
        const res = await fetch(`${srv.url}/v1/chat/completions`, {
            method: 'POST', headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ model: CHAT_NAME, stream: true, max_tokens: 4,
                                   messages: [{ role: 'user', content: 'hi' }] }) });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /^text\/event-stream/);
        const body = await res.text();
        const events = body.split('\n\n').filter((e) => e);
        assert.equal(events.at(-1), 'data: [DONE]');
        for (const e of events.slice(0, -1)) JSON.parse(e.replace(/^data: /, ''));
    });

    test('a seed makes sampling repeatable', async () => {
        const req = { model: CHAT_NAME, messages: [{ role: 'user', content: 'Dream' }],
                      max_tokens: 16, temperature: 1.0, seed: 42 };
        const a = await client.chat.completions.create(req);
        const b = await client.chat.completions.create(req);
        assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    });

    test('stop strings end the text before them', async () => {
        const req = { model: CHAT_NAME, messages: [{ role: 'user', content: 'I dreamed of' }],
                      max_tokens: 40, temperature: 0 };
        const full = (await client.chat.completions.create(req)).choices[0].message.content;
        const word = full.slice(6, 9); // three characters from the middle of the text
        assert.equal(word.length, 3, `text too short: ${JSON.stringify(full)}`);
        const stopped = await client.chat.completions.create({ ...req, stop: [word] });
        assert.equal(stopped.choices[0].finish_reason, 'stop');
        assert.equal(stopped.choices[0].message.content, full.slice(0, full.indexOf(word)));
    });

    test('completions: the same greedy text as `cairn generate`', async () => {
        const prompt = 'I dreamed, as I sense the nodes,';
        const r = await client.completions.create({ model: CHAT_NAME, prompt, max_tokens: 10,
                                                    temperature: 0 });
        assert.equal(r.object, 'text_completion');
        const cli = execFileSync(BIN, ['generate', '-m', CHAT, '-p', prompt, '-n', '10',
                                       '--temp', '0', '-t', '1'],
                                 { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
                                   timeout: CLI_TIMEOUT_MS });
        assert.equal(r.choices[0].text, cli.replace(/\n$/, ''));
        assert.equal(r.usage.completion_tokens, 10);
    });

    test('embeddings: float and base64 agree, vectors are unit length, match `cairn embed`', async () => {
        const input = ['the quick brown fox', 'a river bank'];
        const f = await client.embeddings.create({ model: BERT_NAME, input,
                                                   encoding_format: 'float' });
        // the package asks for base64 by default and decodes it itself
        const b = await client.embeddings.create({ model: BERT_NAME, input });
        assert.equal(f.data.length, 2);
        assert.equal(f.data[0].embedding.length, 128);
        for (let i = 0; i < 2; i++) {
            const v = f.data[i].embedding;
            const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
            assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
            for (let d = 0; d < v.length; d++)
                assert.ok(Math.abs(v[d] - b.data[i].embedding[d]) < 1e-6);
        }
        assert.ok(f.usage.prompt_tokens >= 8);
        const cli = JSON.parse(execFileSync(BIN, ['embed', '-m', BERT, '--json', '-t', '1', input[0]],
                                            { encoding: 'utf8', timeout: CLI_TIMEOUT_MS }));
        const c = cli.data[0].embedding;
        const dot = c.reduce((s, x, d) => s + x * f.data[0].embedding[d], 0);
        assert.ok(dot > 0.9999, `cosine with the CLI ${dot}`);
        const one = await client.embeddings.create({ model: BERT_NAME, input: 'single',
                                                     encoding_format: 'float' });
        assert.equal(one.data.length, 1);
    });

    test('unknown model: 404 model_not_found', async () => {
        await assert.rejects(
            client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
            (e) => e.status === 404 && e.code === 'model_not_found' && /gpt-4o/.test(e.message));
        await assert.rejects(client.embeddings.create({ model: CHAT_NAME, input: 'x' }),
                             (e) => e.status === 400 && e.param === 'model');
    });

    test('wrong types and limits: 400 with the parameter named', async () => {
        const bad = [
            [{ model: CHAT_NAME, messages: 'hello' }, 'messages'],
            [{ model: CHAT_NAME, messages: [] }, 'messages'],
            [{ model: CHAT_NAME, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }], max_tokens: 'ten' }, 'max_tokens'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }], max_tokens: 1e6 }, 'max_tokens'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }], temperature: 7 }, 'temperature'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
            [{ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }], stop: [1] }, 'stop'],
            [{ model: CHAT_NAME, messages: Array(600).fill({ role: 'user', content: 'x' }) }, 'messages'],
            [{ model: 7, messages: [{ role: 'user', content: 'x' }] }, 'model'],
        ];
        for (const [body, param] of bad)
            await assert.rejects(client.chat.completions.create(body),
                                 (e) => e.status === 400 && e.param === param && e.message.length > 0,
                                 JSON.stringify(body).slice(0, 80));
    });

    test('a prompt longer than the context: 400 context_length_exceeded', async () => {
        await assert.rejects(
            client.chat.completions.create({ model: CHAT_NAME,
                                             messages: [{ role: 'user', content: 'dream '.repeat(400) }] }),
            (e) => e.status === 400 && e.code === 'context_length_exceeded');
    });

    test('grounded answers need room: a 128-token model says so', async () => {
        const up = curl(['-F', `file=@${path.join(DOCS, 'simple.pdf')}`, `${srv.url}/api/library/documents`]);
        assert.equal(up.status, 200);
        await assert.rejects(
            client.chat.completions.create({ model: 'cairn-library', max_tokens: 20,
                messages: [{ role: 'user', content: 'When is crème brûlée served?' }] }),
            (e) => e.status === 400 && /context/.test(e.message));
    });
});

describe('grounded answers with a language model', () => {
    let srv, client;
    before(async () => {
        srv = await startServer(['-m', SLOW, '-e', BERT]);
        client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
    });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('upload, then model cairn-library answers with citations', async () => {
        const up = curl(['-F', `file=@${path.join(DOCS, 'simple.pdf')}`, `${srv.url}/api/library/documents`]);
        assert.equal(up.status, 200);
        assert.equal(up.headers['content-type'], 'application/x-ndjson');
        const events = up.body.trim().split('\n').map((l) => JSON.parse(l));
        const file = events.find((e) => e.event === 'file');
        assert.equal(file.outcome, 'added');
        assert.equal(file.pages, 3);
        const done = events.at(-1);
        assert.equal(done.event, 'done');
        assert.equal(done.added, 1);
        assert.ok(done.embedded >= 1);
        assert.ok(events.some((e) => e.event === 'embed'));
        const st = await (await fetch(`${srv.url}/api/status`)).json();
        assert.equal(st.level, 'answers');
        assert.equal(st.library.embedded_passages, st.library.passages);
        const q = [{ role: 'user', content: 'When is crème brûlée served?' }];
        const r = await client.chat.completions.create({ model: 'cairn-library', messages: q,
                                                         max_tokens: 8 });
        assert.ok(Array.isArray(r.citations) && r.citations.length >= 1);
        assert.equal(r.citations[0].doc, 'simple.pdf');
        assert.equal(r.citations[0].page, 2);
        assert.match(r.citations[0].text, /Fridays/);
        assert.ok(r.usage.prompt_tokens > 50, `prompt ${r.usage.prompt_tokens}`);
        // streamed: the passages come first, in the chunk that carries the
        // role (before the model has read them: nothing cited yet), and
        // again with the last chunk, marked cited or not
        const s = await client.chat.completions.create({ model: 'cairn-library', stream: true,
                                                         max_tokens: 4, messages: q });
        const chunks = [];
        for await (const c of s) chunks.push(c);
        const first = chunks[0];
        assert.equal(first.choices[0].delta.role, 'assistant');
        assert.equal(first.choices[0].delta.content, '');
        assert.equal(first.citations[0].page, 2);
        assert.ok(first.citations.every((c) => c.cited === false));
        const withCites = chunks.filter((c) => c.citations);
        assert.equal(withCites.length, 2);
        assert.equal(withCites[1], chunks.at(-1));
        assert.notEqual(chunks.at(-1).choices[0].finish_reason, null);
        assert.equal(chunks.at(-1).citations[0].page, 2);
    });

    test('cairn-library under a schema: JSON of that shape, its passages listed', async () => {
        const schema = { type: 'object', properties: { day: { enum: ['Monday', 'Friday', 'Sunday'] },
                                                       sure: { type: 'number', minimum: 0, maximum: 1 } },
                         required: ['day', 'sure'] };
        const q = [{ role: 'user', content: 'When is crème brûlée served?' }];
        for (let seed = 1; seed <= 3; seed++) {
            const r = await client.chat.completions.create({
                model: 'cairn-library', messages: q, max_tokens: 40, temperature: 1, seed,
                response_format: { type: 'json_schema', json_schema: { name: 'when', schema } } });
            const j = JSON.parse(r.choices[0].message.content);
            assert.ok(['Monday', 'Friday', 'Sunday'].includes(j.day), r.choices[0].message.content);
            assert.ok(j.sure >= 0 && j.sure <= 1, r.choices[0].message.content);
            assert.equal(r.citations[0].page, 2);
        }
        // Ollama's form, streamed
        const o = await fetch(`${srv.url}/api/chat`, { method: 'POST', body: JSON.stringify({
            model: 'cairn-library', messages: q, format: schema, options: { num_predict: 40, seed: 4 } }) });
        assert.equal(o.status, 200);
        const text = (await o.text()).trim().split('\n').map((l) => JSON.parse(l))
            .map((c) => c.message?.content ?? '').join('');
        assert.ok(['Monday', 'Friday', 'Sunday'].includes(JSON.parse(text).day), text);
    });
});

describe('grounded answers without a language model (extractive)', () => {
    let srv, client;
    before(async () => {
        srv = await startServer([]);
        client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
        const up = curl(['-F', `file=@${path.join(DOCS, 'simple.pdf')}`,
                         '-F', `file=@${path.join(DOCS, 'notes.md')}`, `${srv.url}/api/library/documents`]);
        assert.equal(up.status, 200);
    });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('quotes the cited sentence with [n] and returns the page', async () => {
        const r = await client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'When is crème brûlée served?' }] });
        const text = r.choices[0].message.content;
        assert.match(text, /brûlée/);
        assert.match(text, /\[1\]/);
        const c = r.citations.find((x) => x.n === 1);
        assert.equal(c.page, 2);
        assert.equal(c.cited, true);
        // the page cited is where the question's words are, not where "the" or "does" first is
        const r2 = await client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'What does the café serve on Fridays?' }] });
        assert.equal(r2.citations[0].page, 2);
    });

    test('nothing relevant: says so, no citations', async () => {
        const r = await client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'zyzzyva quokka xylophone' }] });
        assert.match(r.choices[0].message.content,
            /^Not found in your documents: no page mentions zyzzyva, quokka, xylophone\.$/);
        assert.deepEqual(r.citations, []);
    });

    test('no chat model: an answer in a JSON shape is a 400 naming the parameter', async () => {
        await assert.rejects(client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'When is crème brûlée served?' }],
            response_format: { type: 'json_object' } }),
        (e) => e.status === 400 && e.param === 'response_format' && /needs a language model/.test(e.message));
        const o = await fetch(`${srv.url}/api/chat`, { method: 'POST', body: JSON.stringify({
            model: 'cairn-library', stream: false, format: 'json',
            messages: [{ role: 'user', content: 'When is crème brûlée served?' }] }) });
        assert.equal(o.status, 400);
        assert.match((await o.json()).error, /format: an answer in a JSON shape needs a language model/);
    });

    test('no chat model: a chat with another model name is 404', async () => {
        await assert.rejects(client.chat.completions.create({ model: CHAT_NAME, messages: [{ role: 'user', content: 'x' }] }),
                             (e) => e.status === 404);
    });

    test('ask endpoint and the developer role', async () => {
        const r = await fetch(`${srv.url}/api/library/ask`, {
            method: 'POST', body: JSON.stringify({ question: 'When is crème brûlée served?' }) });
        assert.equal(r.status, 200);
        const j = await r.json();
        assert.match(j.choices[0].message.content, /Fridays/);
        assert.equal(j.citations[0].page, 2);
        const bad = await fetch(`${srv.url}/api/library/ask`, { method: 'POST', body: '{"question": 3}' });
        assert.equal(bad.status, 400);
        const dev = await client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'developer', content: 'be brief' },
                                               { role: 'user', content: 'When is crème brûlée served?' }] });
        assert.match(dev.choices[0].message.content, /brûlée/);
    });

    test('library endpoints: list, search, remove', async () => {
        const docs = await (await fetch(`${srv.url}/api/library/documents`)).json();
        assert.equal(docs.documents.length, 2);
        const pdf = docs.documents.find((d) => d.name === 'simple.pdf');
        assert.equal(pdf.pages, 3);
        const s = await (await fetch(`${srv.url}/api/library/search`, {
            method: 'POST', body: JSON.stringify({ query: 'reciprocal rank fusion', k: 3 }) })).json();
        assert.equal(s.mode, 'keyword');
        assert.equal(s.results[0].page, 3);
        const bad = await fetch(`${srv.url}/api/library/documents/999999`, { method: 'DELETE' });
        assert.equal(bad.status, 404);
        const del = await fetch(`${srv.url}/api/library/documents/${pdf.id}`, { method: 'DELETE' });
        assert.equal(del.status, 200);
        const after2 = await (await fetch(`${srv.url}/api/library/documents`)).json();
        assert.equal(after2.documents.length, 1);
        const st = await (await fetch(`${srv.url}/api/status`)).json();
        assert.equal(st.level, 'keyword');
        assert.equal(st.library.documents, 1);
    });

    test('uploads: hostile names, bad files, wrong types', async () => {
        // a path in the file name: the file lands in the library's documents folder, nowhere else
        const evil = curl(['-F', `file=@${path.join(DOCS, 'notes.md')};filename="../../evil $name*.md"`,
                           `${srv.url}/api/library/documents`]);
        assert.equal(evil.status, 200);
        const ev = evil.body.trim().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(ev[0].files, ['evil _name_.md']);
        assert.ok(fs.existsSync(path.join(srv.home, 'documents', 'evil _name_.md')));
        assert.equal(ev.find((e) => e.event === 'file').outcome, 'added');
        // a damaged PDF: reported as failed with its reason, the server goes on
        const bad = curl(['-F', `file=@${path.join(DOCS, 'garbage.pdf')}`, `${srv.url}/api/library/documents`]);
        const file = bad.body.trim().split('\n').map((l) => JSON.parse(l)).find((e) => e.event === 'file');
        assert.equal(file.outcome, 'failed');
        assert.ok(file.error.length > 0);
        // not multipart: 415; no file field: 400
        const json = await fetch(`${srv.url}/api/library/documents`, { method: 'POST', body: '{}',
                                                                       headers: { 'Content-Type': 'application/json' } });
        assert.equal(json.status, 415);
        const empty = curl(['-F', 'note=hello', `${srv.url}/api/library/documents`]);
        assert.equal(empty.status, 400);
        assert.match(JSON.parse(empty.body).error.message, /no file/);
    });
});

describe('Ollama API with curl', () => {
    let srv;
    before(async () => { srv = await startServer(['-m', CHAT, '-e', BERT]); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('version, tags, ps, show', () => {
        const v = curl([`${srv.url}/api/version`]);
        assert.equal(v.status, 200);
        assert.match(JSON.parse(v.body).version, /^\d+\.\d+\.\d+$/);
        const t = JSON.parse(curl([`${srv.url}/api/tags`]).body);
        const names = t.models.map((m) => m.name).sort();
        assert.deepEqual(names, ['aidreams260K:latest', 'tiny-bert-f16:latest']);
        for (const m of t.models) {
            assert.match(m.digest, /^[0-9a-f]{64}$/);
            assert.ok(m.size > 0);
            assert.equal(m.details.format, 'gguf');
            assert.match(m.modified_at, /^\d{4}-\d\d-\d\dT/);
        }
        assert.equal(JSON.parse(curl([`${srv.url}/api/ps`]).body).models.length, 2);
        const s = curl(['-d', JSON.stringify({ model: 'aidreams260K' }), `${srv.url}/api/show`]);
        const show = JSON.parse(s.body);
        assert.equal(show.details.family, 'llama');
        assert.deepEqual(show.capabilities, ['completion']);
        assert.equal(show.model_info['llama.context_length'], 128);
        assert.match(show.modified_at, /^\d{4}-\d\d-\d\dT/);
        const missing = curl(['-d', '{"model":"nope"}', `${srv.url}/api/show`]);
        assert.equal(missing.status, 404);
        assert.equal(typeof JSON.parse(missing.body).error, 'string');
    });

    test('chat streams NDJSON by default, ending with done and counts', () => {
        const r = curl(['-N', '-d', JSON.stringify({
            model: 'aidreams260K:latest', messages: [{ role: 'user', content: 'dream' }],
            options: { num_predict: 6, temperature: 0 } }), `${srv.url}/api/chat`]);
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-type'], 'application/x-ndjson');
        const lines = r.body.trim().split('\n').map((l) => JSON.parse(l));
        assert.ok(lines.length >= 2);
        for (const l of lines.slice(0, -1)) {
            assert.equal(l.done, false);
            assert.equal(l.message.role, 'assistant');
        }
        const last = lines.at(-1);
        assert.equal(last.done, true);
        assert.equal(last.done_reason, 'length');
        assert.equal(last.eval_count, 6);
        assert.ok(last.prompt_eval_count > 0 && last.total_duration > 0);
        // the same text whole
        const w = JSON.parse(curl(['-d', JSON.stringify({
            model: 'aidreams260K', stream: false, messages: [{ role: 'user', content: 'dream' }],
            options: { num_predict: 6, temperature: 0 } }), `${srv.url}/api/chat`]).body);
        assert.equal(w.done, true);
        assert.equal(w.message.content, lines.map((l) => l.message.content).join(''));
    });

    test('generate: response field, raw prompt matches `cairn generate`', () => {
        const prompt = 'I dreamed, as I sense the nodes,';
        const w = JSON.parse(curl(['-d', JSON.stringify({
            model: 'aidreams260K', prompt, raw: true, stream: false,
            options: { num_predict: 8, temperature: 0 } }), `${srv.url}/api/generate`]).body);
        const cli = execFileSync(BIN, ['generate', '-m', CHAT, '-p', prompt, '-n', '8', '--temp', '0',
                                       '--no-bos', '-t', '1'],
                                 { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
                                   timeout: CLI_TIMEOUT_MS });
        assert.equal(w.response, cli.replace(/\n$/, ''));
        const s = curl(['-d', JSON.stringify({ model: 'aidreams260K', prompt: 'hi',
                                               options: { num_predict: 3 } }), `${srv.url}/api/generate`]);
        const lines = s.body.trim().split('\n').map((l) => JSON.parse(l));
        assert.equal(lines.at(-1).done, true);
        assert.ok('response' in lines[0]);
    });

    test('embed: one vector per input', () => {
        const r = JSON.parse(curl(['-d', JSON.stringify({ model: 'tiny-bert-f16', input: ['a', 'b', 'c'] }),
                                   `${srv.url}/api/embed`]).body);
        assert.equal(r.embeddings.length, 3);
        assert.equal(r.embeddings[0].length, 128);
        const one = JSON.parse(curl(['-d', '{"model":"tiny-bert-f16","input":"a"}', `${srv.url}/api/embed`]).body);
        const legacy = JSON.parse(curl(['-d', '{"model":"tiny-bert-f16","prompt":"a"}', `${srv.url}/api/embeddings`]).body);
        assert.equal(legacy.embedding.length, 128);
        for (let d = 0; d < 128; d++) assert.ok(Math.abs(legacy.embedding[d] - one.embeddings[0][d]) < 1e-6);
        for (let d = 0; d < 128; d++) /* batched with others or alone: the same vector */
            assert.ok(Math.abs(one.embeddings[0][d] - r.embeddings[0][d]) < 1e-5);
    });

    test('errors are {"error": "..."} with the right status', () => {
        const bad = curl(['-d', '{"model":"aidreams260K","messages":[{"role":"user"', `${srv.url}/api/chat`]);
        assert.equal(bad.status, 400);
        assert.match(JSON.parse(bad.body).error, /malformed JSON/);
        const unknown = curl(['-d', '{"model":"llama3","messages":[{"role":"user","content":"x"}]}', `${srv.url}/api/chat`]);
        assert.equal(unknown.status, 404);
        const opts = curl(['-d', '{"model":"aidreams260K","prompt":"x","options":{"num_predict":"many"}}', `${srv.url}/api/generate`]);
        assert.equal(opts.status, 400);
        assert.match(JSON.parse(opts.body).error, /num_predict/);
    });
});

describe('hostile requests', () => {
    let srv;
    before(async () => { srv = await startServer(['-m', CHAT, '--max-body', '65536', '--max-upload', '1024']); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    const post = (p, body, headers = {}) => fetch(`${srv.url}${p}`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
    const errorObject = async (res, status) => {
        assert.equal(res.status, status);
        const j = await res.json();
        assert.equal(typeof j.error.message, 'string');
        assert.equal(typeof j.error.type, 'string');
        return j.error;
    };

    test('malformed JSON, not an object, empty body', async () => {
        let e = await errorObject(await post('/v1/chat/completions', '{"model": "x", '), 400);
        assert.match(e.message, /malformed JSON/);
        e = await errorObject(await post('/v1/chat/completions', '[1,2,3]'), 400);
        assert.match(e.message, /object/);
        await errorObject(await post('/v1/chat/completions', ''), 400);
        await errorObject(await post('/v1/completions', '{"model":"aidreams260K","prompt":"\\u0000x"}'), 400);
    });

    test('deep nesting is refused before parsing', async () => {
        const deep = '{"model":"aidreams260K","messages":' + '['.repeat(5000) + ']'.repeat(5000) + '}';
        const e = await errorObject(await post('/v1/chat/completions', deep), 400);
        assert.match(e.message, /nested deeper/);
    });

    test('huge bodies: 413, with and without Content-Length', async () => {
        const big = JSON.stringify({ model: 'aidreams260K', prompt: 'x'.repeat(200000) });
        await errorObject(await post('/v1/completions', big), 413);
        // chunked: no Content-Length, the limit still holds
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-big-')), 'big.json');
        fs.writeFileSync(file, big);
        const r = curl(['-H', 'Transfer-Encoding: chunked', '-H', 'Content-Type: application/json',
                        '--data-binary', `@${file}`, `${srv.url}/v1/completions`]);
        fs.rmSync(path.dirname(file), { recursive: true });
        assert.equal(r.status, 413);
        assert.equal(typeof JSON.parse(r.body).error.message, 'string');
    });

    test('an upload over the limit: 413, nothing left on disk', async () => {
        const r = curl(['-F', `file=@${path.join(DOCS, 'simple.pdf')}`, `${srv.url}/api/library/documents`]);
        assert.equal(r.status, 413);
        assert.match(JSON.parse(r.body).error.message, /upload limit of 1024 bytes/);
        const dir = path.join(srv.home, 'documents');
        assert.deepEqual(fs.existsSync(dir) ? fs.readdirSync(dir) : [], []);
    });

    test('oversized headers: 431', async () => {
        const res = await fetch(`${srv.url}/v1/models`, { headers: { 'X-Junk': 'a'.repeat(20000) } });
        await errorObject(res, 431);
    });

    test('unknown route 404, wrong method 405', async () => {
        await errorObject(await fetch(`${srv.url}/v1/nothing`), 404);
        await errorObject(await fetch(`${srv.url}/v1/chat/completions`), 405);
        await errorObject(await fetch(`${srv.url}/v1/models`, { method: 'POST', body: '{}' }), 405);
    });

    test('CORS: own origin allowed, others refused; DNS rebinding refused', async () => {
        const own = await fetch(`${srv.url}/v1/models`, { headers: { Origin: srv.url } });
        assert.equal(own.status, 200);
        assert.equal(own.headers.get('access-control-allow-origin'), srv.url);
        const evil = await fetch(`${srv.url}/v1/models`, { headers: { Origin: 'http://evil.example' } });
        await errorObject(evil, 403);
        const pre = curl(['-X', 'OPTIONS', '-H', `Origin: http://localhost:${srv.port}`,
                          '-H', 'Access-Control-Request-Method: POST', `${srv.url}/v1/chat/completions`]);
        assert.equal(pre.status, 204);
        assert.match(pre.headers['access-control-allow-headers'], /Authorization/);
        const rebind = curl(['-H', 'Host: evil.example', `${srv.url}/v1/models`]);
        assert.equal(rebind.status, 403);
    });

    test('a path cannot forge access-log lines or fields', async () => {
        const r = await fetch(`${srv.url}/x%0Acairn%20serve:%20method=GET%20path=/forged%20status=200`);
        assert.equal(r.status, 404);
        for (let i = 0; i < 50 && !/path=\/x\\x0a/.test(srv.log()); i++) // written after the response
            await new Promise((res) => setTimeout(res, 100));
        assert.ok(!/^cairn serve: method=GET path=\/forged/m.test(srv.log()), srv.log().slice(-600));
        assert.match(srv.log(), /path=\/x\\x0acairn\\x20serve:\\x20method=GET\\x20path=\/forged\\x20status=200 status=404/);
    });

    test('a model name with a path in it: 400, nothing removed', async () => {
        const r = await fetch(`${srv.url}/api/models/..%2F..%2Fetc`, { method: 'DELETE' });
        await errorObject(r, 400);
    });

    test('the server is still up and logs each request', async () => {
        assert.ok(srv.alive());
        const r = await fetch(`${srv.url}/v1/models`);
        assert.equal(r.status, 200);
        assert.match(srv.log(), /method=POST path=\/v1\/chat\/completions status=400 ms=\d+ tokens=0/);
        assert.match(srv.log(), /method=GET path=\/v1\/models status=200/);
    });
});

describe('API key', () => {
    let srv;
    before(async () => { srv = await startServer(['-m', CHAT, '--api-key', 'sekrit-123']); });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('missing or wrong key: 401; right key: 200', async () => {
        const wrong = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'nope', maxRetries: 0 });
        await assert.rejects(wrong.models.list(), (e) => e.status === 401 && e.code === 'invalid_api_key');
        const none = await fetch(`${srv.url}/v1/models`);
        assert.equal(none.status, 401);
        const ok = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'sekrit-123', maxRetries: 0 });
        const r = await ok.chat.completions.create({ model: CHAT_NAME, max_tokens: 2,
                                                     messages: [{ role: 'user', content: 'x' }] });
        assert.equal(r.choices.length, 1);
        // the web UI's files need no key
        assert.equal((await fetch(`${srv.url}/`)).status, 200);
    });

    test('the settings file can hold the key', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-key-'));
        fs.writeFileSync(path.join(dir, 'config'), 'api_key = from-settings\n');
        const two = await startServer([], { env: { CAIRN_CONFIG: path.join(dir, 'config') } });
        try {
            assert.equal((await fetch(`${two.url}/api/status`)).status, 401);
            const ok = await fetch(`${two.url}/api/status`, { headers: { Authorization: 'Bearer from-settings' } });
            assert.equal(ok.status, 200);
        } finally {
            assert.deepEqual(await two.stop(), { code: 0, sig: null });
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test("--cors-origin '*' without a key is refused at start (exit 2); with a key it serves", async () => {
        let out = '', status = 0;
        try {
            execFileSync(BIN, ['serve', '--cors-origin', '*', '--port', '0', '--home',
                               fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-cors-'))],
                         { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000,
                           env: { ...process.env, CAIRN_API_KEY: '', CAIRN_CONFIG: '/nonexistent' } });
        } catch (e) { out = e.stderr; status = e.status; }
        assert.equal(status, 2, out);
        assert.match(out, /--cors-origin '\*' without an API key/);
        const keyed = await startServer(['--cors-origin', '*', '--api-key', 'k1']);
        try {
            const r = await fetch(`${keyed.url}/api/status`, {
                headers: { Origin: 'http://elsewhere.example', Authorization: 'Bearer k1' } });
            assert.equal(r.status, 200);
            assert.equal(r.headers.get('access-control-allow-origin'), 'http://elsewhere.example');
            const anon = await fetch(`${keyed.url}/api/status`, { headers: { Origin: 'http://elsewhere.example' } });
            assert.equal(anon.status, 401);
        } finally {
            assert.deepEqual(await keyed.stop(), { code: 0, sig: null });
        }
    });

    test('bound beyond loopback, one address cannot hold every connection', async () => {
        const wide = await startServer(['--host', '0.0.0.0', '--api-key', 'k2']);
        const net = await import('node:net');
        const idle = [];
        try {
            for (let i = 0; i < 32; i++) {
                const sock = net.connect(wide.port, '127.0.0.1');
                await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
                sock.write('GET /api/status HTTP/1.1\r\nHost: x\r\n'); // headers never finished
                idle.push(sock);
            }
            // the next one from the same address is closed at once (curl: connection reset),
            // once the server has taken in the 32 (polled: a loaded machine is slow to)
            const status = () => {
                try {
                    return curl(['--max-time', '10', '-H', 'Authorization: Bearer k2', `${wide.url}/api/status`]).status;
                } catch (e) { return e.status === 56 || e.status === 52 ? 'reset' : `curl ${e.status}`; }
            };
            let got;
            for (let i = 0; i < 50 && (got = status()) !== 'reset'; i++)
                await new Promise((res) => setTimeout(res, 200));
            assert.equal(got, 'reset');
            for (const sock of idle) sock.destroy();
            idle.length = 0;
            for (let i = 0; i < 50 && (got = status()) !== 200; i++)
                await new Promise((res) => setTimeout(res, 200));
            assert.equal(got, 200);
        } finally {
            for (const sock of idle) sock.destroy();
            assert.deepEqual(await wide.stop(), { code: 0, sig: null });
        }
    });

    test('a non-loopback host without a key is refused at start', () => {
        let out = '';
        try {
            execFileSync(BIN, ['serve', '--host', '0.0.0.0', '--port', '0'],
                         { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
                           env: { ...process.env, CAIRN_API_KEY: '' },
                           timeout: 15_000 }); /* a server that starts is killed: status null */
        } catch (e) { out = e.stderr; assert.equal(e.status, 1); }
        assert.match(out, /API key is required/);
    });
});
