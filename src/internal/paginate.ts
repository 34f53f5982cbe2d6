/**
 * Offset paging: the lazy iterator behind `RestClient.iterTrainingRuns` / `iterUserCheckpoints`, and the check of
 * `limit` / `offset` before anything is sent.
 *
 * @module
 */
import { InvalidArgumentError } from "../core/errors.js";

/** Page size of the iterators unless `pageSize` says otherwise. */
export const DEFAULT_PAGE_SIZE = 100;

/** What an iterator reports after fetching each page. */
export interface PageProgress {
  /** Offset of the page just fetched. */
  offset: number;
  /** Items on that page. */
  count: number;
  /** Items fetched so far, this page included. */
  fetched: number;
  /** `cursor.total_count` of the page, or `null` when the service did not say. */
  totalCount: number | null;
}

/**
 * Checks `limit` (1-1000) and `offset` (≥ 0) before anything is sent.
 *
 * @throws {InvalidArgumentError} for a value out of range.
 * @example
 * ```ts
 * checkPaging(100, 0); // ok
 * checkPaging(0, 0);   // throws InvalidArgumentError
 * ```
 */
export function checkPaging(limit: number | undefined, offset: number | undefined): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) {
    throw new InvalidArgumentError(`limit must be a whole number from 1 to 1000, got ${String(limit)}.`);
  }
  if (offset !== undefined && (!Number.isInteger(offset) || offset < 0)) {
    throw new InvalidArgumentError(`offset must be a whole number ≥ 0, got ${String(offset)}.`);
  }
}

/**
 * Lazy offset paging: fetches pages of `pageSize` (default {@link DEFAULT_PAGE_SIZE}) until a short or empty page,
 * or `totalCount` items, reporting each page to `onPage`.
 *
 * @example
 * ```ts
 * const items = paginate(2, undefined, async (limit, offset) => ({ items: [offset, offset + 1].slice(0, limit), totalCount: 4 }));
 * for await (const n of items) console.log(n); // 0 1 2 3
 * ```
 */
export function paginate<T>(
  pageSize: number | undefined,
  onPage: ((page: PageProgress) => void) | undefined,
  fetchPage: (limit: number, offset: number) => Promise<{ items: T[]; totalCount: number | null }>,
): AsyncIterable<T> {
  const size = pageSize ?? DEFAULT_PAGE_SIZE;
  checkPaging(size, 0);
  return {
    async *[Symbol.asyncIterator]() {
      let offset = 0;
      for (;;) {
        const { items, totalCount } = await fetchPage(size, offset);
        onPage?.({ offset, count: items.length, fetched: offset + items.length, totalCount });
        for (const item of items) yield item;
        offset += items.length;
        if (items.length === 0 || items.length < size) return;
        if (totalCount !== null && offset >= totalCount) return;
      }
    },
  };
}
