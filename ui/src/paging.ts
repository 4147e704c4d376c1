import { useEffect, useState } from 'preact/hooks';
import { describeError, type Page } from './api';

export interface PagedList<T> {
  items: T[];
  error: string | null;
  /** Loads the next page; null on the last one. */
  more: (() => void) | null;
  reload(): Promise<void>;
}

/** A keyset-paginated list: the first page when `deps` change, the next ones on demand. */
export function usePagedList<T>(
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
  deps: unknown[],
): PagedList<T> {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = async (from: string | undefined) => {
    setError(null);
    try {
      const page = await fetchPage(from);
      setItems((previous) => (from ? [...previous, ...page.items] : page.items));
      setCursor(page.nextCursor);
    } catch (caught) {
      setError(describeError(caught));
    }
  };
  useEffect(() => void load(undefined), deps);
  return { items, error, more: cursor ? () => void load(cursor) : null, reload: () => load(undefined) };
}
