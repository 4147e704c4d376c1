import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'Drover-Signature';
/** The stable id of the event, the same in every attempt and redelivery: receivers deduplicate on it. */
export const EVENT_ID_HEADER = 'Drover-Event-Id';
export const EVENT_TYPE_HEADER = 'Drover-Event-Type';
export const DELIVERY_ID_HEADER = 'Drover-Delivery-Id';
export const ATTEMPT_HEADER = 'Drover-Delivery-Attempt';

const SECRET_PREFIX = 'whsec_';

/** A new signing secret: 32 random bytes, base64url, with a recognisable prefix. */
export function generateWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

function hmacHex(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** The signature header value of `body` sent at `timestamp` (unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${hmacHex(secret, timestamp, body)}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * What a receiver does (and what drover's own tests do): parse the header, recompute the HMAC over
 * `timestamp + "." + raw body`, compare in constant time, and refuse timestamps further than
 * `toleranceSeconds` from now (a replayed old request). Several v1 entries may be present; one
 * matching is enough.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): SignatureCheck {
  if (!header) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && value && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === undefined) return { ok: false, reason: 'no timestamp (t=) in the signature header' };
  if (signatures.length === 0) return { ok: false, reason: 'no v1 signature in the signature header' };
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) {
    return { ok: false, reason: `timestamp ${timestamp} is more than ${toleranceSeconds} s from now` };
  }
  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex');
  const match = signatures.some((signature) => timingSafeEqual(Buffer.from(signature, 'hex'), expected));
  return match ? { ok: true } : { ok: false, reason: 'no signature matches' };
}
