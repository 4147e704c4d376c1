import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './schema';

/** The typed drover API client, generated from openapi.json (schema.d.ts is never edited). */
export type DroverClient = Client<paths>;
export type Schemas = components['schemas'];

export function createDroverClient(baseUrl: string, token: string | undefined): DroverClient {
  return createClient<paths>({
    baseUrl,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
}

/** A problem+json error response, thrown by `unwrap` so callers see the API's own words. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Schemas['Problem'] | undefined,
  ) {
    const fields = problem?.errors.map((error) => `\n  ${error.field}: ${error.message}`).join('') ?? '';
    super(problem ? `${problem.title} (${status}): ${problem.detail}${fields}` : `HTTP ${status}`);
  }
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Every item of a keyset-paginated list, page after page (at most `max` items). */
export async function allPages<T>(
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
  max = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined && items.length < max);
  return items.slice(0, max);
}

/** Returns the data of a successful response or throws ApiError carrying the problem body. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.response.ok) return result.data as T;
  throw new ApiError(result.response.status, result.error as Schemas['Problem'] | undefined);
}
