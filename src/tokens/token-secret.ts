import { createHash, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'drv_';
const SECRET_SHAPE = /^drv_[A-Za-z0-9_-]{43}$/;

/** A new bearer secret: 256 random bits, recognisable by its prefix in logs and secret scanners. */
export function generateTokenSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64url');
}

export function isWellFormedTokenSecret(secret: string): boolean {
  return SECRET_SHAPE.test(secret);
}

/**
 * SHA-256 of the secret. Secrets are high-entropy random values, so a fast hash is enough to make a
 * stolen database useless (no dictionary to try) and keeps every request's lookup cheap.
 */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
