/** Why a stored token may no longer act at all, whatever it asks for. */
export type LostStanding = 'revoked' | 'expired';

/**
 * Whether a token may still act: not revoked and not past its expiry. The one rule for a request's
 * token and for the token a running rollout acts under.
 */
export function lostStanding(
  token: { revokedAt: Date | null; expiresAt: Date | null },
  now: Date,
): LostStanding | null {
  if (token.revokedAt) return 'revoked';
  if (token.expiresAt && token.expiresAt <= now) return 'expired';
  return null;
}
