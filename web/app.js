// Cairn web UI: plain JavaScript, no framework, no build step. Talks to the
// server's own API: /v1/chat/completions (model "cairn-library", streamed)
// for answers, /api/library/* for documents, /api/status for the status
// line, /api/models for the model manager.
'use strict';

const $ = (id) => document.getElementById(id);
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
let apiKey = localStorage.getItem('cairn-key') || '';

/* Read a streamed response, calling each(item) for every piece between
** separators (SSE events: "\n\n"; NDJSON lines: "\n"). */
async function eachPiece(res, sep, each) {
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf(sep)) >= 0) {
            const piece = buf.slice(0, cut);
            buf = buf.slice(cut + sep.length);
            each(piece);
        }
    }
}

/* fetch with the API key (asked for once, when the server wants one). */
async function api(path, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
    const res = await fetch(path, { ...opts, headers });
    if (res.status === 401 && !opts.retried) {
        const key = await askKey();
        if (key) return api(path, { ...opts, retried: true });
    }
    return res;
}

function askKey() {
    return new Promise((resolve) => {
        const d = $('key-dialog');
        d.addEventListener('close', () => {
            apiKey = $('key').value.trim();
            if (apiKey) localStorage.setItem('cairn-key', apiKey);
            resolve(apiKey);
        }, { once: true });
        d.showModal();
    });
}

async function errorText(res) {
    try {
        const j = await res.json();
        return typeof j.error === 'string' ? j.error : j.error.message;
    } catch { return `HTTP ${res.status}`; }
}

function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
}

/* ---- views -------------------------------------------------------------- */

const tabs = ['chat', 'docs', 'models'];
function show(name) {
    for (const t of tabs) {
        const on = t === name;
        $(`tab-${t}`).setAttribute('aria-selected', on ? 'true' : 'false');
        $(`tab-${t}`).tabIndex = on ? 0 : -1;
        $(`view-${t}`).hidden = !on;
    }
    if (name === 'docs') { loadDocs(); loadWatch(); }
    if (name === 'models') loadModels();
    if (name === 'chat') $('question').focus();
}
for (const t of tabs) {
    $(`tab-${t}`).addEventListener('click', () => show(t));
    $(`tab-${t}`).addEventListener('keydown', (e) => {
        const i = tabs.indexOf(t);
        if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
            const next = tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
            show(next);
            $(`tab-${next}`).focus();
        }
    });
}

/* ---- status line ------------------------------------------------------------ */

const LEVELS = { keyword: 'keyword search', hybrid: 'hybrid search', answers: 'written answers' };
let status = null;
async function loadStatus() {
    try {
        const res = await api('/api/status');
        if (!res.ok) throw new Error(await errorText(res));
        status = await res.json();
        $('level').textContent = LEVELS[status.level] || status.level;
        const lb = status.library;
        $('status').textContent = `${status.why} · ${plural(lb.documents, 'document')}, ${plural(lb.passages, 'passage')}` +
            (lb.encrypted ? ' · encrypted at rest' : '');
    } catch (e) {
        $('level').textContent = 'offline';
        $('status').textContent = `cannot reach the server: ${e.message}`;
    }
}

/* ---- chat ---------------------------------------------------------------- */

const history = [];
let controller = null;

function sentences(text) {
    return text.split(/(?<=[.!?])\s+|\n+/).map((s) => s.trim()).filter(Boolean);
}
function words(s) {
    return new Set((s.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || []));
}
/* The sentence of the passage that best matches what cites it: the answer's
** sentences holding [n], or the question when none does. */
function citedSentence(passage, answer, n, question) {
    const citing = sentences(answer).filter((s) => new RegExp(`\\[(?:\\d+,\\s*)*${n}(?:,\\s*\\d+)*\\]`).test(s));
    const want = words((citing.length ? citing.join(' ') : question).replace(/\[[\d,\s]+\]/g, ''));
    let best = null, bestScore = 0;
    for (const s of sentences(passage)) {
        let score = 0;
        for (const w of words(s)) if (want.has(w)) score++;
        if (score > bestScore) { best = s; bestScore = score; }
    }
    return best;
}

function showPassage(c, answer, question) {
    $('passage-title').textContent = `[${c.n}] ${c.doc}, p. ${c.page}${c.ocr ? " (OCR)" : ""}${c.locator ? ", " + c.locator : ""}`;
    const box = $('passage-text');
    box.textContent = '';
    const s = citedSentence(c.text, answer, c.n, question);
    const at = s ? c.text.indexOf(s) : -1;
    if (at < 0) {
        box.textContent = c.text;
    } else {
        box.append(c.text.slice(0, at));
        box.append(el('mark', '', s));
        box.append(c.text.slice(at + s.length));
    }
    $('passage').hidden = false;
    box.querySelector('mark')?.scrollIntoView({ block: 'nearest' });
    $('passage-close').focus();
}
$('passage-close').addEventListener('click', () => { $('passage').hidden = true; $('question').focus(); });

/* The passages as chips under the answer. They come twice: with the first
** chunk, before the model has read them (pending: nothing cited yet), and
** with the last, marked cited or not; the second set replaces the first. */
function addChips(box, citations, answer, question, pending = false) {
    box.querySelector('.chips')?.remove();
    if (!citations || !citations.length) return;
    const anyCited = citations.some((c) => c.cited);
    const chips = el('div', pending ? 'chips pending' : 'chips');
    for (const c of citations) {
        const chip = el('button', `chip${c.cited || !anyCited ? '' : ' uncited'}`,
                        `[${c.n}] ${c.doc}, p. ${c.page}${c.ocr ? " (OCR)" : ""}${c.locator ? ", " + c.locator : ""}`);
        chip.type = 'button';
        chip.title = pending ? 'found; the answer is being written'
                             : c.cited ? 'cited in the answer' : 'found, not cited';
        chip.addEventListener('click', () => showPassage(c, answer, question));
        chips.append(chip);
    }
    box.append(chips);
}

/* A question to the library's model, or (remote: {name, passages}) to a
** remote the user confirmed in the dialog: then only the question and the
** passages kept go, never the conversation. */
async function ask(question, remote = null) {
    const list = $('messages');
    list.append(el('div', 'msg user', remote ? `${question}  (to ${remote.name})` : question));
    const box = el('div', 'msg assistant streaming');
    if (remote) box.dataset.remote = remote.name;
    const text = el('span', 'text');
    box.append(text);
    list.append(box);
    box.scrollIntoView({ block: 'end' });
    if (!remote) history.push({ role: 'user', content: question });
    controller = new AbortController();
    $('send').disabled = true;
    $('stop').hidden = false;
    let answer = '', citations = null;
    try {
        const res = await api('/v1/chat/completions', {
            method: 'POST', signal: controller.signal,
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify(remote
                ? { model: `remote:${remote.name}`, stream: true, messages: [{ role: 'user', content: question }],
                    cairn_passages: remote.passages }
                : { model: 'cairn-library', stream: true, messages: history.slice(-8) }),
        });
        if (!res.ok) throw new Error(await errorText(res));
        await eachPiece(res, '\n\n', (ev) => {
            if (!ev.startsWith('data: ')) return;
            const data = ev.slice(6);
            if (data === '[DONE]') return;
            const j = JSON.parse(data);
            if (j.error) throw new Error(j.error.message);
            for (const ch of j.choices || []) answer += ch.delta.content || '';
            if (j.citations && !citations) addChips(box, j.citations, answer, question, true);
            if (j.citations) citations = j.citations;
            text.textContent = answer;
        });
        if (!remote) history.push({ role: 'assistant', content: answer });
        addChips(box, citations, answer, question);
        if (!remote && status?.remotes?.length)
            box.append(button('Ask a stronger model', 'Ask a stronger model: see what would be sent first',
                              () => remoteDialog(question)));
    } catch (e) {
        if (e.name !== 'AbortError') {
            box.classList.add('error');
            text.textContent = `${answer}${answer ? '\n' : ''}${e.message}`;
        }
        if (!remote) history.pop();
    } finally {
        box.classList.remove('streaming');
        box.dataset.done = 'true';
        $('send').disabled = false;
        $('stop').hidden = true;
        controller = null;
    }
}

/* The consent dialog: what would leave the machine, each passage with a box
** to withhold it; nothing is sent until Send. */
async function remoteDialog(question) {
    const d = $('remote-dialog');
    const list = $('remote-passages');
    const pick = $('remote-name');
    pick.textContent = '';
    for (const n of status.remotes) pick.append(el('option', '', n));
    let preview = null;
    const total = () => {
        const kept = [...list.querySelectorAll('input:checked')].map((c) => Number(c.dataset.bytes));
        $('remote-total').textContent = `${kept.length} of ${preview.passages.length} passages, ` +
            `${kept.reduce((a, b) => a + b, question.length)} bytes of text`;
        $('remote-send').disabled = kept.length === 0;
    };
    const load = async () => {
        list.textContent = '';
        $('remote-where').textContent = 'loading…';
        const r = await api('/api/remote/preview', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                      body: JSON.stringify({ question, remote: pick.value }) });
        if (!r.ok) { $('remote-where').textContent = await errorText(r); return; }
        preview = await r.json();
        $('remote-where').textContent = `To ${preview.remote.name}: ${preview.remote.url}, model ${preview.remote.model}`;
        $('remote-question').textContent = preview.question; /* as it would leave: redacted */
        if (preview.redacted) $('remote-where').textContent += ` · ${preview.redacted} redacted by your settings' patterns`;
        for (const p of preview.passages) {
            const li = el('li');
            const box = el('input');
            box.type = 'checkbox';
            box.checked = true;
            box.id = `rp-${p.id}`;
            box.dataset.id = p.id;
            box.dataset.bytes = p.bytes;
            box.addEventListener('change', total);
            const label = el('label', '', `[${p.n}] ${p.doc}, p. ${p.page} (${p.bytes} bytes): `);
            label.htmlFor = box.id;
            label.append(el('span', 'note', `${p.text.slice(0, 160)}${p.text.length > 160 ? '…' : ''}`));
            li.append(box, ' ', label);
            list.append(li);
        }
        if (!preview.passages.length) list.append(el('li', 'note', 'Nothing in your documents for this question: nothing to send.'));
        total();
    };
    pick.onchange = load;
    d.showModal();
    await load();
    d.onclose = () => {
        if (d.returnValue !== 'send' || !preview) return;
        const passages = [...list.querySelectorAll('input:checked')].map((c) => Number(c.dataset.id));
        if (passages.length) ask(question, { name: preview.remote.name, passages });
    };
}

$('ask').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('question').value.trim();
    if (!q || controller) return;
    $('question').value = '';
    ask(q);
});
$('question').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        $('ask').requestSubmit();
    }
});
$('stop').addEventListener('click', () => controller?.abort());

/* ---- documents ------------------------------------------------------------- */

async function loadDocs() {
    const rows = $('doc-rows');
    const res = await api('/api/library/documents');
    if (!res.ok) { rows.textContent = ''; rows.append(el('tr', '', await errorText(res))); return; }
    const { documents } = await res.json();
    rows.textContent = '';
    if (!documents.length) {
        const tr = el('tr');
        const td = el('td', 'note', 'No documents yet: drop some above.');
        td.colSpan = 5;
        tr.append(td);
        rows.append(tr);
    }
    const ocrState = (o) => ['indexed', o.done ? `${o.done} scanned ${o.done === 1 ? 'page' : 'pages'} read by OCR` : '',
        o.low_confidence ? `${o.low_confidence} low confidence` : '', o.pending ? `${o.pending} waiting for OCR` : '',
        o.failed ? `${o.failed} unreadable` : ''].filter(Boolean).join(', ');
    for (const d of documents) {
        const tr = el('tr');
        tr.dataset.name = d.name;
        const name = el('td', '', d.title && d.title !== d.name ? `${d.name} — ${d.title}` : d.name);
        name.title = d.path;
        tr.append(name, el('td', 'num', String(d.pages)), el('td', 'num', String(d.passages)),
                  el('td', d.status === 'failed' || (d.ocr && (d.ocr.low_confidence || d.ocr.failed)) ? 'bad' : '',
                     d.status === 'failed' ? `failed: ${d.error}` : d.ocr ? ocrState(d.ocr) : 'indexed'));
        const act = el('td');
        const rm = el('button', 'ghost', 'Remove');
        rm.type = 'button';
        rm.setAttribute('aria-label', `Remove ${d.name}`);
        rm.addEventListener('click', async () => {
            if (!confirm(`Remove ${d.name} from the library?`)) return;
            const r = await api(`/api/library/documents/${d.id}`, { method: 'DELETE' });
            if (!r.ok) alert(await errorText(r));
            loadDocs();
            loadStatus();
        });
        if (d.status !== 'failed') {
            act.append(button('Summarize', `Summarize ${d.name}`, () => summarize(d)), ' ',
                       button('Extract', `Extract fields from ${d.name}`, () => extract(d)), ' ');
        }
        act.append(rm);
        tr.append(act);
        rows.append(tr);
    }
}

/* ---- watched folders ----------------------------------------------------------------- */

const FOLDER_STATE = { watching: 'watched', missing: 'not there now (followed again when it is)',
                       polling: 'rescanned now and then', new: 'starting' };
let watchSeen = '';
async function loadWatch() {
    const res = await api('/api/watch');
    if (!res.ok) { $('watch-state').textContent = await errorText(res); return; }
    const w = await res.json();
    const list = $('watch-list');
    list.textContent = '';
    for (const f of w.folders) {
        const li = el('li', f.state === 'watching' ? '' : 'bad');
        li.append(el('span', 'watch-path', f.path), ' ', el('span', 'note', FOLDER_STATE[f.state] || f.state));
        if (f.note) li.append(el('div', 'note', f.note));
        li.append(' ', button('Stop watching', `Stop watching ${f.path}`, () => watchChange({ remove: f.path })));
        list.append(li);
    }
    const t = w.totals || { added: 0, updated: 0, removed: 0, failed: 0 };
    const parts = [];
    if (w.activity === 'off') parts.push('this server does not follow watched folders (started with --no-watch)');
    else if (!w.folders.length) parts.push('no folder is watched yet');
    else parts.push(w.activity === 'indexing' ? 'indexing…' : 'up to date');
    if (w.pending) parts.push(`${plural(w.pending, 'file')} settling`);
    if (t.added + t.updated + t.removed + t.failed)
        parts.push(`since the server started: ${t.added} added, ${t.updated} updated, ${t.removed} removed` +
                   (t.failed ? `, ${t.failed} failed` : ''));
    if (w.last) parts.push(`last: ${w.last.outcome} ${w.last.path.split('/').pop()} at ${new Date(w.last.at * 1000).toLocaleTimeString()}`);
    if (w.error) parts.push(`problem: ${w.error}`);
    $('watch-state').textContent = parts.join(' · ');
    /* the documents list follows what the folders bring */
    const seen = JSON.stringify([t, w.activity]);
    if (watchSeen && seen !== watchSeen && w.activity !== 'indexing') { loadDocs(); loadStatus(); }
    watchSeen = seen;
}
async function watchChange(body) {
    const res = await api('/api/watch', { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) alert(await errorText(res));
    loadWatch();
}
$('watch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const path = $('watch-path').value.trim();
    if (path) watchChange({ add: path }).then(() => { $('watch-path').value = ''; });
});
setInterval(() => { if (!$('view-docs').hidden) loadWatch(); }, 2000);

/* ---- a document's summary and extracted fields ---------------------------------- */

const spans = (pages) => pages.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ');
const pagesLabel = (pages) => `${pages.length > 1 || pages[0][0] !== pages[0][1] ? 'pp.' : 'p.'} ${spans(pages)}`;
let docRun = null; /* the running summary or extraction: a new one stops it */

function resultPanel(title) {
    if (docRun) docRun.abort();
    docRun = new AbortController();
    $('doc-result').hidden = false;
    $('doc-result-title').textContent = title;
    $('doc-result-progress').hidden = false;
    $('doc-result-progress').removeAttribute('value');
    $('doc-result-state').textContent = 'starting…';
    $('doc-result-body').textContent = '';
    return docRun.signal;
}
$('doc-result-close').addEventListener('click', () => {
    if (docRun) docRun.abort();
    $('doc-result').hidden = true;
});

/* POST body to path and hand each NDJSON line to each(); false on failure (said). */
async function ndjson(path, body, signal, each) {
    try {
        const res = await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                      body: JSON.stringify(body), signal });
        if (!res.ok) { $('doc-result-state').textContent = await errorText(res); return false; }
        await eachPiece(res, '\n', (line) => { if (line.trim()) each(JSON.parse(line)); });
        return true;
    } catch (e) {
        if (e.name !== 'AbortError') $('doc-result-state').textContent = `failed: ${e.message}`;
        return false;
    }
}

async function summarize(d) {
    const signal = resultPanel(`Summary of ${d.name}`);
    const bar = $('doc-result-progress'), state = $('doc-result-state'), body = $('doc-result-body');
    const live = el('p', 'streaming');
    body.append(live);
    await ndjson('/api/library/summarize', { document: d.id, length: 'medium' }, signal, (ev) => {
        if (ev.event === 'step') {
            bar.max = ev.total;
            bar.value = ev.done;
            const eta = ev.eta_s >= 0 ? `, about ${Math.round(ev.eta_s)} s left` : '';
            state.textContent = `step ${ev.done + 1} of ${ev.total}: ${ev.level ? 'combining summaries of' : 'reading'} pages ${ev.pages[0]}-${ev.pages[1]}${ev.cached ? ' (done before)' : ''}${eta}`;
        } else if (ev.event === 'text') {
            live.textContent += ev.text;
        } else if (ev.event === 'summary') {
            bar.hidden = true;
            live.remove();
            state.textContent = ev.mode === 'extractive'
                ? 'Extractive summary: the most central sentences, quoted (no language model installed).'
                : `${plural(ev.steps, "step")} (${ev.cached} done before), ${ev.seconds.toFixed(1)} s, by ${ev.model}.`;
            const ol = el('ol', 'summary');
            for (const sn of ev.sentences) {
                const li = el('li', '', sn.text);
                li.append(el('span', 'pages chip', pagesLabel(sn.pages)));
                ol.append(li);
            }
            body.append(ol);
        } else if (ev.event === 'error') {
            bar.hidden = true;
            state.textContent = `failed: ${ev.error}`;
        }
    });
}

async function extract(d) {
    let schema;
    try { schema = JSON.parse($('schema').value); } catch (e) {
        $('extract-box').open = true;
        alert(`The schema is not JSON: ${e.message}`);
        return;
    }
    const signal = resultPanel(`Fields of ${d.name}`);
    const bar = $('doc-result-progress'), state = $('doc-result-state'), body = $('doc-result-body');
    await ndjson('/api/library/extract', { documents: [d.id], schema }, signal, (ev) => {
        if (ev.event === 'field') {
            bar.max = ev.total;
            bar.value = ev.done;
            state.textContent = `field ${ev.done + 1} of ${ev.total}: ${ev.field}`;
        } else if (ev.event === 'result') {
            const t = el('table', 'docs fields');
            for (const [name, v] of Object.entries(ev.data)) {
                const c = ev.citations[name] || {};
                const tr = el('tr');
                const val = el('td');
                if (v === null) {
                    val.append(el('span', 'note', `— ${c.reason || 'not found'}`));
                } else {
                    val.append(typeof v === 'string' ? v : JSON.stringify(v), el('span', 'pages chip', `p. ${c.page}`));
                    val.append(el('blockquote', '', c.quote));
                }
                tr.append(el('td', '', name), val);
                t.append(tr);
            }
            body.append(t);
        } else if (ev.event === 'done') {
            bar.hidden = true;
            state.textContent = `by ${ev.model}. Values come only with the sentence that states them.`;
        } else if (ev.event === 'error') {
            bar.hidden = true;
            state.textContent = `failed: ${ev.error}`;
        }
    });
}

function upload(files) {
    for (const f of files) uploadOne(f);
}

/* One file: upload with a progress bar, then the server's ingest events. */
function uploadOne(file) {
    const li = el('li');
    const name = el('span', '', file.name);
    const bar = el('progress');
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', `upload of ${file.name}`);
    const state = el('span', 'state', 'uploading…');
    li.append(name, bar, state);
    $('uploads').prepend(li);
    const form = new FormData();
    form.append('file', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/library/documents');
    if (apiKey) xhr.setRequestHeader('Authorization', `Bearer ${apiKey}`);
    let seen = 0;
    xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.value = e.loaded / e.total;
    };
    xhr.onprogress = () => {
        // the response streams one JSON object per line while the file is ingested
        const lines = xhr.responseText.slice(seen).split('\n');
        const complete = lines.slice(0, -1);
        seen += complete.reduce((n, l) => n + l.length + 1, 0);
        for (const l of complete) if (l) onEvent(JSON.parse(l));
    };
    const onEvent = (ev) => {
        if (ev.event === 'uploaded') { bar.value = 1; state.textContent = 'reading…'; }
        else if (ev.event === 'file') {
            if (ev.outcome === 'failed') { state.textContent = `failed: ${ev.error}`; state.classList.add('bad'); }
            else state.textContent = `${ev.outcome}: ${plural(ev.pages, 'page')}, ${plural(ev.passages, 'passage')}`;
        } else if (ev.event === 'ocr') {
            bar.max = ev.total || 1;
            bar.value = ev.done;
            state.textContent = `OCR of scanned pages: ${ev.done}/${ev.total} (p. ${ev.page})${ev.eta_s > 0 ? `, about ${Math.ceil(ev.eta_s)} s left` : ''}`;
        } else if (ev.event === 'embed') {
            bar.max = ev.total || 1;
            bar.value = ev.done;
            state.textContent = `embedding ${ev.done}/${plural(ev.total, 'passage')}${ev.eta_s > 0 ? `, about ${Math.ceil(ev.eta_s)} s left` : ''}`;
        } else if (ev.event === 'done') {
            if (ev.error) { state.textContent = `failed: ${ev.error}`; state.classList.add('bad'); }
            else if (ev.ocr_error) { state.textContent = `indexed; scanned pages wait for OCR: ${ev.ocr_error}`; state.classList.add('bad'); }
            else if (!ev.failed) state.textContent = `indexed${ev.ocr_pages ? `, ${plural(ev.ocr_pages, 'scanned page')} read by OCR` : ''}${ev.embedded ? `, ${plural(ev.embedded, 'passage')} embedded` : ''}${ev.unchanged ? ' (unchanged)' : ''}`;
            li.dataset.done = 'true';
            loadDocs();
            loadStatus();
        }
    };
    xhr.onload = () => {
        xhr.onprogress();
        if (xhr.status !== 200) {
            let msg = `HTTP ${xhr.status}`;
            try { const j = JSON.parse(xhr.responseText); msg = j.error.message || j.error; } catch { /* not JSON */ }
            state.textContent = `failed: ${msg}`;
            state.classList.add('bad');
            li.dataset.done = 'true';
        }
    };
    xhr.onerror = () => { state.textContent = 'failed: the connection broke'; state.classList.add('bad'); li.dataset.done = 'true'; };
    xhr.send(form);
}

const drop = $('drop');
drop.addEventListener('click', () => $('file').click());
drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); }
});
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(e.dataTransfer.files);
});
$('file').addEventListener('change', (e) => { upload(e.target.files); e.target.value = ''; });

/* ---- models ------------------------------------------------------------------- */

function size(bytes) {
    const u = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (bytes >= 1000 && i < u.length - 1) { bytes /= 1000; i++; }
    return `${bytes.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function cell(text, cls) { return el('td', cls || '', text); }
function emptyRow(rows, cols, text) {
    const tr = el('tr');
    const td = el('td', 'note', text);
    td.colSpan = cols;
    tr.append(td);
    rows.append(tr);
}
function button(label, aria, fn) {
    const b = el('button', 'ghost', label);
    b.type = 'button';
    b.setAttribute('aria-label', aria);
    b.addEventListener('click', fn);
    return b;
}
const downloads = new Map(); /* model name -> its row's progress cell, while pulling */

async function loadModels() {
    await loadStatus();
    const rows = $('model-rows');
    rows.textContent = '';
    for (const m of status?.models || []) {
        const tr = el('tr');
        tr.append(cell(m.name), cell(m.role), cell(size(m.size), 'num'),
                  cell(`${m.context} tokens`, 'num'), cell(String(m.queued), 'num'));
        rows.append(tr);
    }
    if (!rows.children.length) emptyRow(rows, 5, 'No model loaded: keyword search and quoted answers only.');

    const up = status?.updates;
    if (up) {
        $('updates').value = up.schedule;
        const when = up.checked_at ? `last checked ${new Date(up.checked_at * 1000).toLocaleString()}` : 'never checked';
        $('updates-note').textContent = `${when}${up.error ? ` (failed: ${up.error})` : ''}. New versions are downloaded and verified in the background, then offered here; nothing is switched to by itself.`;
    }
    const res = await api('/api/models');
    const inst = $('installed-rows'), avail = $('available-rows');
    inst.textContent = '';
    avail.textContent = '';
    if (!res.ok) { $('catalog').textContent = await errorText(res); return; }
    const l = await res.json();
    const hw = l.machine;
    $('machine').textContent = `This machine: ${size(hw.ram_total)} memory (${size(hw.ram_avail)} free), ${hw.cores} cores, ${size(hw.disk_free)} free disk.` +
        (l.recommended?.chat ? ` Recommended: ${l.recommended.chat.name} (${l.recommended.chat.why})` : '');
    for (const m of l.installed) {
        const tr = el('tr');
        tr.dataset.name = m.name;
        const ready = (status?.updates?.offers || []).some((o) => o.name === m.name && o.ready);
        const state = [m.active ? 'active' : '', m.loaded ? 'loaded' : '', m.verified ? 'verified' : 'unverified',
                       ready ? 'updated version ready' : ''].filter(Boolean).join(', ');
        const act = el('td');
        if (!m.active) act.append(button('Use', `Use ${m.name}`, () => modelAction('use', m.name)));
        /* an update downloaded and verified in the background: offered, not forced */
        const offer = (status?.updates?.offers || []).find((o) => o.name === m.name && o.ready);
        if (offer) {
            act.append(button('Use the update', `Use the updated version of ${m.name}`,
                              () => modelAction('use', `${m.name}@${offer.version}`)));
            tr.title = `An updated version (${offer.version}) is ready; the current one (${offer.current}) stays as the fallback.`;
        }
        if (!m.loaded) act.append(button('Remove', `Remove ${m.name}`, () => modelAction('remove', m.name)));
        tr.append(cell(m.name), cell(m.role), cell(size(m.size), 'num'), cell(state), act);
        inst.append(tr);
    }
    if (!l.installed.length) emptyRow(inst, 5, 'No model installed yet.');
    for (const p of l.partial) {
        const tr = el('tr');
        tr.append(cell(p.name), cell(''), cell(`${size(p.done)} of ${size(p.size)}`, 'num'), cell('interrupted download'),
                  el('td'));
        tr.lastChild.append(button('Resume', `Resume ${p.name}`, () => pull(p.name)));
        inst.append(tr);
    }
    for (const e of l.available) {
        const tr = el('tr');
        tr.dataset.name = e.name;
        const act = el('td');
        if (downloads.has(e.name)) act.append(downloads.get(e.name));
        else if (!e.installed) act.append(button('Download', `Download ${e.name}`, () => pull(e.name)));
        else act.append(el('span', 'note', 'installed'));
        const name = cell(e.name);
        name.title = e.description;
        tr.append(name, cell(e.role), cell(size(e.size), 'num'), cell(size(e.ram_mb * 1e6), 'num'),
                  cell(e.fit, e.fit === 'too big' ? 'bad' : ''), act);
        avail.append(tr);
    }
    if (!l.available.length) emptyRow(avail, 6, 'The catalog is empty.');
    $('catalog').textContent = l.catalog ? `Catalog: ${l.catalog}` : `Catalog unavailable: ${l.catalog_error}`;
}

$('updates').addEventListener('change', async () => {
    const res = await api('/api/updates', { method: 'POST', body: JSON.stringify({ schedule: $('updates').value }) });
    if (!res.ok) alert(await errorText(res));
    loadModels();
});

async function modelAction(what, name) {
    let res;
    if (what === 'use') res = await api('/api/models/use', { method: 'POST', body: JSON.stringify({ name }) });
    else {
        if (!confirm(`Remove ${name} from this machine?`)) return;
        res = await api(`/api/models/${encodeURIComponent(name)}`, { method: 'DELETE' });
    }
    const j = await res.json().catch(() => ({}));
    if (!res.ok) alert(typeof j.error === 'string' ? j.error : j.error?.message || `HTTP ${res.status}`);
    else if (j.note) alert(j.note);
    loadModels();
}

/* Download with a progress bar and ETA (the server streams progress lines). */
/* Download name with its progress in box's place: the models table's row,
** or host (the welcome panel). Resolves true when installed. */
async function pull(name, host = null) {
    const box = el('div', 'pull');
    const bar = el('progress');
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute('aria-label', `download of ${name}`);
    const note = el('span', 'state', 'starting…');
    box.append(bar, note);
    downloads.set(name, box);
    const row = host || document.querySelector(`#available-rows tr[data-name="${CSS.escape(name)}"] td:last-child`);
    if (row) { row.textContent = ''; row.append(box); }
    let ok = false;
    try {
        const res = await api('/api/models/pull', { method: 'POST', body: JSON.stringify({ name }) });
        if (!res.ok) throw new Error(await errorText(res));
        await eachPiece(res, '\n', (line) => {
            const ev = JSON.parse(line);
            if (ev.event === 'progress') {
                bar.max = ev.total || 1;
                bar.value = ev.done;
                const eta = ev.eta_s >= 0 && ev.done < ev.total ? `, ${Math.ceil(ev.eta_s)} s left` : '';
                note.textContent = `${ev.phase} ${size(ev.done)} of ${size(ev.total)}${ev.bytes_per_s ? ` at ${size(ev.bytes_per_s)}/s` : ''}${eta}`;
            } else if (ev.event === 'error') {
                throw new Error(ev.message);
            } else if (ev.event === 'done') {
                note.textContent = ev.loaded ? 'installed, in use' : 'installed';
                bar.value = bar.max;
                ok = true;
            }
        });
    } catch (e) {
        if (host) note.textContent = `failed: ${e.message}`;
        else alert(`Download of ${name} failed: ${e.message}`);
    } finally {
        downloads.delete(name);
        if (!host) loadModels();
        loadStatus();
    }
    return ok;
}

/* ---- first run ----------------------------------------------------------------- */

/* No model installed and none loaded: what this machine is, what to get,
** one button. Nothing is downloaded until it is pressed. */
async function firstRun() {
    if (localStorage.getItem('cairn-welcome') === 'later') return;
    const res = await api('/api/models');
    if (!res.ok) return;
    const l = await res.json();
    if (l.installed.length || (status && status.models?.length)) return;
    const hw = l.machine;
    $('welcome-machine').textContent = `This computer: ${size(hw.ram_total)} memory (${size(hw.ram_avail)} free), ` +
        `${hw.cores} cores (${hw.simd}), ${size(hw.disk_free)} free disk.`;
    const list = $('welcome-models');
    list.textContent = '';
    const picks = [];
    for (const role of ['chat', 'embed']) {
        const rec = l.recommended?.[role];
        const e = rec && l.available.find((a) => a.name === rec.name);
        if (!e) continue;
        const li = el('li');
        li.dataset.name = e.name;
        li.append(el('strong', '', e.name), ` — ${role === 'chat' ? 'writes answers with citations' : 'finds passages by meaning (hybrid search)'}, ` +
                  `${size(e.size)} to download, ${size(e.ram_mb * 1e6)} of memory to run`);
        if (rec.why) li.append(el('div', 'note', rec.why));
        const slot = el('div', 'welcome-slot');
        li.append(slot);
        list.append(li);
        picks.push({ name: e.name, slot });
    }
    if (!l.catalog) {
        const off = $('welcome-offline');
        off.hidden = false;
        off.textContent = `No model catalog here (${l.catalog_error || 'offline'}). Keyword search and quoted answers work now. ` +
            'To bring models on a USB stick: on a connected machine `cairn models pull NAME` then `cairn models export NAME /media/usb`; here `cairn models import /media/usb/NAME.gguf`.';
    }
    $('welcome-get').hidden = !picks.length;
    $('welcome').hidden = false;
    $('welcome-get').onclick = async () => {
        $('welcome-get').disabled = true;
        for (const p of picks) await pull(p.name, p.slot);
        $('welcome-get').hidden = true;
        $('welcome-later').textContent = 'Close';
    };
    $('welcome-later').onclick = () => {
        localStorage.setItem('cairn-welcome', 'later');
        $('welcome').hidden = true;
    };
}

loadStatus().then(firstRun);
setInterval(loadStatus, 15000);
show('chat');
