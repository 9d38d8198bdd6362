import net from 'node:net';

/**
 * A TCP relay on loopback between clients and a server that can stop
 * passing bytes without closing anything: a network cut as the client
 * libraries see it (their connections stay open, and nothing comes back).
 * While cut, nothing is read from either side, so the bytes wait in the
 * kernel's buffers and arrive once the cut heals, as after a partition.
 */
export class TcpRelay {
  private readonly sockets = new Set<net.Socket>();
  private readonly pairs = new Map<net.Socket, net.Socket>();
  /** The first bytes each client sent, for `cutWhere`. */
  private readonly sent = new Map<net.Socket, string>();
  private isCut = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpRelay> {
    let relay: TcpRelay | undefined;
    const server = net.createServer((client) => relay!.pair(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    relay = new TcpRelay(server, (server.address() as net.AddressInfo).port);
    return relay;
  }

  /** Stops passing bytes, both ways, on every connection, old and new. */
  cut(): void {
    this.isCut = true;
    for (const socket of this.sockets) socket.pause();
  }

  /**
   * Stops passing bytes, both ways, on the open connections whose client
   * has sent `marker` (a replica's `REPLCONF`, say), leaving the others be;
   * `reset` ends them.
   */
  cutWhere(marker: string): void {
    for (const [client, upstream] of this.pairs) {
      if (!this.sent.get(client)?.includes(marker)) continue;
      client.pause();
      upstream.pause();
    }
  }

  /** Stops passing the server's bytes to the clients, on the open connections, while theirs still reach it: answers are held, requests are not. */
  cutReplies(): void {
    for (const upstream of this.pairs.values()) upstream.pause();
  }

  heal(): void {
    this.isCut = false;
    for (const socket of this.sockets) socket.resume();
  }

  /** Ends the cut by resetting every connection, as a router that lost its state does: clients must reconnect. */
  reset(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.isCut = false;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private pair(client: net.Socket, targetPort: number): void {
    const upstream = net.connect(targetPort, '127.0.0.1');
    this.pairs.set(client, upstream);
    this.sent.set(client, '');
    client.on('data', (chunk) => {
      const seen = this.sent.get(client);
      if (seen !== undefined && seen.length < 4096) this.sent.set(client, seen + chunk.toString('latin1'));
    });
    client.on('close', () => {
      this.pairs.delete(client);
      this.sent.delete(client);
    });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.sockets.add(from);
      if (this.isCut) from.pause();
      // Forwarded by hand rather than piped: a pipe would resume a paused socket on 'drain'.
      from.on('data', (chunk) => to.write(chunk));
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
      from.on('error', () => to.destroy());
    }
  }
}
