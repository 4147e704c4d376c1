/**
 * At most `limit` SSH handshakes at once per worker process; the others wait in arrival order.
 *
 * A key exchange costs CPU on both ends: hundreds started at once on a busy machine (a restart of a
 * whole fleet by a worker whose pool is cold) all slow down together, and some run past their
 * connect timeout and end unreachable although their host is fine. Waiting here instead lets the
 * first ones finish at full speed; a connection's connect timeout starts when its handshake does.
 */
export class HandshakeGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Handshakes running now and waiting for a turn. */
  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /**
   * Resolves with the function that gives the turn back (calling it again does nothing) once a
   * handshake may start.
   */
  async enter(): Promise<() => void> {
    if (this.running < this.limit) this.running++;
    // The slot is handed over by the leaving handshake: `running` stays counted for this one.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }
}
