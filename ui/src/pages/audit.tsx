import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { describeError, unwrapResult, type Schemas, type Session } from '../api';
import { usePagedList } from '../paging';
import { time } from '../format';

type Verification = Schemas['AuditVerification'];

const FILTERS = [
  ['actor', 'Actor'],
  ['host', 'Host'],
  ['selector', 'Host selector'],
  ['unit', 'Unit'],
  ['action', 'Action'],
  ['result', 'Result'],
  ['operationId', 'Operation id'],
  ['from', 'From (ISO time)'],
  ['to', 'To (ISO time)'],
  ['q', 'Text in parameters'],
] as const;
type FilterKey = (typeof FILTERS)[number][0];
type Filters = Partial<Record<FilterKey, string>>;

const cleaned = (filters: Filters): Filters =>
  Object.fromEntries(Object.entries(filters).filter(([, value]) => value !== undefined && value.trim() !== ''));

export function AuditPage({ session }: { session: Session }) {
  const [draft, setDraft] = useState<Filters>({});
  const [filters, setFilters] = useState<Filters>({});
  const list = usePagedList(
    async (cursor) =>
      unwrapResult(
        await session.client.GET('/v1/audit/events', { params: { query: { ...filters, limit: 100, cursor } } }),
      ),
    [filters],
  );
  const [error, setError] = useState<string | null>(null);
  const [verification, setVerification] = useState<Verification | null>(null);
  const [exporting, setExporting] = useState(false);
  const [open, setOpen] = useState<number | null>(null);

  const verify = async () => {
    setError(null);
    try {
      setVerification(unwrapResult(await session.client.GET('/v1/audit/verify', {})));
    } catch (caught) {
      setError(describeError(caught));
    }
  };

  /** Streams the export through fetch (the token goes in a header) and hands it to the browser as a file. */
  const download = async (format: 'jsonl' | 'csv') => {
    setExporting(true);
    setError(null);
    try {
      const query = new URLSearchParams({ ...filters, format });
      const response = await fetch(`/v1/audit/export?${query}`, {
        headers: { Authorization: `Bearer ${session.token}` },
      });
      if (!response.ok) throw new Error(`export failed: HTTP ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = `drover-audit.${format}`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setExporting(false);
    }
  };

  return (
    <>
      <h1 tabIndex={-1}>Audit trail</h1>
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
          setFilters(cleaned(draft));
        }}
      >
        {FILTERS.map(([key, label]) => (
          <div class="field" key={key}>
            <label for={`a-${key}`}>{label}</label>
            <input
              id={`a-${key}`}
              value={draft[key] ?? ''}
              onInput={(event) => {
                const value = event.currentTarget.value;
                setDraft((previous) => ({ ...previous, [key]: value }));
              }}
            />
          </div>
        ))}
        <div class="row">
          <button type="submit" data-testid="audit-apply">
            Apply filters
          </button>
          <button type="button" disabled={exporting} onClick={() => void download('jsonl')}>
            Export JSONL
          </button>
          <button type="button" disabled={exporting} onClick={() => void download('csv')}>
            Export CSV
          </button>
          <button type="button" onClick={() => void verify()} data-testid="audit-verify">
            Verify chain
          </button>
        </div>
      </form>
      {verification && (
        <section aria-label="Verification" class={verification.ok ? 'ok' : 'error'} data-testid="verification">
          <p>
            {verification.ok
              ? `Chain intact: ${verification.checked} event(s), seq ${verification.fromSeq ?? '–'}..${verification.toSeq ?? '–'}.`
              : `Chain broken at seq ${verification.firstBroken?.seq}: ${verification.firstBroken?.reason}`}
          </p>
          {verification.lastHash && (
            <p>
              Last hash (keep it outside drover):{' '}
              <code class="hash" data-testid="last-hash">
                {verification.lastHash}
              </code>{' '}
              <button type="button" onClick={() => void navigator.clipboard?.writeText(verification.lastHash ?? '')}>
                Copy
              </button>
            </p>
          )}
        </section>
      )}
      {(error ?? list.error) && (
        <pre role="alert" class="error">
          {error ?? list.error}
        </pre>
      )}
      <table class="grid" data-testid="audit-events">
        <thead>
          <tr>
            <th scope="col">Seq</th>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Result</th>
            <th scope="col">Host</th>
            <th scope="col">Unit</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {list.items.map((event) => (
            <Fragment key={event.seq}>
              <tr data-testid="audit-row">
                <td>
                  <button
                    type="button"
                    class="link"
                    aria-expanded={open === event.seq}
                    onClick={() => setOpen(open === event.seq ? null : event.seq)}
                  >
                    {event.seq}
                  </button>
                </td>
                <td>{time(event.occurredAt)}</td>
                <td>{event.actorName}</td>
                <td>{event.action}</td>
                <td>{event.result}</td>
                <td>{event.hostName ?? ''}</td>
                <td>{event.unit ?? ''}</td>
                <td>{event.reason ?? ''}</td>
              </tr>
              {open === event.seq && (
                <tr>
                  <td colSpan={8}>
                    <pre class="output">
                      {JSON.stringify(
                        {
                          requestId: event.requestId,
                          sourceAddress: event.sourceAddress,
                          parameters: event.parameters,
                          before: event.before,
                          after: event.after,
                          hash: event.hash,
                          prevHash: event.prevHash,
                        },
                        null,
                        2,
                      )}
                    </pre>
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </tbody>
      </table>
      {list.more && (
        <button type="button" onClick={list.more} data-testid="audit-more">
          Older events
        </button>
      )}
    </>
  );
}
