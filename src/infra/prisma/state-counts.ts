/** One row of a Prisma `groupBy` over an owner and a state with `_count: { _all: true }`. */
export interface StateGroup<State extends string> {
  state: State;
  _count: { _all: number };
}

/** Per owner (an operation, a rollout), how many of its rows are in each state. */
export function countsByOwner<Group extends StateGroup<State>, State extends string>(
  groups: Group[],
  ownerOf: (group: Group) => string,
): Map<string, Partial<Record<State, number>>> {
  const counts = new Map<string, Partial<Record<State, number>>>();
  for (const group of groups) {
    const forOwner: Partial<Record<State, number>> = counts.get(ownerOf(group)) ?? {};
    forOwner[group.state] = group._count._all;
    counts.set(ownerOf(group), forOwner);
  }
  return counts;
}
