// The Lode explorer: a page the node serves itself (`/explorer/`), calling the same node over gRPC-web.
// Views are chosen by the URL's fragment: #/ (live chain), #/block/H, #/tx/HASH, #/account/ADDR,
// #/validators, #/proposals, #/nfts, #/market, #/job/ID. Everything from the chain is shown as text (never
// parsed as HTML): monikers, memos and NFT names are written by anyone.

import { Codec, hex, unhex } from './proto.js';
import { Client, GrpcError, CODE_NAMES } from './grpcweb.js';

const NODE = 'lode.node.v1';
const S = {
  query: `${NODE}.QueryService`,
  block: `${NODE}.BlockService`,
  tx: `${NODE}.TxService`,
  account: `${NODE}.AccountService`,
  events: `${NODE}.EventService`,
  staking: `${NODE}.StakingQueryService`,
  gov: `${NODE}.GovQueryService`,
  nft: `${NODE}.NftQueryService`,
  market: `${NODE}.MarketQueryService`,
};
// Blocks kept on the live view, and the span the tx rate is measured over.
const LIVE_BLOCKS = 20;

let client = null;
let codec = null;
// Work belonging to the current view (a live stream, a timer), stopped when the view changes.
let viewAbort = new AbortController();

// --- DOM helpers: every string becomes a text node. ---

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function link(href, text, props = {}) {
  return h('a', { href, ...props }, text);
}

function table(columns, rows, props = {}) {
  return h('table', props,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

function fields(pairs, props = {}) {
  return h('dl', { class: 'fields', ...props },
    pairs.filter(Boolean).map(([k, v, id]) => [h('dt', {}, k), h('dd', id ? { id } : {}, v)]));
}

function short(s, n = 10) {
  s = String(s);
  return s.length > 2 * n + 1 ? `${s.slice(0, n)}…${s.slice(-n)}` : s;
}

function time(ts) {
  if (!ts) return '';
  const ms = Number(ts.seconds) * 1000 + Math.floor(Number(ts.nanos || 0) / 1e6);
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC');
}

function resultText(r) {
  if (!r) return '';
  return r.code === 0 ? 'code 0 · success' : `code ${r.code} · failed: ${r.log}`;
}

function view() { return document.getElementById('view'); }

function show(...children) {
  view().replaceChildren(...children);
}

function showError(e) {
  const text = e instanceof GrpcError ? e.message : `error: ${e && e.message ? e.message : e}`;
  show(h('p', { class: 'error', id: 'error' }, text));
}

function pretty(value) {
  return JSON.stringify(value, (_, v) => (v instanceof Uint8Array ? hex(v) : v), 2);
}

// --- tx decoding: the raw tx is lode.tx.v1.Tx; its body and auth info are their own messages. ---

function decodeTx(raw) {
  try {
    const tx = codec.decode('lode.tx.v1.Tx', raw);
    const body = codec.decode('lode.tx.v1.TxBody', tx.body_bytes);
    const auth = codec.decode('lode.tx.v1.AuthInfo', tx.auth_info_bytes);
    return { body, auth, signatures: tx.signatures.length };
  } catch (e) {
    return { error: e.message };
  }
}

function msgKinds(decoded) {
  if (!decoded || !decoded.body) return '';
  return decoded.body.msgs.map((m) => m.$sum || '?').join(', ');
}

// --- views ---

async function home() {
  const signal = viewAbort.signal;
  const status = await client.call(S.query, 'Status', {});
  const rate = h('span', { id: 'tx-rate' }, '…');
  const heightCell = h('span', { id: 'live-height' }, String(status.latest_height));
  const blocks = h('tbody', { id: 'live-blocks' });
  const txs = h('tbody', { id: 'live-txs' });
  show(
    h('section', {},
      h('h2', {}, 'Chain'),
      fields([
        ['chain', status.chain_id, 'chain-id'],
        ['height', heightCell],
        ['last block', time(status.latest_block_time)],
        ['validators', String(status.validators.length)],
        ['peers', String(status.peers.length)],
        ['mempool', `${status.mempool_txs} txs, ${status.mempool_bytes} bytes`],
        ['tx rate', rate],
        ['node', `${status.moniker} ${status.version}${status.catching_up ? ' (catching up)' : ''}`],
      ])),
    h('section', {},
      h('h2', {}, 'Latest blocks'),
      h('table', {}, h('thead', {}, h('tr', {}, ['height', 'time', 'txs', 'proposer'].map((c) => h('th', {}, c)))), blocks)),
    h('section', {},
      h('h2', {}, 'Latest transactions'),
      h('table', {}, h('thead', {}, h('tr', {}, ['hash', 'height', 'result'].map((c) => h('th', {}, c)))), txs)),
  );
  const seen = [];
  const onBlock = (ev) => {
    const hd = ev.header || {};
    heightCell.textContent = String(hd.height);
    blocks.prepend(h('tr', {},
      h('td', {}, link(`#/block/${hd.height}`, String(hd.height))),
      h('td', {}, time(hd.time)),
      h('td', {}, String(ev.num_txs)),
      h('td', {}, short(hex(hd.proposer), 8))));
    while (blocks.children.length > LIVE_BLOCKS) blocks.lastChild.remove();
    for (const t of ev.txs) {
      txs.prepend(h('tr', {},
        h('td', {}, link(`#/tx/${hex(t.tx_hash)}`, short(hex(t.tx_hash), 12))),
        h('td', {}, String(hd.height)),
        h('td', {}, resultText(t.result))));
    }
    while (txs.children.length > LIVE_BLOCKS) txs.lastChild.remove();
    seen.push({ t: Number(hd.time ? hd.time.seconds : 0) + Number(hd.time ? hd.time.nanos : 0) / 1e9, n: ev.num_txs });
    while (seen.length > LIVE_BLOCKS) seen.shift();
    if (seen.length > 1) {
      const span = seen[seen.length - 1].t - seen[0].t;
      const n = seen.slice(1).reduce((a, b) => a + b.n, 0);
      rate.textContent = span > 0 ? `${(n / span).toFixed(1)} tx/s over the last ${seen.length} blocks` : '…';
    }
  };
  // Follow the chain from a little before the tip; when the node ends the stream (a slow page, a restart),
  // resume after the last height received.
  let from = Math.max(1, Number(status.latest_height) - LIVE_BLOCKS + 1);
  while (!signal.aborted) {
    let last = from - 1;
    try {
      await client.stream(S.events, 'Subscribe', { from_height: from }, (ev) => {
        last = Number(ev.header.height);
        onBlock(ev);
      }, signal);
    } catch (e) {
      if (signal.aborted) return;
    }
    from = last + 1;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function block(height) {
  const b = await client.call(S.block, 'GetBlock', { height: Number(height) });
  const hd = b.header;
  show(
    h('h2', {}, `Block ${hd.height}`),
    fields([
      ['block id', hex(b.block_id), 'block-id'],
      ['time', time(hd.time)],
      ['proposer', hex(hd.proposer)],
      ['previous', hd.height > 1 ? link(`#/block/${hd.height - 1}`, hex(hd.last_block_id)) : ''],
      ['app hash before', hex(hd.app_hash)],
      ['app hash after', hex(b.result_app_hash)],
      ['txs', String(b.txs.length), 'block-txs'],
      ['commit', `round ${b.commit_round}, ${b.signers.length} signatures`],
      ['next', link(`#/block/${Number(hd.height) + 1}`, String(Number(hd.height) + 1))],
    ]),
    h('h3', {}, 'Transactions'),
    table(['#', 'hash', 'messages', 'result', 'gas used'], b.txs.map((t) => [
      String(t.index),
      link(`#/tx/${hex(t.tx_hash)}`, short(hex(t.tx_hash), 12)),
      msgKinds(decodeTx(t.tx)),
      resultText(t.result),
      String(t.result ? t.result.gas_used : ''),
    ])),
    h('h3', {}, 'Block events'),
    eventsTable(b.events),
    h('h3', {}, 'Signers'),
    table(['validator', 'signature'], b.signers.map((s) => [hex(s.address), short(hex(s.signature), 16)])),
  );
}

function eventsTable(events) {
  const rows = [];
  for (const e of events) {
    for (const a of e.attributes) rows.push([e.type, a.key, a.value]);
    if (!e.attributes.length) rows.push([e.type, '', '']);
  }
  return table(['event', 'attribute', 'value'], rows, { class: 'events' });
}

async function tx(hash) {
  const bytes = unhex(hash.replace(/^0x/, ''));
  if (!bytes) throw new Error(`${hash} is not a hex hash`);
  let t;
  try {
    t = await client.call(S.tx, 'GetTx', { hash: bytes });
  } catch (e) {
    // A 32-byte id may also be a job's.
    if (e instanceof GrpcError && e.code === 5) {
      try {
        const j = await client.call(S.market, 'Job', { job_id: bytes });
        if (j.job) { location.hash = `#/job/${hash}`; return; }
      } catch (_) { /* not a job either */ }
    }
    throw e;
  }
  const d = decodeTx(t.tx);
  show(
    h('h2', {}, 'Transaction'),
    fields([
      ['hash', hex(t.tx_hash), 'tx-hash'],
      ['height', link(`#/block/${t.height}`, String(t.height)), 'tx-height'],
      ['index', String(t.index)],
      ['result', resultText(t.result), 'tx-result'],
      ['gas', `${t.result.gas_used} used of ${t.result.gas_wanted}`],
      ['messages', msgKinds(d), 'tx-messages'],
      d.body && d.body.memo ? ['memo', d.body.memo] : null,
      d.auth ? ['nonce', String(d.auth.nonce)] : null,
      d.auth && d.auth.fee ? ['fee', d.auth.fee.amount] : null,
    ]),
    h('h3', {}, 'Events'),
    eventsTable(t.events),
    h('h3', {}, 'Decoded'),
    h('pre', { id: 'tx-decoded' }, pretty(d.error ? { error: d.error } : d.body)),
  );
}

async function account(addr, pageToken) {
  const [a, hist] = await Promise.all([
    client.call(S.query, 'Account', { address: addr }),
    client.call(S.account, 'History', { address: addr, limit: 25, page_token: pageToken || new Uint8Array(0) }),
  ]);
  let tokens = null;
  try {
    tokens = await client.call(S.nft, 'TokensByOwner', { owner: addr });
  } catch (_) { /* shown without NFTs */ }
  const more = hist.next_page_token.length
    ? h('button', { id: 'history-more', onclick: () => account(addr, hist.next_page_token).catch(showError) }, 'older')
    : null;
  show(
    h('h2', {}, 'Account'),
    fields([
      ['address', a.address, 'account-address'],
      ['balance', a.balance, 'account-balance'],
      ['nonce', String(a.nonce)],
      ['at height', String(a.height)],
    ]),
    h('h3', {}, 'History'),
    table(['hash', 'height', 'messages', 'result'], hist.txs.map((t) => [
      link(`#/tx/${hex(t.tx_hash)}`, short(hex(t.tx_hash), 12)),
      link(`#/block/${t.height}`, String(t.height)),
      msgKinds(decodeTx(t.tx)),
      resultText(t.result),
    ]), { id: 'account-history' }),
    more,
    tokens && tokens.tokens.length ? h('h3', {}, 'NFTs') : null,
    tokens && tokens.tokens.length ? table(['collection', 'token', 'uri'], tokens.tokens.map((t) => [t.collection, t.id, t.uri])) : null,
  );
}

async function validators() {
  const [v, p] = await Promise.all([
    client.call(S.staking, 'Validators', {}),
    client.call(S.staking, 'Power', {}).catch(() => null),
  ]);
  const parts = new Map((p ? p.validators : []).map((x) => [x.operator, x]));
  const total = p ? Number(p.total_power) : 0;
  show(
    h('h2', {}, 'Validators'),
    p ? fields([
      ['epoch', `${p.epoch} (from height ${p.epoch_start_height}, ${p.epoch_blocks} blocks each)`],
      ['total bonded', v.total_bonded],
    ]) : null,
    table(['moniker', 'operator', 'status', 'bonded', 'power', 'share', 'from stake', 'from compute', 'verified CU'],
      v.validators.map((x) => {
        const q = parts.get(x.operator);
        return [
          x.moniker,
          link(`#/account/${x.operator}`, short(x.operator, 10)),
          x.status,
          x.tokens,
          String(x.set_power),
          total ? `${((Number(x.set_power) / total) * 100).toFixed(2)}%` : '',
          q ? String(q.stake_part) : '',
          q ? String(q.compute_part) : '',
          q ? q.verified_cu : '',
        ];
      }), { id: 'validators' }),
  );
}

async function proposals() {
  const r = await client.call(S.gov, 'Proposals', {});
  show(
    h('h2', {}, 'Proposals'),
    table(['id', 'title', 'status', 'submitted', 'voting ends', 'deposit', 'outcome'], r.proposals.map((p) => [
      String(p.id), p.title, String(p.status).replace('PROPOSAL_STATUS_', '').toLowerCase(),
      String(p.submit_height), String(p.voting_end_height), p.total_deposit,
      p.final_tally ? p.final_tally.outcome : '',
    ]), { id: 'proposals' }),
  );
}

async function nfts() {
  const r = await client.call(S.nft, 'Collections', {});
  show(
    h('h2', {}, 'NFT collections'),
    table(['id', 'name', 'symbol', 'creator', 'minted', 'supply', 'royalty'], r.collections.map((c) => [
      c.id, c.name, c.symbol, link(`#/account/${c.creator}`, short(c.creator, 10)),
      String(c.minted), String(c.supply), `${c.royalty_bps / 100}%`,
    ]), { id: 'collections' }),
  );
}

// Every state a job passes through (the market's JobStatus names), for the jobs table.
const JOB_STATES = ['open', 'matched', 'accepted', 'committed', 'revealing', 'settled', 'final', 'refunded',
  'cancelled', 'fraud_proven', 'withheld'];

async function market() {
  const [stats, providers, ...byState] = await Promise.all([
    client.call(S.market, 'Stats', {}),
    client.call(S.market, 'Providers', {}),
    ...JOB_STATES.map((status) => client.call(S.market, 'Jobs', { status, pagination: { limit: 20 } })),
  ]);
  // The newest jobs first, whatever their state.
  const jobs = { jobs: byState.flatMap((r) => r.jobs).sort((a, b) => Number(b.posted_height) - Number(a.posted_height)).slice(0, 50) };
  const c = stats.last_clearing;
  show(
    h('h2', {}, 'Market'),
    fields([
      ['demand', `${stats.open_jobs} open jobs, ${stats.open_cu} CU waiting`, 'market-demand'],
      ['in flight', String(stats.jobs_in_flight)],
      ['last clearing', c && c.height ? `height ${c.height}: ${c.matches} matches, price per CU ${c.min_price_per_cu}–${c.max_price_per_cu} (median ${c.median_price_per_cu})` : 'none yet'],
    ]),
    h('h3', {}, 'Supply: free devices by model'),
    table(['model', 'free', 'lowest ask per CU'], stats.free_devices.map((m) => [m.model, String(m.free), m.lowest_ask])),
    h('h3', {}, 'Lowest asks'),
    table(['provider', 'ask per CU', 'free devices', 'reputation'], stats.lowest_asks.map((a) => [
      link(`#/account/${a.provider}`, short(a.provider, 10)), a.ask_per_cu, String(a.free_devices), String(a.reputation),
    ])),
    h('h3', {}, 'Providers'),
    table(['provider', 'moniker', 'status', 'devices', 'ask per CU', 'bond', 'reputation', 'settled', 'failed'],
      providers.providers.map((p) => [
        link(`#/account/${p.address}`, short(p.address, 10)), p.moniker, p.status, String(p.devices.length),
        p.ask_per_cu, p.bond, String(p.reputation), String(p.jobs_settled), String(p.jobs_failed),
      ]), { id: 'providers' }),
    h('h3', {}, 'Jobs'),
    table(['job', 'status', 'shape', 'CU', 'consumer', 'provider', 'price per CU'], jobs.jobs.map((j) => [
      link(`#/job/${hex(j.id)}`, short(hex(j.id), 8)), j.status, `${j.m}×${j.k}×${j.n}`, String(j.cu),
      short(j.consumer, 8), j.provider ? short(j.provider, 8) : '', j.price_per_cu || j.max_price_per_cu,
    ]), { id: 'jobs' }),
  );
}

async function job(id) {
  const bytes = unhex(id);
  if (!bytes) throw new Error(`${id} is not a hex job id`);
  const { job: j } = await client.call(S.market, 'Job', { job_id: bytes });
  show(
    h('h2', {}, 'Job'),
    fields([
      ['id', hex(j.id)],
      ['status', j.status, 'job-status'],
      ['shape', `${j.m}×${j.k}×${j.n}, tiles of ${j.tile}, ${j.samples} samples`],
      ['compute units', String(j.cu)],
      ['consumer', link(`#/account/${j.consumer}`, j.consumer)],
      ['provider', j.provider ? link(`#/account/${j.provider}`, j.provider) : 'not matched'],
      ['price per CU', `${j.price_per_cu || '—'} (max ${j.max_price_per_cu})`],
      ['escrow', j.escrow],
      ['posted at', link(`#/block/${j.posted_height}`, String(j.posted_height))],
      ['deadline', String(j.deadline_height)],
      ['output root', hex(j.output_root)],
      ['sampled tiles', j.sampled_tiles.join(', ')],
    ]),
    h('h3', {}, 'Lifecycle'),
    table(['height', 'step', 'detail'], j.history.map((e) => [link(`#/block/${e.height}`, String(e.height)), e.step, e.detail]), { id: 'job-history' }),
  );
}

// --- routing ---

const ROUTES = [
  [/^#?\/?$/, () => home()],
  [/^#\/block\/(\d+)$/, (m) => block(m[1])],
  [/^#\/tx\/((?:0x)?[0-9a-fA-F]+)$/, (m) => tx(m[1])],
  [/^#\/account\/([0-9a-z]+)$/, (m) => account(m[1])],
  [/^#\/validators$/, () => validators()],
  [/^#\/proposals$/, () => proposals()],
  [/^#\/nfts$/, () => nfts()],
  [/^#\/market$/, () => market()],
  [/^#\/job\/([0-9a-fA-F]+)$/, (m) => job(m[1])],
];

async function route() {
  viewAbort.abort();
  viewAbort = new AbortController();
  const here = location.hash;
  document.body.dataset.loading = 'true';
  show(h('p', { class: 'loading' }, 'loading…'));
  try {
    const r = ROUTES.find(([re]) => re.test(here));
    if (!r) throw new Error(`nothing at ${here}`);
    const p = r[1](here.match(r[0]));
    // The live view never ends by itself; it counts as loaded once it has drawn.
    if (r[0] === ROUTES[0][0]) {
      p.catch((e) => { if (location.hash === here) showError(e); });
      await new Promise((res) => setTimeout(res, 0));
    } else {
      await p;
    }
  } catch (e) {
    if (location.hash === here) showError(e);
  } finally {
    document.body.dataset.loading = 'false';
  }
}

// What the search box takes: a height, a tx hash (or job id), an address.
export function searchTarget(q) {
  q = q.trim();
  if (/^\d+$/.test(q)) return `#/block/${q}`;
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(q)) return `#/tx/${q.replace(/^0x/, '').toLowerCase()}`;
  if (/^lode1[0-9a-z]+$/.test(q)) return `#/account/${q}`;
  return null;
}

async function main() {
  const form = document.getElementById('search');
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = document.getElementById('q').value;
    const target = searchTarget(q);
    if (target) {
      if (location.hash === target) route(); else location.hash = target;
    } else {
      show(h('p', { class: 'error', id: 'error' }, `not a height, tx hash or address: ${q}`));
    }
  });
  try {
    const resp = await fetch('schema.json');
    codec = new Codec(await resp.json());
    client = new Client(codec, '');
  } catch (e) {
    showError(new Error(`cannot read the node's types: ${e.message}`));
    return;
  }
  window.addEventListener('hashchange', route);
  await route();
}

main();

export { CODE_NAMES };
