/** A host as the executor needs it (the inventory's fields, decoupled from the database model). */
export interface SshTarget {
  hostId: string;
  name: string;
  address: string;
  port: number;
  sshUser: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it; null until pinned. */
  hostKeyFingerprint: string | null;
}

/** Which host key a connection accepts. There is no "accept anything" beyond first use. */
export type HostKeyPolicy = { pinned: string } | { trustOnFirstUse: true };
