import { createHash } from 'node:crypto';

/**
 * OpenSSH's SHA256 fingerprint of a raw host key blob, exactly as `ssh-keygen -lf` prints it
 * ("SHA256:" + unpadded base64). This is the form pinned in the inventory.
 */
export function sha256Fingerprint(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}
