/** What went wrong on a host, for callers that record an outcome per host (switch on it). */
export type SshErrorKind = 'unreachable' | 'timed_out' | 'host_key_mismatch' | 'host_key_not_pinned' | 'sudo_refused';

/** Every failure SshExecutor reports about a host. Anything else it throws is a bug or bad config. */
export abstract class SshError extends Error {
  abstract readonly kind: SshErrorKind;

  constructor(
    readonly hostName: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The host could not be reached, refused the connection or our key, did not finish the SSH
 * handshake in time, or the connection died. `commandMayHaveStarted` tells whether retrying could
 * run the command twice: false only when it provably never reached the host.
 */
export class HostUnreachableError extends SshError {
  readonly kind = 'unreachable';

  constructor(
    hostName: string,
    reason: string,
    readonly commandMayHaveStarted: boolean,
    options?: ErrorOptions,
  ) {
    const started = commandMayHaveStarted ? 'the command may have started' : 'the command did not start';
    super(hostName, `host ${hostName} is unreachable: ${reason} (${started})`, options);
  }
}

/** The command ran longer than its timeout and was killed; what it printed until then is kept. */
export class CommandTimeoutError extends SshError {
  readonly kind = 'timed_out';

  constructor(
    hostName: string,
    readonly command: string,
    readonly timeoutMs: number,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(hostName, `command on host ${hostName} timed out after ${timeoutMs} ms and was killed: ${command}`);
  }
}

/** The host presented another key than the pinned one: possibly an impostor, so nothing ran. */
export class HostKeyMismatchError extends SshError {
  readonly kind = 'host_key_mismatch';

  constructor(
    hostName: string,
    readonly expectedFingerprint: string,
    readonly presentedFingerprint: string,
  ) {
    super(
      hostName,
      `host key of ${hostName} does not match its pinned key: expected ${expectedFingerprint}, ` +
        `presented ${presentedFingerprint}; nothing was run`,
    );
  }
}

/** The host has no pinned key and the caller did not ask to trust the first one seen. */
export class HostKeyNotPinnedError extends SshError {
  readonly kind = 'host_key_not_pinned';

  constructor(hostName: string) {
    super(hostName, `host ${hostName} has no pinned host key fingerprint; pin one (or trust on first use) first`);
  }
}

/** sudo would not run the command without a password: the login user lacks NOPASSWD rights. */
export class SudoRefusedError extends SshError {
  readonly kind = 'sudo_refused';

  constructor(
    hostName: string,
    readonly user: string,
    readonly command: string,
    readonly stderr: string,
  ) {
    super(hostName, `sudo on host ${hostName} refused to run a command as root for user ${user}: ${command}`);
  }
}
