// structured.test.mjs: answers that follow a JSON schema (issue 16), asked
// the way tools ask: the official openai package's response_format
// (json_schema, json_object) and Ollama's format ("json" or a schema). The
// trained fixture model writes; every answer that ends by itself must parse
// and have the schema's shape. A schema Cairn cannot honour is a 400 naming
// the keyword, before anything runs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, CHAT } from './server.mjs';

const PERSON = {
    type: 'object',
    properties: {
        name: { type: 'string', maxLength: 12 },
        age: { type: 'integer' },
        tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 },
    },
    required: ['name', 'age'],
};

function person(text) {
    const j = JSON.parse(text);
    assert.equal(typeof j.name, 'string');
    assert.ok([...j.name].length <= 12, text);
    assert.ok(Number.isInteger(j.age), text);
    for (const k of Object.keys(j)) assert.ok(['name', 'age', 'tags'].includes(k), text);
    if (j.tags) for (const t of j.tags) assert.ok(['a', 'b'].includes(t), text);
}

describe('structured answers', () => {
    let srv, client;
    before(async () => {
        srv = await startServer(['-m', CHAT]);
        client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });
    after(async () => { const x = await srv.stop(); assert.deepEqual(x, { code: 0, sig: null }, srv.log().slice(-3000)); });

    test('OpenAI json_schema: valid objects, whole and streamed', async () => {
        let ended = 0;
        for (let seed = 1; seed <= 6; seed++) {
            const r = await client.chat.completions.create({
                model: 'aidreams260K', messages: [{ role: 'user', content: 'Who is here?' }],
                max_tokens: 100, temperature: 1, seed,
                response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
            });
            if (r.choices[0].finish_reason === 'stop') {
                ended++;
                person(r.choices[0].message.content);
            }
        }
        assert.ok(ended >= 5, `${ended} of 6 answers ended by themselves`);
        const stream = await client.chat.completions.create({
            model: 'aidreams260K', messages: [{ role: 'user', content: 'Who is here?' }],
            max_tokens: 100, temperature: 1, seed: 2, stream: true,
            response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
        });
        let text = '', reason = null;
        for await (const ch of stream) {
            text += ch.choices[0]?.delta?.content ?? '';
            reason = ch.choices[0]?.finish_reason ?? reason;
        }
        if (reason === 'stop') person(text);
    });

    test('OpenAI json_object: an object', async () => {
        const r = await client.chat.completions.create({
            model: 'aidreams260K', messages: [{ role: 'user', content: 'Describe it' }],
            max_tokens: 100, temperature: 0, response_format: { type: 'json_object' },
        });
        assert.equal(r.choices[0].message.content.trim()[0], '{');
        if (r.choices[0].finish_reason === 'stop') {
            const j = JSON.parse(r.choices[0].message.content);
            assert.equal(typeof j, 'object');
        }
    });

    test('Ollama format: a schema and "json"', async () => {
        const r = await fetch(`${srv.url}/api/chat`, { method: 'POST', body: JSON.stringify({
            model: 'aidreams260K', messages: [{ role: 'user', content: 'Who?' }], stream: false,
            format: PERSON, options: { num_predict: 100, seed: 3, temperature: 1 } }) });
        assert.equal(r.status, 200);
        const j = await r.json();
        if (j.done_reason === 'stop') person(j.message.content);
        const r2 = await fetch(`${srv.url}/api/generate`, { method: 'POST', body: JSON.stringify({
            model: 'aidreams260K', prompt: 'Once', stream: false, format: 'json',
            options: { num_predict: 60, seed: 4 } }) });
        assert.equal(r2.status, 200);
        const j2 = await r2.json();
        if (j2.done_reason === 'stop') JSON.parse(j2.response);
    });

    test('cairn-library under a schema, nothing in the library: a 422 saying so, not text a JSON reader chokes on', async () => {
        await assert.rejects(client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'Who is here?' }],
            response_format: { type: 'json_object' } }),
        (e) => e.status === 422 && /^422 (Not found in your documents|Nothing in your library)/.test(e.message));
        // without a schema the same question is answered with that sentence
        const r = await client.chat.completions.create({
            model: 'cairn-library', messages: [{ role: 'user', content: 'Who is here?' }] });
        assert.match(r.choices[0].message.content, /^(Not found in your documents|Nothing in your library)/);
    });

    test('a schema that cannot be honoured: 400 naming the keyword', async () => {
        await assert.rejects(client.chat.completions.create({
            model: 'aidreams260K', messages: [{ role: 'user', content: 'x' }], max_tokens: 5,
            response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'integer', multipleOf: 3 } } },
        }), (e) => e.status === 400 && /keyword "multipleOf" is not supported/.test(e.message) && e.param === 'response_format');
        const r = await fetch(`${srv.url}/api/chat`, { method: 'POST', body: JSON.stringify({
            model: 'aidreams260K', messages: [{ role: 'user', content: 'x' }], format: 'yaml' }) });
        assert.equal(r.status, 400);
        assert.match((await r.json()).error, /format/);
    });
});
