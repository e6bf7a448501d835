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
// The payload's `operation` says what to do: {"kind": "update" | "insert" |
// "delete", "cardinality": "single" | "set"}; a set (change_set.set) is
// changed whole or not at all.
//
// The in-memory maps below stand in for the application's database. With a
// real database, do the idempotency check, the tenant and version re-check,
// the change and the insert of the processed key in ONE transaction
// (SELECT ... FOR UPDATE). Here it is atomic because nothing awaits between
// the checks and the writes.
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

// The tables this handler may change, and how: its OWN allow-list. The
// payload is signed off by a person, but the handler still refuses anything
// outside what it was written for: another table, column or kind of change.
const TABLES = {
  invoices: {
    primaryKey: 'id',
    tenant: 'tenant_id',
    version: 'updated_at', // conflict-guard column
    columns: new Set(['late_fee_cents', 'waiver_reason']), // may be patched
    operations: new Set(['update/single']),
  },
  credit_notes: { // one new row per approved proposal
    primaryKey: 'id',
    tenant: 'tenant_id',
    columns: new Set(['customer_id', 'amount_cents']), // may be given by the patch
    identity: new Set(['tenant_id', 'request_id']), // the table's UNIQUE key
    applyTime: new Set(['created_at']), // may be set to the time of the change
    operations: new Set(['insert/single']),
  },
  tickets: { // a reviewed set of tickets, closed together
    primaryKey: 'id',
    tenant: 'tenant_id',
    version: 'version', // an integer: a set advances it by one
    columns: new Set(['status', 'close_reason']),
    operations: new Set(['update/single', 'update/set']),
  },
  sessions: { // removed one at a time or as a reviewed set
    primaryKey: 'id',
    tenant: 'tenant_id',
    version: 'version',
    columns: new Set(),
    operations: new Set(['delete/single', 'delete/set']),
  },
};
// Optional per table: principal: '<column>' when rows belong to a principal
// (the payload then carries guards.principal, and every lookup checks it).
const MAX_SET_MEMBERS = 100; // the most a set may hold (Airlock's own cap)

// Stand-in data store: rows by "<table>/<tenant>/<id>"; the identities of
// inserted rows (what a UNIQUE constraint enforces in a real database); and
// processed idempotency keys -> the receipt of the apply that used them.
const rows = new Map([
  ['invoices/acme/INV-3001', {
    id: 'INV-3001', tenant_id: 'acme', late_fee_cents: 5500,
    waiver_reason: null, updated_at: '2026-06-20T14:31:08Z',
  }],
]);
const identities = new Set();
const processedKeys = new Map();
let nextId = 1;

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

// Look a row up by primary key AND tenant (AND principal): another
// tenant's (or principal's) row is "not found".
function lookup(spec, cs, key) {
  const row = rows.get(`${cs.target.table}/${cs.scope.tenant_id}/${key}`);
  if (!row || row[spec.tenant] !== cs.scope.tenant_id) return null;
  if (spec.principal && row[spec.principal] !== cs.guards.principal.value) return null;
  return row;
}

// The checks every kind shares: null if they pass, else a failed receipt.
function checkGuards(spec, cs) {
  if (Object.keys(cs.patch).some((c) => !spec.columns.has(c))) {
    return receipt('failed', 'COLUMN_NOT_ALLOWED', 'patch has columns this handler may not change');
  }
  const guard = cs.guards.tenant;
  if (!guard || guard.column !== spec.tenant || guard.value !== cs.scope.tenant_id) {
    return receipt('failed', 'TENANT_GUARD_MISSING', "the payload's tenant guard does not match this table");
  }
  const principal = cs.guards.principal;
  if (spec.principal && (!principal || principal.column !== spec.principal
      || principal.value !== cs.principal.id)) {
    return receipt('failed', 'PRINCIPAL_GUARD_MISSING', "the payload's principal guard does not match this table");
  }
  if (!spec.principal && principal) {
    return receipt('failed', 'PRINCIPAL_GUARD_NOT_HANDLED', 'this handler does not scope this table by principal');
  }
  if ((cs.apply_time || []).some((c) => !(spec.applyTime || new Set()).has(c))) {
    return receipt('failed', 'COLUMN_NOT_ALLOWED', 'apply_time names columns this handler may not set');
  }
  return null;
}

// Each kind checks everything first and returns either a receipt that is
// not "applied" (nothing changed) or { result, commit }: commit() makes the
// change, and runs only if the apply goes ahead (not for a dry run).

function updateRow(job, spec, cs) {
  const expected = cs.guards.expected_version;
  if (!expected || expected.column !== spec.version) {
    return receipt('failed', 'VERSION_GUARD_MISSING', 'the payload has no version guard for this table');
  }
  const row = lookup(spec, cs, cs.target.primary_key.value);
  if (!row) return receipt('conflict', 'ROW_NOT_FOUND', 'no such row for this tenant');
  const version = row[spec.version];
  if (version !== expected.value) {
    return receipt('conflict', 'VERSION_CONFLICT', 'the row changed since the proposal',
      { previous_version: expected.value, new_version: version });
  }
  for (const col of Object.keys(cs.patch)) {
    if (Object.hasOwn(cs.before, col) && (row[col] ?? null) !== cs.before[col]) {
      return receipt('conflict', 'STALE_ROW', `${col} changed since the proposal`);
    }
  }
  const newVersion = nextVersion(version);
  const now = new Date().toISOString();
  return {
    result: receipt('applied', null, null,
      { rows_affected: 1, previous_version: version, new_version: newVersion }),
    commit: () => {
      Object.assign(row, cs.patch, { [spec.version]: newVersion });
      for (const c of cs.apply_time || []) row[c] = now;
    },
  };
}

function insertRow(job, spec, cs) {
  const identity = cs.guards.deduplication || [];
  if (identity.length !== spec.identity.size || identity.some((d) => !spec.identity.has(d.column))) {
    return receipt('failed', 'DEDUP_GUARD_MISSING', "the payload's de-duplication identity is not this table's unique key");
  }
  const row = { ...cs.patch };
  const fixed = [[spec.tenant, cs.scope.tenant_id]];
  if (spec.principal) fixed.push([spec.principal, cs.guards.principal.value]);
  for (const d of identity) {
    if (d.source === 'proposal_id' && d.value !== job.proposal_id) {
      return receipt('failed', 'DEDUP_GUARD_MISSING', "the identity does not hold this proposal's id");
    }
    if (d.source === 'trusted_tenant' && d.value !== cs.scope.tenant_id) {
      return receipt('failed', 'DEDUP_GUARD_MISSING', 'the identity does not hold this tenant');
    }
    fixed.push([d.column, d.value]);
  }
  const now = new Date().toISOString();
  for (const c of cs.apply_time || []) fixed.push([c, now]);
  for (const [col, value] of fixed) {
    if (Object.hasOwn(row, col) && row[col] !== value) {
      return receipt('failed', 'COLUMN_NOT_ALLOWED', `${col} is given twice with different values`);
    }
    row[col] = value;
  }
  const ident = `${cs.target.table}|${JSON.stringify([...spec.identity].sort().map((c) => row[c]))}`;
  if (identities.has(ident)) {
    return receipt('conflict', 'DEDUP_CONFLICT', 'a row with this identity already exists');
  }
  return {
    result: receipt('applied', null, null, { rows_affected: 1 }),
    commit: () => {
      row[spec.primaryKey] = nextId++;
      rows.set(`${cs.target.table}/${cs.scope.tenant_id}/${row[spec.primaryKey]}`, row);
      identities.add(ident);
    },
  };
}

function deleteRow(job, spec, cs) {
  const expected = cs.guards.expected_version;
  if (!expected || expected.column !== spec.version) {
    return receipt('failed', 'VERSION_GUARD_MISSING', 'the payload has no version guard for this table');
  }
  const key = cs.target.primary_key.value;
  const row = lookup(spec, cs, key);
  if (!row) return receipt('conflict', 'ROW_NOT_FOUND', 'no such row for this tenant');
  const version = row[spec.version];
  if (version !== expected.value) {
    return receipt('conflict', 'VERSION_CONFLICT', 'the row changed since the proposal',
      { previous_version: expected.value, new_version: version });
  }
  // What the reviewer saw being removed must still be what is removed.
  for (const [col, value] of Object.entries(cs.before)) {
    if ((row[col] ?? null) !== value) {
      return receipt('conflict', 'STALE_ROW', `${col} changed since the proposal`);
    }
  }
  return {
    result: receipt('applied', null, null, { rows_affected: 1, previous_version: version }),
    commit: () => rows.delete(`${cs.target.table}/${cs.scope.tenant_id}/${key}`),
  };
}

// A bounded set, all or nothing: check every member in the given
// (primary-key) order — key, tenant, exact version and every value it was
// frozen with — and only then change each. With a real database: one
// transaction, SELECT ... FOR UPDATE member by member in this order.
function changeMembers(job, spec, cs) {
  const kind = job.operation.kind;
  const set = cs.set;
  if (!set || !Array.isArray(set.members)) return receipt('failed', 'SET_INVALID', 'the payload has no set');
  const members = set.members;
  const n = members.length;
  if (!(n >= 1 && n === set.row_count && n <= set.max_rows && set.max_rows <= MAX_SET_MEMBERS)) {
    return receipt('failed', 'SET_INVALID', "the set's count is not within its cap");
  }
  if (cs.target.primary_key.column !== spec.primaryKey) {
    return receipt('failed', 'SET_INVALID', 'the set is not keyed by this table\'s primary key');
  }
  const keys = members.map((m) => m.primary_key);
  if (new Set(keys.map((k) => JSON.stringify(k))).size !== n
      || keys.some((k) => typeof k !== 'string' && !Number.isInteger(k))) {
    return receipt('failed', 'SET_INVALID', "the set's keys are not distinct scalars");
  }
  const applyTime = cs.apply_time || [];
  // The columns an UPDATE writes from each member's `after`.
  const written = kind === 'update' ? cs.guards.allowed_columns.filter((c) => !applyTime.includes(c)) : [];
  if (written.some((c) => !spec.columns.has(c))) {
    return receipt('failed', 'COLUMN_NOT_ALLOWED', 'the set changes columns this handler may not change');
  }
  const found = [];
  for (const m of members) {
    if (!Object.hasOwn(m.before, spec.version)) {
      return receipt('failed', 'SET_INVALID', 'a member has no version');
    }
    if (kind === 'update' && !Number.isInteger(m.before[spec.version])) {
      return receipt('failed', 'SET_INVALID', 'a set update advances an integer version by one');
    }
    const changed = Object.keys(m.after).filter((c) => m.after[c] !== m.before[c]);
    if (kind === 'update' && changed.some((c) => !written.includes(c))) {
      return receipt('failed', 'SET_INVALID', "a member's after differs from its before outside the patch");
    }
    if (kind === 'delete' && Object.keys(m.after).length > 0) {
      return receipt('failed', 'SET_INVALID', 'a deleted member has an after');
    }
    const row = lookup(spec, cs, m.primary_key);
    if (!row) {
      return receipt('conflict', 'SET_MEMBER_MISSING',
        `member ${m.primary_key} is gone for this tenant; nothing was changed`);
    }
    if (Object.entries(m.before).some(([c, v]) => (row[c] ?? null) !== v)) {
      return receipt('conflict', 'SET_DRIFT_CONFLICT',
        `member ${m.primary_key} changed since the proposal; nothing was changed`);
    }
    found.push([m, row]);
  }
  const now = new Date().toISOString();
  return {
    result: receipt('applied', null, null, { rows_affected: n }),
    commit: () => {
      for (const [m, row] of found) {
        if (kind === 'delete') {
          rows.delete(`${cs.target.table}/${cs.scope.tenant_id}/${m.primary_key}`);
          continue;
        }
        for (const c of written) if (Object.hasOwn(m.after, c)) row[c] = m.after[c];
        for (const c of applyTime) row[c] = now;
        row[spec.version] = m.before[spec.version] + 1;
      }
    },
  };
}

const OPERATIONS = {
  'update/single': updateRow,
  'insert/single': insertRow,
  'delete/single': deleteRow,
  'update/set': changeMembers,
  'delete/set': changeMembers,
};

function apply(job) {
  const cs = job.change_set;
  const key = job.idempotency_key;
  // Payloads from before `operation` existed were always one-row updates.
  job.operation = job.operation || { kind: 'update', cardinality: 'single' };
  const operation = `${job.operation.kind}/${job.operation.cardinality}`;
  if (!Object.hasOwn(TABLES, cs.target.table)) {
    return receipt('failed', 'TABLE_NOT_HANDLED', `this handler does not change ${cs.target.table}`);
  }
  const spec = TABLES[cs.target.table];
  if (!spec.operations.has(operation) || !Object.hasOwn(OPERATIONS, operation)) {
    return receipt('failed', 'OPERATION_NOT_HANDLED', `this handler does not ${operation} ${cs.target.table}`);
  }
  const refused = checkGuards(spec, cs);
  if (refused) return refused;

  const done = processedKeys.get(key);
  if (done) {
    return receipt('already_applied', null, 'applied earlier with this idempotency key',
      { previous_version: done.previous_version, new_version: done.new_version });
  }
  const planned = OPERATIONS[operation](job, spec, cs);
  if (!planned.commit) return planned; // conflict or failed: nothing changed
  if (job.dry_run) { // a dry run changes nothing, so never "applied"
    return receipt('failed', 'DRY_RUN_OK', 'dry run: every check passed; nothing was changed');
  }
  planned.commit();
  processedKeys.set(key, planned.result); // same "transaction" as the change
  return planned.result;
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
