// draft.test.mjs: `cairn serve --draft`: answers through the API are the
// same with a draft model as without one (here a second copy of the model:
// greedy, every draft it is sure of is kept), and a draft model whose
// vocabulary differs stops the server at start, naming the token.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, CHAT, ROOT } from './server.mjs';

const complete = async (srv, prompt) => {
    const r = await fetch(`${srv.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'aidreams260K', prompt, max_tokens: 48, temperature: 0 }),
    });
    assert.equal(r.status, 200);
    return (await r.json()).choices[0].text;
};

describe('serve --draft', () => {
    test('the same greedy text with and without a draft model', async () => {
        const prompts = ['I dreamed of', 'The night was'];
        const plain = await startServer(['-m', CHAT]);
        const want = [];
        try {
            for (const p of prompts) want.push(await complete(plain, p));
        } finally {
            assert.deepEqual(await plain.stop(), { code: 0, sig: null });
        }
        const spec = await startServer(['-m', CHAT, '--draft', CHAT]);
        try {
            for (let i = 0; i < prompts.length; i++) {
                const got = await complete(spec, prompts[i]);
                assert.ok(got.length > 0);
                assert.equal(got, want[i]);
            }
        } finally {
            assert.deepEqual(await spec.stop(), { code: 0, sig: null }, spec.log().slice(-2000));
        }
    });

    test('a draft model of another vocabulary is refused at start', async () => {
        const other = path.join(ROOT, 'tests/data/models/stories260K-rvspoc.gguf');
        await assert.rejects(startServer(['-m', CHAT, '--draft', other]),
                             /a draft model needs the model's vocabulary: token 259/);
    });
});
