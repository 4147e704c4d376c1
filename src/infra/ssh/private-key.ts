import { readFile } from 'node:fs/promises';
import { utils } from 'ssh2';

/**
 * Reads and checks the executor's private key, so a missing, unreadable, passphrase-protected or
 * public-only key file fails with its path named instead of ssh2's generic parse error on each
 * connection. Error messages never include key material.
 */
export async function readPrivateKey(path: string): Promise<Buffer> {
  let key: Buffer;
  try {
    key = await readFile(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`cannot read the SSH private key ${path} (SSH_PRIVATE_KEY_PATH): ${reason}`, { cause: error });
  }
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) {
    throw new Error(`the SSH private key ${path} (SSH_PRIVATE_KEY_PATH) cannot be used: ${parsed.message}`);
  }
  if (!parsed.isPrivateKey()) {
    throw new Error(`the SSH private key ${path} (SSH_PRIVATE_KEY_PATH) holds a public key, not a private one`);
  }
  return key;
}
