import { allPages, ApiError, createDroverClient, type DroverClient, type Page, type Schemas } from '../../src/client';

export { allPages, ApiError };
export type { DroverClient, Page, Schemas };
export type Me = Schemas['WhoAmI'];
export type Rollout = Schemas['Rollout'];
export type Scope = Me['scopes'][number];

/** The token lives in sessionStorage only: gone with the tab, never in a URL, a cookie or localStorage. */
const TOKEN_KEY = 'drover.token';

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export interface Session {
  token: string;
  me: Me;
  client: DroverClient;
}

export function clientFor(token: string): DroverClient {
  return createDroverClient(location.origin, token);
}

/** Checks a token against the API; resolves the session or rejects with the API's problem. */
export async function signIn(token: string): Promise<Session> {
  const client = clientFor(token);
  const me = unwrapResult(await client.GET('/v1/whoami'));
  return { token, me, client };
}

export function unwrapResult<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok) return result.data as T;
  throw new ApiError(result.response.status, result.error as Schemas['Problem'] | undefined);
}

const GRANTS: Record<Scope, readonly Scope[]> = {
  read: ['read'],
  operate: ['operate', 'read'],
  admin: ['admin', 'operate', 'read', 'audit'],
  audit: ['audit'],
};

/** Mirrors the API's scope rules, to hide what the token could not do; the API decides regardless. */
export function may(me: Me, scope: Scope): boolean {
  return me.scopes.some((held) => GRANTS[held].includes(scope));
}

export function isBounded(me: Me): boolean {
  return me.hostSelector !== null || me.unitGlob !== null;
}

/** Pause, resume, approve, cancel and retry: operate, and a bounded token only on its own rollouts. */
export function mayControl(me: Me, rollout: Pick<Rollout, 'requestedBy'>): boolean {
  return may(me, 'operate') && (!isBounded(me) || rollout.requestedBy === me.name);
}

/** The words of an error for the page: the API's problem (detail and fields) or the message. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const problem = error.problem;
    if (!problem) return `HTTP ${error.status}`;
    const fields = problem.errors.map((item) => `${item.field}: ${item.message}`);
    return [problem.detail || problem.title, ...fields].join('\n');
  }
  return error instanceof Error ? error.message : String(error);
}
