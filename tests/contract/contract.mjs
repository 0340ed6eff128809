// Contract test: the official @clerk/backend SDK must parse every clerk-emulator response
// (docs/clerk-protocol.md §3, §5, §6). Run by run.sh, which provides:
//   CLERK_SDK_DIR       directory whose node_modules holds @clerk/backend
//   CLERK_SDK_VERSION   the pinned version (checked)
//   EMULATOR_URL        http://127.0.0.1:PORT
//   EMULATOR_MACHINES   two lines {"machine":{"id","name","secret_key"}}, scoped to each other
// Prints one line per check and "N passed, M failed"; exits 1 on any failure.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const sdkDir = process.env.CLERK_SDK_DIR;
const require = createRequire(path.join(sdkDir, 'package.json'));
const { createClerkClient, verifyToken } = require('@clerk/backend');
const sdkPackage = JSON.parse(
  fs.readFileSync(path.join(sdkDir, 'node_modules/@clerk/backend/package.json'), 'utf8'));

const apiUrl = process.env.EMULATOR_URL;
const [A, B] = process.env.EMULATOR_MACHINES.trim().split('\n').map((l) => JSON.parse(l).machine);
const SK = 'sk_test_emulator';
const telemetry = { disabled: true };

const client = (opts) => createClerkClient({ apiUrl, telemetry, ...opts });
const clientA = client({ secretKey: SK, machineSecretKey: A.secret_key }); // issuer
const clientB = client({ secretKey: SK, machineSecretKey: B.secret_key }); // receiver
const clientSk = client({ secretKey: SK }); // instance key only

// ---------------------------------------------------------------------------------------------
// Helpers

async function knob(method, route, body) {
  const res = await fetch(`${apiUrl}/__emulator/${route}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `knob ${route}: ${res.status} ${text}`);
  return res.headers.get('content-type') === 'application/json' ? JSON.parse(text) : text;
}

const M2M_FIELDS = ['id', 'subject', 'scopes', 'claims', 'revoked', 'revocationReason', 'expired',
  'expiration', 'createdAt', 'updatedAt'];

/// An SDK M2MToken parsed from a BAPI body: right class, no undefined field, right types.
function assertM2MToken(t, { withToken }) {
  assert.match(t.constructor.name, /M2MToken$/, 'class M2MToken');
  for (const f of M2M_FIELDS) {
    assert.notEqual(t[f], undefined, `field ${f} is undefined`);
  }
  assert.match(t.id, /^mt_[0-9a-f]{32}$/);
  assert.match(t.subject, /^mch_\w{27}$/);
  assert.ok(Array.isArray(t.scopes));
  assert.equal(typeof t.revoked, 'boolean');
  assert.equal(typeof t.expired, 'boolean');
  assert.ok(t.expiration === null || Number.isInteger(t.expiration));
  assert.ok(Number.isInteger(t.createdAt) && t.createdAt > 1e12, 'createdAt in ms');
  assert.ok(Number.isInteger(t.updatedAt) && t.updatedAt > 1e12, 'updatedAt in ms');
  if (withToken) {
    assert.equal(typeof t.token, 'string');
  } else {
    assert.equal(t.token, undefined, 'token must only be in the create response');
  }
}

/// The promise rejects with a ClerkAPIResponseError of this status (and code, when given).
async function assertApiError(promise, status, code) {
  const err = await promise.then(
    () => assert.fail(`expected HTTP ${status}, got success`),
    (e) => e);
  assert.equal(err.status, status, `status: ${err.message}`);
  assert.ok(Array.isArray(err.errors) && err.errors.length === 1, 'errors[] parsed');
  if (code) {
    assert.equal(err.errors[0].code, code);
  }
  assert.equal(typeof err.errors[0].message, 'string');
  assert.equal(typeof err.errors[0].longMessage, 'string');
  assert.match(err.clerkTraceId ?? '', /^[0-9a-f]{32}$/, 'clerk_trace_id');
  return err;
}

function bearerRequest(token) {
  return new Request('http://service.local/api', { headers: { authorization: `Bearer ${token}` } });
}

async function authenticate(c, token) {
  return c.authenticateRequest(bearerRequest(token), { acceptsToken: 'm2m_token' });
}

function decodeJwtPart(token, i) {
  return JSON.parse(Buffer.from(token.split('.')[i], 'base64url').toString('utf8'));
}

// ---------------------------------------------------------------------------------------------
// Checks (in order: later checks use tokens made by earlier ones)

const checks = [];
const check = (name, fn) => checks.push({ name, fn });
const ctx = {};

check('SDK is the pinned version', () => {
  assert.equal(sdkPackage.version, process.env.CLERK_SDK_VERSION);
});

check('createToken (opaque) with machine key -> 201 M2MToken with token', async () => {
  const before = Date.now();
  const t = await clientA.m2m.createToken({
    secondsUntilExpiration: 3600, claims: { role: 'reader', nested: { innerKey: 1 } } });
  assertM2MToken(t, { withToken: true });
  assert.match(t.token, /^mt_[A-Za-z0-9]{32}$/);
  assert.notEqual(t.token, t.id);
  assert.equal(t.subject, A.id);
  assert.deepEqual(t.scopes, [B.id]);
  assert.deepEqual(t.claims, { role: 'reader', nested: { innerKey: 1 } });
  assert.equal(t.revoked, false);
  assert.equal(t.revocationReason, null);
  assert.equal(t.expired, false);
  assert.ok(Math.abs(t.expiration - (before + 3600e3)) < 60e3, 'expiration ~ now + 1h in ms');
  ctx.opaque = t;
});

check('createToken defaults -> never expires, claims null', async () => {
  const t = await clientA.m2m.createToken();
  assertM2MToken(t, { withToken: true });
  assert.equal(t.expiration, null);
  assert.equal(t.claims, null);
  assert.equal(t.expired, false);
});

check('createToken with instance sk_ -> 401 machine_secret_key_invalid', async () => {
  await assertApiError(clientSk.m2m.createToken(), 401, 'machine_secret_key_invalid');
});

check('verify (opaque) with the receiving machine key -> M2MToken without token', async () => {
  const v = await clientB.m2m.verify({ token: ctx.opaque.token });
  assertM2MToken(v, { withToken: false });
  for (const f of ['id', 'subject', 'scopes', 'claims', 'expiration', 'createdAt']) {
    assert.deepEqual(v[f], ctx.opaque[f], f);
  }
});

check('verify (opaque) with instance sk_ -> any token', async () => {
  const v = await clientSk.m2m.verify({ token: ctx.opaque.token });
  assertM2MToken(v, { withToken: false });
  assert.equal(v.id, ctx.opaque.id);
});

check('verify with a machine key outside the token scopes -> 404', async () => {
  await assertApiError(clientA.m2m.verify({ token: ctx.opaque.token }), 404, 'resource_not_found');
});

check('verify unknown token -> 404 resource_not_found', async () => {
  await assertApiError(clientB.m2m.verify({ token: 'mt_unknown000000000000000000000000' }), 404,
    'resource_not_found');
});

check('verify with an unknown machine key -> 401 machine_secret_key_invalid', async () => {
  await assertApiError(
    clientB.m2m.verify({ token: ctx.opaque.token, machineSecretKey: 'ak_bogus' }), 401,
    'machine_secret_key_invalid');
});

check('authenticateRequest(m2m_token, opaque) -> signed-in with machineId and scopes', async () => {
  const state = await authenticate(clientB, ctx.opaque.token);
  assert.equal(state.status, 'signed-in', state.message);
  assert.equal(state.isAuthenticated, true);
  assert.equal(state.tokenType, 'm2m_token');
  const auth = state.toAuth();
  assert.equal(auth.isAuthenticated, true);
  assert.equal(auth.tokenType, 'm2m_token');
  assert.equal(auth.id, ctx.opaque.id);
  assert.equal(auth.subject, A.id);
  assert.equal(auth.machineId, A.id);
  assert.deepEqual(auth.scopes, [B.id]);
  assert.deepEqual(auth.claims, { role: 'reader', nested: { innerKey: 1 } });
});

check('authenticateRequest with a wrong machine key -> secret-key-invalid', async () => {
  const state = await authenticate(client({ machineSecretKey: 'ak_wrong' }), ctx.opaque.token);
  assert.equal(state.status, 'signed-out');
  assert.equal(state.reason, 'secret-key-invalid');
  assert.equal(state.toAuth().isAuthenticated, false);
});

check('list -> {data: M2MToken[], totalCount}', async () => {
  const page = await clientA.m2m.list({ subject: A.id });
  assert.equal(typeof page.totalCount, 'number');
  assert.equal(page.totalCount, 2);
  assert.equal(page.data.length, 2);
  for (const t of page.data) {
    assertM2MToken(t, { withToken: false });
  }
  assert.ok(page.data.some((t) => t.id === ctx.opaque.id));
  const limited = await clientSk.m2m.list({ subject: A.id, limit: 1, offset: 1 });
  assert.equal(limited.totalCount, 2);
  assert.equal(limited.data.length, 1);
});

check('revokeToken -> revoked M2MToken; verify then fails with 404', async () => {
  const r = await clientA.m2m.revokeToken({ m2mTokenId: ctx.opaque.id, revocationReason: 'compromised' });
  assertM2MToken(r, { withToken: false });
  assert.equal(r.revoked, true);
  assert.equal(r.revocationReason, 'compromised');
  await assertApiError(clientB.m2m.verify({ token: ctx.opaque.token }), 404, 'token_revoked');
  const state = await authenticate(clientB, ctx.opaque.token);
  assert.equal(state.status, 'signed-out');
  assert.equal(state.reason, 'token-invalid');
  assert.equal(state.toAuth().isAuthenticated, false);
});

check('list hides revoked tokens unless revoked=true', async () => {
  const live = await clientA.m2m.list({ subject: A.id });
  assert.ok(!live.data.some((t) => t.id === ctx.opaque.id));
  const all = await clientA.m2m.list({ subject: A.id, revoked: true });
  assert.ok(all.data.some((t) => t.id === ctx.opaque.id && t.revoked));
});

check('knob revoked_status 200 -> verify returns revoked: true', async () => {
  await knob('POST', 'config', { revoked_status: 200 });
  try {
    const v = await clientSk.m2m.verify({ token: ctx.opaque.token });
    assertM2MToken(v, { withToken: false });
    assert.equal(v.revoked, true);
  } finally {
    await knob('POST', 'config', { revoked_status: 404 });
  }
});

check('expired opaque token (knob) -> 404 token_expired', async () => {
  const t = await knob('POST', 'tokens', { machine_id: A.id, seconds_until_expiration: -10 });
  await assertApiError(clientB.m2m.verify({ token: t.token }), 404, 'token_expired');
});

check('createToken (jwt) -> RS256 JWT with Clerk M2M header and claims', async () => {
  const j = await clientA.m2m.createToken({
    tokenFormat: 'jwt', secondsUntilExpiration: 600, claims: { custom: 'hello' } });
  assertM2MToken(j, { withToken: true });
  assert.match(j.token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const header = decodeJwtPart(j.token, 0);
  const payload = decodeJwtPart(j.token, 1);
  assert.equal(header.alg, 'RS256');
  assert.equal(header.typ, 'JWT');
  assert.equal(header.cat, 'cl_B7d4PD333AAA');
  assert.match(header.kid, /^ins_\w+$/);
  assert.equal(payload.sub, A.id);
  assert.equal(payload.jti, j.id);
  assert.deepEqual(payload.aud, [B.id]);
  assert.equal(payload.scopes, B.id);
  assert.equal(payload.custom, 'hello');
  assert.equal(payload.exp * 1000, j.expiration);
  ctx.jwt = j;
  ctx.kid = header.kid;
});

check('verify (jwt) locally with JWKS fetched by secretKey', async () => {
  await knob('POST', 'reset_stats');
  const v = await clientB.m2m.verify({ token: ctx.jwt.token });
  assert.match(v.constructor.name, /M2MToken$/);
  assert.equal(v.id, ctx.jwt.id);
  assert.equal(v.subject, A.id);
  assert.deepEqual(v.scopes, [B.id]);
  assert.equal(v.claims.custom, 'hello');
  assert.equal(v.expiration, ctx.jwt.expiration);
  assert.equal(v.expired, false);
  const stats = await knob('GET', 'stats');
  assert.equal(stats.verify_calls, 0, 'JWT verification is local');
  assert.ok(stats.jwks_calls >= 1, 'JWKS fetched from /v1/jwks');
});

check('authenticateRequest(m2m_token, jwt) -> signed-in', async () => {
  const state = await authenticate(clientB, ctx.jwt.token);
  assert.equal(state.status, 'signed-in', state.message);
  const auth = state.toAuth();
  assert.equal(auth.machineId, A.id);
  assert.equal(auth.id, ctx.jwt.id);
  assert.deepEqual(auth.scopes, [B.id]);
});

check('verify (jwt) with jwtKey PEM from the knob, no network', async () => {
  const pem = await knob('GET', 'jwt_public_key');
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
  await knob('POST', 'reset_stats');
  const v = await client({ jwtKey: pem, machineSecretKey: B.secret_key }).m2m.verify({ token: ctx.jwt.token });
  assert.equal(v.subject, A.id);
  assert.equal((await knob('GET', 'stats')).total_calls, 0);
});

check('emulator verifies JWTs over BAPI too (exact Content-Type)', async () => {
  const res = await fetch(`${apiUrl}/m2m_tokens/verify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${B.secret_key}`, 'clerk-api-version': '2026-05-12',
      'content-type': 'application/json' },
    body: JSON.stringify({ token: ctx.jwt.token }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  const body = await res.json();
  assert.equal(body.object, 'machine_to_machine_token');
  assert.equal(body.id, ctx.jwt.id);
});

check('rotate_jwks -> new kid verifies (JWKS refetched), old JWT still verifies', async () => {
  const { kid } = await knob('POST', 'rotate_jwks');
  assert.notEqual(kid, ctx.kid);
  const j2 = await clientA.m2m.createToken({ tokenFormat: 'jwt' });
  assert.equal(decodeJwtPart(j2.token, 0).kid, kid);
  assert.equal((await clientB.m2m.verify({ token: j2.token })).id, j2.id);
  assert.equal((await clientB.m2m.verify({ token: ctx.jwt.token })).id, ctx.jwt.id);
  const jwks = await clientSk.jwks.getJwks();
  assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [ctx.kid, kid].sort());
});

check('expired jwt (knob) -> SDK rejects', async () => {
  const t = await knob('POST', 'tokens',
    { machine_id: A.id, token_format: 'jwt', expiration_ms: Date.now() - 60_000 });
  const state = await authenticate(clientB, t.token);
  assert.equal(state.status, 'signed-out');
  assert.equal(state.reason, 'token-verification-failed');
});

check('JWKS with a wrong secret key -> secret-key error from clerk_key_invalid', async () => {
  const j = await clientA.m2m.createToken({ tokenFormat: 'jwt' });
  const err = await client({ secretKey: 'sk_test_wrong' }).m2m.verify({ token: j.token })
    .then(() => assert.fail('expected failure'), (e) => e);
  assert.equal(err.code, 'token-verification-failed');
  assert.doesNotMatch(err.message, /with code=401/, 'the SDK parsed the clerk_key_invalid body');
});

check('fail 429 + Retry-After -> ClerkAPIResponseError.retryAfter, then recovers', async () => {
  const t = await clientA.m2m.createToken();
  await knob('POST', 'fail', { count: 1, status: 429, retry_after: 2, endpoint: 'verify' });
  const err = await assertApiError(clientB.m2m.verify({ token: t.token }), 429);
  assert.equal(err.retryAfter, 2);
  assert.equal((await clientB.m2m.verify({ token: t.token })).id, t.id);
  ctx.live = t;
});

check('fail 503 -> authenticateRequest unexpected-error', async () => {
  await knob('POST', 'fail', { count: 1, status: 503 });
  const state = await authenticate(clientB, ctx.live.token);
  assert.equal(state.status, 'signed-out');
  assert.equal(state.reason, 'unexpected-error');
});

check('fail garbage and close -> SDK errors, then recovers', async () => {
  for (const mode of ['garbage', 'close']) {
    await knob('POST', 'fail', { count: 1, mode });
    await clientB.m2m.verify({ token: ctx.live.token })
      .then(() => assert.fail(`${mode}: expected failure`), () => {});
  }
  assert.equal((await clientB.m2m.verify({ token: ctx.live.token })).id, ctx.live.id);
});

check('stats count verify calls; latency knob delays answers', async () => {
  await knob('POST', 'reset_stats');
  await knob('POST', 'latency', { ms: 150 });
  try {
    const start = performance.now();
    await clientB.m2m.verify({ token: ctx.live.token });
    assert.ok(performance.now() - start >= 140, 'latency applied');
  } finally {
    await knob('POST', 'latency', { ms: 0 });
  }
  await clientB.m2m.verify({ token: ctx.live.token });
  const stats = await knob('GET', 'stats');
  assert.equal(stats.verify_calls, 2);
  assert.equal(stats.total_calls, 2);
});

check('apiKeys.verify -> APIKey with subject, scopes, claims; unknown -> 404', async () => {
  const user = 'user_2xhFjEI5X2qWRvtV13BzSj8H6Dk';
  const made = await knob('POST', 'api_keys', { subject: user, scopes: ['read'], claims: { k: 'v' } });
  const key = await clientSk.apiKeys.verify(made.secret);
  assert.match(key.constructor.name, /APIKey$/, 'class APIKey');
  assert.equal(key.id, made.id);
  assert.equal(key.subject, user);
  assert.deepEqual(key.scopes, ['read']);
  assert.deepEqual(key.claims, { k: 'v' });
  assert.equal(key.revoked, false);
  const state = await clientSk.authenticateRequest(bearerRequest(made.secret),
    { acceptsToken: 'api_key' });
  assert.equal(state.status, 'signed-in', state.message);
  assert.equal(state.toAuth().userId, user);
  await assertApiError(clientSk.apiKeys.verify('ak_' + '0'.repeat(32)), 404, 'resource_not_found');
});

check('idPOAuthAccessToken.verify -> token with subject, scopes, aud; inactive -> {active:false}',
  async () => {
    const user = 'user_2xhFjEI5X2qWRvtV13BzSj8H6Dk';
    const made = await knob('POST', 'oauth_tokens', { subject: user, scopes: ['profile'], aud: ['svc'] });
    const t = await clientSk.idPOAuthAccessToken.verify(made.token, { audience: 'svc' });
    assert.equal(t.id, made.id);
    assert.equal(t.subject, user);
    assert.deepEqual(t.scopes, ['profile']);
    await knob('POST', 'oauth_tokens/deactivate', { token: made.token });
    const gone = await clientSk.idPOAuthAccessToken.verify(made.token);
    assert.equal(gone.subject, undefined, 'an inactive token has no identity in the SDK');
  });

// A publishable key for authenticateRequest's non-M2M flows: pk_test_ + base64("<frontend api>$").
const PK = 'pk_test_' + Buffer.from('clerk.emulated.example$').toString('base64');

check('session token (knob) -> verifyToken: v2 claims, azp checked, M2M category refused', async () => {
  const user = 'user_2xhFjEI5X2qWRvtV13BzSj8H6Dk';
  const pem = await knob('GET', 'jwt_public_key');
  const made = await knob('POST', 'session_tokens', {
    user_id: user, azp: 'https://app.example.com', org: { id: 'org_1', slug: 'acme', role: 'admin' },
  });
  assert.equal(decodeJwtPart(made.token, 0).cat, 'cl_B7d4PD111AAA');
  const payload = await verifyToken(made.token,
    { jwtKey: pem, authorizedParties: ['https://app.example.com'] });
  assert.equal(payload.sub, user);
  assert.equal(payload.sid, made.session_id);
  assert.equal(payload.v, 2);
  assert.deepEqual(payload.o, { id: 'org_1', slg: 'acme', rol: 'admin' });
  assert.equal(payload.sts, 'active');
  await assert.rejects(verifyToken(made.token, { jwtKey: pem, authorizedParties: ['https://x.example'] }),
    /azp/);
  const v1 = await knob('POST', 'session_tokens', { user_id: user, version: 1, org: { id: 'org_2' } });
  const p1 = await verifyToken(v1.token, { secretKey: SK, apiUrl });  // JWKS over BAPI
  assert.equal(p1.org_id, 'org_2');
  assert.equal(p1.v, undefined);
  // An M2M JWT is not a session token for the SDK either.
  const m2m = await clientA.m2m.createToken({ tokenFormat: 'jwt' });
  await assert.rejects(verifyToken(m2m.token, { jwtKey: pem }), /category/);
});

check('session token via authenticateRequest(session_token) -> signed-in with orgId; pending -> signed-out',
  async () => {
    const user = 'user_2xhFjEI5X2qWRvtV13BzSj8H6Dk';
    const c = client({ secretKey: SK, publishableKey: PK });
    const made = await knob('POST', 'session_tokens', { user_id: user, org: { id: 'org_1', role: 'admin' } });
    const state = await c.authenticateRequest(bearerRequest(made.token), { acceptsToken: 'session_token' });
    assert.equal(state.status, 'signed-in', state.message);
    const auth = state.toAuth();
    assert.equal(auth.userId, user);
    assert.equal(auth.sessionId, made.session_id);
    assert.equal(auth.orgId, 'org_1');
    assert.equal(auth.orgRole, 'org:admin');
    const pending = await knob('POST', 'session_tokens', { user_id: user, status: 'pending' });
    const ps = await c.authenticateRequest(bearerRequest(pending.token), { acceptsToken: 'session_token' });
    assert.equal(ps.toAuth().userId, null, 'a pending session is signed out by default');
  });

check('OAuth access token in JWT format (knob) -> authenticateRequest(oauth_token) verifies it locally',
  async () => {
    const user = 'user_2xhFjEI5X2qWRvtV13BzSj8H6Dk';
    const made = await knob('POST', 'oauth_tokens',
      { format: 'jwt', subject: user, scopes: ['read', 'write'], aud: ['svc'], client_id: 'client_1' });
    assert.equal(decodeJwtPart(made.token, 0).typ, 'at+jwt');
    await knob('POST', 'reset_stats');
    const c = client({ secretKey: SK, publishableKey: PK });
    const state = await c.authenticateRequest(bearerRequest(made.token), { acceptsToken: 'oauth_token' });
    assert.equal(state.status, 'signed-in', state.message);
    const auth = state.toAuth();
    assert.equal(auth.userId, user);
    assert.equal(auth.clientId, 'client_1');
    assert.deepEqual(auth.scopes, ['read', 'write']);
    assert.equal((await knob('GET', 'stats')).verify_calls, 0, 'verified locally');
  });

check('machines API: create, scope, secret key', async () => {
  const m = await clientSk.machines.create({ name: 'contract-c', scopedMachines: [A.id] });
  assert.match(m.constructor.name, /Machine$/);
  assert.match(m.id, /^mch_\w{27}$/);
  assert.match(m.secretKey, /^ak_/);
  assert.deepEqual(m.scopedMachines.map((s) => s.id), [A.id]);
  assert.equal(m.scopedMachines[0].name, A.name);
  const scope = await clientSk.machines.createScope(m.id, B.id);
  assert.equal(scope.fromMachineId, m.id);
  assert.equal(scope.toMachineId, B.id);
  const key = await clientSk.machines.getSecretKey(m.id);
  assert.equal(key.secret, m.secretKey);
  // A token of the new machine carries its scopes and verifies with B's key.
  const t = await client({ machineSecretKey: m.secretKey }).m2m.createToken();
  assert.deepEqual(t.scopes, [A.id, B.id]);
  assert.equal((await clientB.m2m.verify({ token: t.token })).subject, m.id);
});

// ---------------------------------------------------------------------------------------------

let passed = 0;
let failed = 0;
for (const { name, fn } of checks) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${String(err?.stack ?? err).split('\n').join('\n     ')}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
