import { may, unwrapResult, type Session } from '../api';
import { time } from '../format';
import { usePagedList } from '../paging';
import { href } from '../router';

export function RolloutsPage({ session }: { session: Session }) {
  const { items, error, more } = usePagedList(
    async (cursor) =>
      unwrapResult(await session.client.GET('/v1/rollouts', { params: { query: { limit: 50, cursor } } })),
    [],
  );
  return (
    <>
      <h1 tabIndex={-1}>Rollouts</h1>
      {may(session.me, 'operate') && (
        <p>
          <a class="button" href={href('rollouts', 'new')} data-testid="new-rollout">
            New rollout
          </a>
        </p>
      )}
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      <table class="grid" data-testid="rollouts">
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Rollout</th>
            <th scope="col">Status</th>
            <th scope="col">Hosts</th>
            <th scope="col">By</th>
          </tr>
        </thead>
        <tbody>
          {items.map((rollout) => (
            <tr key={rollout.id}>
              <td>{time(rollout.createdAt)}</td>
              <td>
                <a href={href('rollouts', rollout.id)}>
                  {rollout.verb} {rollout.unit} on {rollout.selector || 'every host'}
                </a>
              </td>
              <td>
                <span class={`badge r-${rollout.status}`}>{rollout.status}</span>
              </td>
              <td>
                {rollout.counts.succeeded}/{rollout.total} done
                {rollout.counts.failed > 0 && `, ${rollout.counts.failed} failed`}
              </td>
              <td>{rollout.requestedBy}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {more && (
        <button type="button" onClick={more}>
          More
        </button>
      )}
    </>
  );
}
