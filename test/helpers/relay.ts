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

  heal(): void {
    this.isCut = false;
    for (const socket of this.sockets) socket.resume();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private pair(client: net.Socket, targetPort: number): void {
    const upstream = net.connect(targetPort, '127.0.0.1');
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
