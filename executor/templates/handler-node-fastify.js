// Airlock http handler for Fastify (starter template, written for Airlock).
//
// Airlock's executor sends one approved change per request:
//
//   POST /airlock/writeback          (method as configured: POST, PUT or PATCH)
//   Content-Type: application/json
//   Idempotency-Key: <proposal_id>:<object_id>      (same on every retry)
//   Authorization: Bearer <token>                    (if auth.token_env is set)
//   X-Airlock-Timestamp: <unix seconds>
//   X-Airlock-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//
// and expects one terminal JSON receipt back:
//   {"status": "applied" | "already_applied" | "conflict" | "failed",
//    "rows_affected": 1, "previous_version": ..., "new_version": ...,
//    "safe_error_code": "VERSION_CONFLICT", "message": "..."}
//
// Run:  npm install fastify
//       HANDLER_SIGNING_SECRET=... HANDLER_TOKEN=... node handler.js
//
// The in-memory maps below stand in for the application's database. With a
// real database, do the idempotency check, the tenant and version re-check,
// the UPDATE and the insert of the processed key in ONE transaction
// (SELECT ... FOR UPDATE). Here it is atomic because nothing awaits between
// the check and the write.
'use strict';

const crypto = require('node:crypto');
const fastify = require('fastify')({ logger: true, bodyLimit: 1024 * 1024 });

const SIGNING_SECRET = process.env.HANDLER_SIGNING_SECRET;
if (!SIGNING_SECRET) {
  console.error('HANDLER_SIGNING_SECRET is not set; refusing to start');
  process.exit(1);
}
const TOKEN = process.env.HANDLER_TOKEN || null; // optional second check
const MAX_SKEW_SECONDS = 300; // signed requests older than this are refused

// The tables this handler may change, and how: its OWN allow-list.
const TABLES = {
  invoices: {
    primaryKey: 'id',
    tenant: 'tenant_id',
    version: 'updated_at', // conflict-guard column
    columns: new Set(['late_fee_cents', 'waiver_reason']), // may be patched
  },
};

// Stand-in data store: rows by "<table>/<tenant>/<id>", and processed
// idempotency keys -> the receipt of the apply that used them.
const rows = new Map([
  ['invoices/acme/INV-3001', {
    id: 'INV-3001', tenant_id: 'acme', late_fee_cents: 5500,
    waiver_reason: null, updated_at: '2026-06-20T14:31:08Z',
  }],
]);
const processedKeys = new Map();

function receipt(status, code, message, extra = {}) {
  const r = { status };
  if (code) r.safe_error_code = code;
  if (message) r.message = String(message).slice(0, 500);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) r[k] = v;
  return r;
}

function nextVersion(current) {
  // Integer versions count up; anything else becomes the current time.
  return Number.isInteger(current) ? current + 1 : new Date().toISOString();
}

function safeEqual(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// Returns null if the request is authentic, else a failed receipt.
function verify(req, rawBody) {
  if (TOKEN !== null && !safeEqual(req.headers.authorization || '', `Bearer ${TOKEN}`)) {
    return receipt('failed', 'UNAUTHORIZED', 'bad bearer token');
  }
  const ts = req.headers['x-airlock-timestamp'] || '';
  const sig = req.headers['x-airlock-signature'] || '';
  if (!/^[0-9]+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > MAX_SKEW_SECONDS) {
    return receipt('failed', 'STALE_SIGNATURE', 'missing or old X-Airlock-Timestamp');
  }
  const mac = crypto.createHmac('sha256', SIGNING_SECRET)
    .update(`${ts}.`).update(rawBody).digest('hex');
  if (!safeEqual(`v1=${mac}`, sig)) {
    return receipt('failed', 'BAD_SIGNATURE', 'the signature does not match the body');
  }
  return null;
}

function apply(job) {
  const cs = job.change_set;
  const key = job.idempotency_key;
  if (!Object.hasOwn(TABLES, cs.target.table)) {
    return receipt('failed', 'TABLE_NOT_HANDLED', `this handler does not change ${cs.target.table}`);
  }
  const spec = TABLES[cs.target.table];
  const patch = cs.patch;
  if (Object.keys(patch).some((c) => !spec.columns.has(c))) {
    return receipt('failed', 'COLUMN_NOT_ALLOWED', 'patch has columns this handler may not change');
  }
  const tenant = cs.scope.tenant_id;
  const guard = cs.guards.tenant;
  if (!guard || guard.column !== spec.tenant || guard.value !== tenant) {
    return receipt('failed', 'TENANT_GUARD_MISSING', "the payload's tenant guard does not match this table");
  }
  const expected = cs.guards.expected_version;
  if (!expected || expected.column !== spec.version) {
    return receipt('failed', 'VERSION_GUARD_MISSING', 'the payload has no version guard for this table');
  }

  const done = processedKeys.get(key);
  if (done) {
    return receipt('already_applied', null, 'applied earlier with this idempotency key',
      { previous_version: done.previous_version, new_version: done.new_version });
  }
  // Look the row up by primary key AND tenant: another tenant's row is "not found".
  const row = rows.get(`${cs.target.table}/${tenant}/${cs.target.primary_key.value}`);
  if (!row || row[spec.tenant] !== tenant) {
    return receipt('conflict', 'ROW_NOT_FOUND', 'no such row for this tenant');
  }
  const version = row[spec.version];
  if (version !== expected.value) {
    return receipt('conflict', 'VERSION_CONFLICT', 'the row changed since the proposal',
      { previous_version: expected.value, new_version: version });
  }
  for (const col of Object.keys(patch)) {
    if (Object.hasOwn(cs.before, col) && (row[col] ?? null) !== cs.before[col]) {
      return receipt('conflict', 'STALE_ROW', `${col} changed since the proposal`);
    }
  }
  if (job.dry_run) { // a dry run changes nothing, so never "applied"
    return receipt('failed', 'DRY_RUN_OK', 'dry run: every check passed; nothing was changed');
  }
  const newVersion = nextVersion(version);
  Object.assign(row, patch, { [spec.version]: newVersion });
  const result = receipt('applied', null, null,
    { rows_affected: 1, previous_version: version, new_version: newVersion });
  processedKeys.set(key, result); // same "transaction" as the change
  return result;
}

// Keep the raw body: the signature covers exactly these bytes.
fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => done(null, body));

fastify.route({
  method: ['POST', 'PUT', 'PATCH'],
  url: '/airlock/writeback',
  handler: async (req, reply) => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const bad = verify(req, raw);
    if (bad) return reply.code(401).send(bad);
    let job;
    try {
      job = JSON.parse(raw.toString('utf8'));
    } catch {
      return reply.code(400).send(receipt('failed', 'BAD_PAYLOAD', 'the body is not JSON'));
    }
    if (job.schema_version !== 'synapsor.handler-writeback.v1') {
      return reply.code(400).send(receipt('failed', 'UNSUPPORTED_PAYLOAD', 'unknown schema_version'));
    }
    if (req.headers['idempotency-key'] !== job.idempotency_key) {
      return reply.code(400).send(receipt('failed', 'BAD_PAYLOAD', 'Idempotency-Key header and body differ'));
    }
    let result;
    try {
      result = apply(job);
    } catch (e) { // never guess: report failed, nothing changed
      req.log.error(e);
      return reply.code(500).send(receipt('failed', 'HANDLER_ERROR', e.name));
    }
    return reply.code(result.status === 'conflict' ? 409 : 200).send(result);
  },
});

fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT || 8787) }).catch((e) => {
  fastify.log.error(e);
  process.exit(1);
});
