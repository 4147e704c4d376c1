import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type Redis from 'ioredis';
import { createDroverClient, DroverClient, Schemas } from '../../src/client';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { REDIS } from '../../src/infra/redis/redis.module';
import { RateLimitDecision, rateLimitKey, TokenRateLimiter } from '../../src/tokens/rate-limit';
import { buildHost } from '../factories/host.factory';
import { query } from '../support/database';
import { startTestApi, TestApi } from '../support/api';
import { assertProblem } from '../support/problems';
import { waitUntil } from '../support/wait';

type CreatedToken = Schemas['CreatedToken'];
type CreateToken = Schemas['CreateToken'];

/** The product's default limit, given explicitly (the other tests turn limiting off). */
const TOKEN_LIMIT = 600;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

let nameSequence = 0;
function uniqueName(prefix: string): string {
  nameSequence += 1;
  return `${prefix}-${process.pid}-${nameSequence}`;
}

describe('token API', () => {
  let api: TestApi;
  let admin: DroverClient;
  let adminId: string;
  let redis: Redis;
  /** The API's own key prefix: the limiter's counters live under it. */
  const prefix = `drover-test-${randomBytes(4).toString('hex')}`;
  /** Every secret this file has seen, to prove none of them ends up in a listing or the audit trail. */
  const secrets: string[] = [];

  async function createToken(body: Partial<CreateToken> = {}): Promise<CreatedToken> {
    const result = await admin.POST('/v1/tokens', {
      body: { name: uniqueName('tok'), scopes: ['read'], ...body },
    });
    assert.equal(result.response.status, 201, JSON.stringify(result.error));
    const created = result.data!;
    secrets.push(created.secret);
    return created;
  }

  before(async () => {
    // The limit as deployed, whatever the test suite's default for other files may be.
    api = await startTestApi({ TOKEN_RATE_LIMIT_PER_MINUTE: String(TOKEN_LIMIT), QUEUE_PREFIX: prefix });
    redis = api.app.get<Redis>(REDIS);
    // The admin client's own token, made through the API by a bootstrap token, so its id is known.
    const bootstrapSecret = await api.token({ name: uniqueName('bootstrap') });
    secrets.push(bootstrapSecret);
    const bootstrap = createDroverClient(api.baseUrl, bootstrapSecret);
    const made = await bootstrap.POST('/v1/tokens', { body: { name: uniqueName('admin'), scopes: ['admin'] } });
    adminId = made.data!.id;
    secrets.push(made.data!.secret);
    admin = createDroverClient(api.baseUrl, made.data!.secret);
  });
  after(() => api.close());

  describe('create, read, list, revoke', () => {
    it('creates a token and shows its secret once, with its bounds and expiry', async () => {
      const before = Date.now();
      const name = uniqueName('ci-deploy');
      const result = await admin.POST('/v1/tokens', {
        body: {
          name,
          scopes: ['operate', 'read', 'operate'],
          hostSelector: 'env in (staging),!canary',
          unitGlob: 'app-[0-9]*.service',
          expiresInDays: 30,
        },
      });
      assert.equal(result.response.status, 201);
      const created = result.data!;
      secrets.push(created.secret);
      assert.match(created.secret, /^drv_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(Object.keys(created).sort(), [
        'createdAt',
        'expiresAt',
        'hostSelector',
        'id',
        'name',
        'scopes',
        'secret',
        'unitGlob',
      ]);
      assert.equal(created.name, name);
      assert.deepEqual(created.scopes, ['operate', 'read']);
      assert.equal(created.hostSelector, 'env in (staging),!canary');
      assert.equal(created.unitGlob, 'app-[0-9]*.service');
      const expiresAt = Date.parse(created.expiresAt!);
      assert.ok(expiresAt >= before + 30 * 86_400_000 && expiresAt <= Date.now() + 30 * 86_400_000);

      const read = await admin.GET('/v1/tokens/{id}', { params: { path: { id: created.id } } });
      assert.equal(read.response.status, 200);
      const { secret: _secret, ...withoutSecret } = created;
      assert.deepEqual(read.data, { ...withoutSecret, revokedAt: null, lastUsedAt: null });

      const rows = await query<{ secret_hash: string }>(
        api.database.url,
        'SELECT secret_hash FROM api_tokens WHERE id = $1',
        [created.id],
      );
      assert.equal(rows[0]?.secret_hash, sha256(created.secret));
    });

    it('stores an expiresAt as given and treats an empty hostSelector as no bound', async () => {
      const expiresAt = new Date(Date.now() + 7 * 86_400_000);
      const created = await createToken({ expiresAt: expiresAt.toISOString(), hostSelector: '' });
      assert.equal(created.expiresAt, expiresAt.toISOString());
      assert.equal(created.hostSelector, null);
      assert.equal(created.unitGlob, null);
      const never = await createToken();
      assert.equal(never.expiresAt, null);
    });

    it('lists tokens by name in pages that never skip, repeat, or carry secrets and hashes', async () => {
      for (let i = 0; i < 5; i += 1) await createToken();
      const seen: Schemas['Token'][] = [];
      const bodies: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await admin.GET('/v1/tokens', { params: { query: { limit: 2, ...(cursor ? { cursor } : {}) } } });
        assert.equal(page.response.status, 200);
        bodies.push(JSON.stringify(page.data));
        seen.push(...page.data!.items);
        cursor = page.data!.nextCursor ?? undefined;
      } while (cursor);
      const names = seen.map((token) => token.name);
      assert.deepEqual(
        names,
        [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      );
      assert.equal(new Set(names).size, names.length);
      const all = await query<{ name: string }>(api.database.url, 'SELECT name FROM api_tokens');
      assert.equal(seen.length, all.length);
      for (const token of seen) {
        assert.deepEqual(Object.keys(token).sort(), [
          'createdAt',
          'expiresAt',
          'hostSelector',
          'id',
          'lastUsedAt',
          'name',
          'revokedAt',
          'scopes',
          'unitGlob',
        ]);
      }
      const hashes = await query<{ secret_hash: string }>(api.database.url, 'SELECT secret_hash FROM api_tokens');
      for (const body of bodies) {
        for (const secret of secrets) assert.ok(!body.includes(secret.slice(4)), 'a listing carries a secret');
        for (const { secret_hash: hash } of hashes) assert.ok(!body.includes(hash), 'a listing carries a hash');
      }
      assertProblem(await admin.GET('/v1/tokens', { params: { query: { cursor: 'nope' } } }), 400, 'cursor_invalid');
    });

    it('gives a created token exactly its scopes and records its last use', async () => {
      const reader = createDroverClient(api.baseUrl, (await createToken({ scopes: ['read'] })).secret);
      assert.equal((await reader.GET('/v1/hosts', {})).response.status, 200);
      assertProblem(await reader.POST('/v1/hosts', { body: buildHost() }), 403, 'forbidden');

      const auditor = await createToken({ scopes: ['audit'] });
      const auditClient = createDroverClient(api.baseUrl, auditor.secret);
      assertProblem(await auditClient.GET('/v1/hosts', {}), 403, 'forbidden');

      const operator = createDroverClient(api.baseUrl, (await createToken({ scopes: ['operate'] })).secret);
      assert.equal((await operator.GET('/v1/hosts', {})).response.status, 200);
      assertProblem(await operator.POST('/v1/hosts', { body: buildHost() }), 403, 'forbidden');

      const inventory = await createToken({ scopes: ['admin'] });
      const inventoryClient = createDroverClient(api.baseUrl, inventory.secret);
      assert.equal((await inventoryClient.POST('/v1/hosts', { body: buildHost() })).response.status, 201);
      const used = await admin.GET('/v1/tokens/{id}', { params: { path: { id: inventory.id } } });
      assert.ok(used.data?.lastUsedAt, 'lastUsedAt is recorded');
      const refused = await admin.GET('/v1/tokens/{id}', { params: { path: { id: auditor.id } } });
      assert.ok(refused.data?.lastUsedAt, 'a request refused for its scope still authenticated the token');
    });

    it('refuses every token route to read, operate and audit tokens with 403', async () => {
      const victim = await createToken();
      for (const scope of ['read', 'operate', 'audit'] as const) {
        const client = createDroverClient(api.baseUrl, (await createToken({ scopes: [scope] })).secret);
        const path = { id: victim.id };
        const problems = [
          await client.POST('/v1/tokens', { body: { name: uniqueName('escalate'), scopes: ['admin'] } }),
          await client.GET('/v1/tokens', {}),
          await client.GET('/v1/tokens/{id}', { params: { path } }),
          await client.POST('/v1/tokens/{id}/revoke', { params: { path } }),
        ];
        for (const result of problems) {
          assert.match(assertProblem(result, 403, 'forbidden').detail, /'admin' scope/, scope);
        }
      }
      const still = await admin.GET('/v1/tokens/{id}', { params: { path: { id: victim.id } } });
      assert.equal(still.data?.revokedAt, null);
    });

    it('refuses token management to an admin token bounded by hostSelector or unitGlob', async () => {
      const victim = await createToken();
      for (const bounds of [{ hostSelector: 'env=staging' }, { unitGlob: 'nginx*.service' }]) {
        const bounded = createDroverClient(api.baseUrl, (await createToken({ scopes: ['admin'], ...bounds })).secret);
        const create = await bounded.POST('/v1/tokens', { body: { name: uniqueName('unbounded'), scopes: ['admin'] } });
        assert.match(assertProblem(create, 403, 'forbidden').detail, /bounded/);
        const revoke = await bounded.POST('/v1/tokens/{id}/revoke', { params: { path: { id: victim.id } } });
        assertProblem(revoke, 403, 'forbidden');
        assert.equal((await bounded.GET('/v1/tokens', {})).response.status, 200);
      }
    });

    it('revokes a token at once and idempotently, keeping the first revocation time', async () => {
      const token = await createToken();
      const client = createDroverClient(api.baseUrl, token.secret);
      assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);

      const first = await admin.POST('/v1/tokens/{id}/revoke', { params: { path: { id: token.id } } });
      assert.equal(first.response.status, 200);
      assert.ok(first.data?.revokedAt);
      assert.equal(first.data?.id, token.id);
      assert.ok(!JSON.stringify(first.data).includes(token.secret));
      assert.match(assertProblem(await client.GET('/v1/hosts', {}), 401, 'unauthenticated').detail, /revoked/);

      await sleep(20);
      const second = await admin.POST('/v1/tokens/{id}/revoke', { params: { path: { id: token.id } } });
      assert.equal(second.response.status, 200);
      assert.equal(second.data?.revokedAt, first.data?.revokedAt);
      const listed = await admin.GET('/v1/tokens/{id}', { params: { path: { id: token.id } } });
      assert.equal(listed.data?.revokedAt, first.data?.revokedAt);
    });

    it('keeps one revocation time when revokes race', async () => {
      const token = await createToken();
      const path = { id: token.id };
      const results = await Promise.all(
        Array.from({ length: 8 }, () => admin.POST('/v1/tokens/{id}/revoke', { params: { path } })),
      );
      assert.deepEqual(
        results.map((result) => result.response.status),
        Array.from({ length: 8 }, () => 200),
      );
      const times = new Set(results.map((result) => result.data?.revokedAt));
      assert.equal(times.size, 1, [...times].join(', '));
      const audited = await query<{ already: string }>(
        api.database.url,
        `SELECT parameters->>'alreadyRevoked' AS already FROM audit_events
         WHERE action = 'token.revoke' AND parameters->>'tokenId' = $1`,
        [token.id],
      );
      assert.equal(audited.length, 8);
      assert.equal(audited.filter((row) => row.already === 'false').length, 1);
    });

    it('refuses an expired token with 401', async () => {
      const token = await createToken({ expiresInDays: 1 });
      const client = createDroverClient(api.baseUrl, token.secret);
      assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);
      // Its expiry comes (the clock is not the thing under test: the check against it is).
      await query(api.database.url, `UPDATE api_tokens SET expires_at = now() - interval '1 ms' WHERE id = $1`, [
        token.id,
      ]);
      assert.match(assertProblem(await client.GET('/v1/hosts', {}), 401, 'unauthenticated').detail, /expired/);
    });

    it('answers 404 for unknown ids and 400 for malformed ones', async () => {
      const path = { id: '00000000-0000-4000-8000-000000000000' };
      assertProblem(await admin.GET('/v1/tokens/{id}', { params: { path } }), 404, 'token_not_found');
      assertProblem(await admin.POST('/v1/tokens/{id}/revoke', { params: { path } }), 404, 'token_not_found');
      assertProblem(
        await admin.GET('/v1/tokens/{id}', { params: { path: { id: 'not-a-uuid' } } }),
        400,
        'validation_failed',
        'id',
      );
    });

    it('answers 409 naming the field for a duplicate name, and audits nothing for it', async () => {
      const token = await createToken();
      const count = async () =>
        (await query(api.database.url, `SELECT 1 FROM audit_events WHERE action = 'token.create'`)).length;
      const before = await count();
      const problem = assertProblem(
        await admin.POST('/v1/tokens', { body: { name: token.name, scopes: ['admin'] } }),
        409,
        'token_exists',
        'name',
      );
      assert.match(problem.detail, new RegExp(token.name));
      assert.equal(await count(), before);
    });

    it('answers 400 naming hostSelector, unitGlob, expiry and scopes, and creates nothing', async () => {
      const tokensBefore = await query(api.database.url, 'SELECT 1 FROM api_tokens');
      const selector = assertProblem(
        await admin.POST('/v1/tokens', {
          body: { name: uniqueName('bad'), scopes: ['read'], hostSelector: 'env in (prod' },
        }),
        400,
        'validation_failed',
        'hostSelector',
      );
      assert.match(selector.detail, /hostSelector: unclosed value list.*at position 12/);
      const several = assertProblem(
        await admin.POST('/v1/tokens', {
          body: {
            name: uniqueName('bad'),
            scopes: [],
            unitGlob: 'nginx.service; reboot',
            expiresAt: new Date(Date.now() - 60_000).toISOString(),
          },
        }),
        400,
        'validation_failed',
      );
      assert.deepEqual(several.errors.map((error) => error.field).sort(), ['expiresAt', 'scopes', 'unitGlob']);
      assertProblem(
        await admin.POST('/v1/tokens', {
          body: { name: uniqueName('bad'), scopes: ['read'], expiresInDays: 1, expiresAt: '2999-01-01T00:00:00Z' },
        }),
        400,
        'validation_failed',
        'expiresAt',
      );
      assertProblem(
        await admin.POST('/v1/tokens', {
          body: { name: uniqueName('bad'), scopes: ['superuser'] } as unknown as CreateToken,
        }),
        400,
        'validation_failed',
        'scopes[0]',
      );
      assert.equal((await query(api.database.url, 'SELECT 1 FROM api_tokens')).length, tokensBefore.length);
    });
  });

  describe('audit trail', () => {
    it('records one event per create and revoke with the actor, request and bounds', async () => {
      const requestId = `tokens-test-${process.pid}`;
      const result = await admin.POST('/v1/tokens', {
        body: { name: uniqueName('audited'), scopes: ['read', 'audit'], hostSelector: 'role=web', expiresInDays: 2 },
        headers: { 'X-Request-Id': requestId },
      });
      const created = result.data!;
      secrets.push(created.secret);
      await admin.POST('/v1/tokens/{id}/revoke', {
        params: { path: { id: created.id } },
        headers: { 'X-Request-Id': `${requestId}-revoke` },
      });
      const events = await query<{
        action: string;
        result: string;
        actor_token_id: string;
        actor_name: string;
        request_id: string;
        source_address: string | null;
        parameters: Record<string, unknown>;
        seq: string;
        hash: string;
      }>(
        api.database.url,
        `SELECT action, result, actor_token_id, actor_name, request_id, source_address, parameters, seq, hash
         FROM audit_events WHERE parameters->>'tokenId' = $1 ORDER BY seq`,
        [created.id],
      );
      assert.deepEqual(
        events.map((event) => [event.action, event.result, event.request_id]),
        [
          ['token.create', 'succeeded', requestId],
          ['token.revoke', 'succeeded', `${requestId}-revoke`],
        ],
      );
      const expected = {
        tokenId: created.id,
        name: created.name,
        scopes: ['read', 'audit'],
        hostSelector: 'role=web',
        unitGlob: null,
        expiresAt: created.expiresAt,
      };
      assert.deepEqual(events[0]?.parameters, expected);
      assert.deepEqual(events[1]?.parameters, { ...expected, alreadyRevoked: false });
      const adminName = (await admin.GET('/v1/tokens/{id}', { params: { path: { id: adminId } } })).data?.name;
      for (const event of events) {
        assert.equal(event.actor_token_id, adminId);
        assert.equal(event.actor_name, adminName);
        assert.match(event.source_address ?? '', /127\.0\.0\.1/);
        assert.match(event.hash, /^[0-9a-f]{64}$/, 'the chain trigger filled the hash');
      }
    });

    it('never holds a secret, its body or its hash', async () => {
      const rows = await query<{ text: string }>(
        api.database.url,
        `SELECT row_to_json(e)::text AS text FROM audit_events e WHERE action LIKE 'token.%'`,
      );
      assert.ok(rows.length >= 10, `expected token events, found ${rows.length}`);
      const hashes = await query<{ secret_hash: string }>(api.database.url, 'SELECT secret_hash FROM api_tokens');
      for (const { text } of rows) {
        assert.doesNotMatch(text, /drv_/);
        for (const secret of secrets) assert.ok(!text.includes(secret.slice(4)), 'an audit event holds a secret');
        for (const { secret_hash: hash } of hashes) assert.ok(!text.includes(hash), 'an audit event holds a hash');
      }
    });
  });

  describe('rate limit', () => {
    it('counts each authenticated request of a token in Redis, with an expiry', async () => {
      const token = await createToken();
      const client = createDroverClient(api.baseUrl, token.secret);
      for (let i = 0; i < 3; i += 1) assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);
      assert.equal(await redis.get(rateLimitKey(prefix, token.id)), '3');
      const ttl = await redis.pttl(rateLimitKey(prefix, token.id));
      assert.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
    });

    it('answers 429 problem+json with Retry-After once a token used up its minute, and no other token', async () => {
      const token = await createToken();
      const client = createDroverClient(api.baseUrl, token.secret);
      const bystander = createDroverClient(api.baseUrl, (await createToken()).secret);
      // As if the token had made its whole allowance already in this window.
      await redis.set(rateLimitKey(prefix, token.id), String(TOKEN_LIMIT - 1), 'PX', 30_000);
      assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);
      const limited = await client.GET('/v1/hosts', {});
      const problem = assertProblem(limited, 429, 'rate_limited');
      assert.equal(problem.type, 'urn:drover:problem:rate_limited');
      assert.match(problem.detail, new RegExp(`more than ${TOKEN_LIMIT} requests`));
      const retryAfter = Number(limited.response.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 30, `Retry-After ${retryAfter}`);
      assertProblem(await client.POST('/v1/hosts', { body: buildHost() }), 429, 'rate_limited');
      assert.equal((await bystander.GET('/v1/hosts', {})).response.status, 200);

      // Unknown secrets are refused before counting, so they cannot fill Redis with counters.
      const stranger = createDroverClient(api.baseUrl, `drv_${'B'.repeat(43)}`);
      assertProblem(await stranger.GET('/v1/hosts', {}), 401, 'unauthenticated');

      await redis.del(rateLimitKey(prefix, token.id));
      assert.equal((await client.GET('/v1/hosts', {})).response.status, 200);
    });

    it('TokenRateLimiter allows the limit per window, then says how long to wait', async () => {
      // A window long enough that five requests fit in it on a slow machine; its end is awaited by
      // watching Redis expire the counter, not by sleeping past it.
      const limiter = new TokenRateLimiter(redis, prefix, 3, 4_000);
      const id = `limiter-${process.pid}-${Date.now()}`;
      try {
        const decisions: RateLimitDecision[] = [];
        for (let i = 0; i < 5; i += 1) decisions.push(await limiter.consume(id));
        assert.deepEqual(
          decisions.map((decision) => [decision.allowed, decision.remaining]),
          [
            [true, 2],
            [true, 1],
            [true, 0],
            [false, 0],
            [false, 0],
          ],
        );
        for (const decision of decisions) {
          assert.equal(decision.limit, 3);
          assert.ok(
            decision.retryAfterSeconds >= 1 && decision.retryAfterSeconds <= 4,
            String(decision.retryAfterSeconds),
          );
        }
        await waitUntil(async () => (await redis.exists(rateLimitKey(prefix, id))) === 0, 'the window closed');
        assert.deepEqual(await limiter.consume(id), { allowed: true, limit: 3, remaining: 2, retryAfterSeconds: 4 });
      } finally {
        await redis.del(rateLimitKey(prefix, id));
      }
    });

    it('TokenRateLimiter counts concurrent requests exactly and repairs a counter without expiry', async () => {
      const limiter = new TokenRateLimiter(redis, prefix, 50);
      const id = `limiter-race-${process.pid}-${Date.now()}`;
      try {
        const decisions = await Promise.all(Array.from({ length: 80 }, () => limiter.consume(id)));
        assert.equal(decisions.filter((decision) => decision.allowed).length, 50);
        assert.equal(await redis.get(rateLimitKey(prefix, id)), '80');

        await redis.set(rateLimitKey(prefix, id), '999'); // no expiry: would block the token for good
        const blocked = await limiter.consume(id);
        assert.equal(blocked.allowed, false);
        assert.ok((await redis.pttl(rateLimitKey(prefix, id))) > 0, 'the counter got its expiry back');
      } finally {
        await redis.del(rateLimitKey(prefix, id));
      }
    });
  });
});

describe('failed authentication', () => {
  it('is counted by reason and audited coalesced: a few events whose counts add up, never the secret', async () => {
    // A window longer than the test, so only the first failure of each key is written at once.
    const fresh = await startTestApi({ AUTH_FAILURE_AUDIT_WINDOW_MS: '3600000' });
    let closed = false;
    try {
      const failures = fresh.app.get(MetricsService).authFailures;
      const counted = async (reason: string) =>
        (await failures.get()).values.find((value) => value.labels.reason === reason)?.value ?? 0;
      const admin = createDroverClient(fresh.baseUrl, await fresh.token());
      const revoked = (await admin.POST('/v1/tokens', { body: { name: uniqueName('revoked'), scopes: ['read'] } }))
        .data!;
      await admin.POST('/v1/tokens/{id}/revoke', { params: { path: { id: revoked.id } } });
      const unknownSecret = `drv_${'Q'.repeat(43)}`;
      const attempts: { reason: string; authorization: string | null; times: number; prefix: string | null }[] = [
        { reason: 'unknown', authorization: `Bearer ${unknownSecret}`, times: 40, prefix: 'drv_QQQQQQQQ' },
        { reason: 'malformed', authorization: 'Bearer not-a-drover-token', times: 15, prefix: 'not-a-drover' },
        { reason: 'revoked', authorization: `Bearer ${revoked.secret}`, times: 5, prefix: revoked.secret.slice(0, 12) },
        { reason: 'missing', authorization: null, times: 5, prefix: null },
      ];
      const before = Object.fromEntries(
        await Promise.all(attempts.map(async ({ reason }) => [reason, await counted(reason)] as const)),
      );
      for (const { authorization, times } of attempts) {
        for (let index = 0; index < times; index += 1) {
          const response = await fetch(`${fresh.baseUrl}/v1/hosts`, {
            headers: authorization === null ? {} : { Authorization: authorization },
          });
          assert.equal(response.status, 401);
        }
      }
      for (const { reason, times } of attempts) assert.equal((await counted(reason)) - before[reason]!, times, reason);

      // Shutting down writes the counts of the windows still open.
      await fresh.app.close();
      closed = true;
      const events = await query<{ source_address: string; parameters: Record<string, unknown>; result: string }>(
        fresh.database.url,
        `SELECT source_address, parameters, result FROM audit_events WHERE action = 'auth.failed' ORDER BY seq`,
      );
      for (const { reason, times, prefix } of attempts) {
        const mine = events.filter((event) => event.parameters.reason === reason);
        assert.ok(mine.length >= 1 && mine.length <= 4, `${reason}: ${mine.length} events for ${times} failures`);
        assert.equal(
          mine.reduce((sum, event) => sum + Number(event.parameters.count), 0),
          times,
          `${reason}: the counts add up`,
        );
        assert.ok(mine.every((event) => event.parameters.tokenPrefix === prefix && event.result === 'denied'));
        assert.ok(
          mine.every((event) => event.source_address === '127.0.0.1' || event.source_address === '::ffff:127.0.0.1'),
        );
      }
      const trail = JSON.stringify(events);
      assert.ok(!trail.includes(unknownSecret) && !trail.includes(revoked.secret), 'no secret in the trail');
    } finally {
      if (!closed) await fresh.app.close();
      await fresh.database.drop();
    }
  });
});
