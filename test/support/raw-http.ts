// HTTP/1.1 over a bare socket, for tests that must control exactly which bytes arrive when: half-sent
// headers, bodies held back, Expect: 100-continue.
import net from 'node:net';

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves once the received bytes match, or rejects when the connection ends first (with what came). */
  waitFor(pattern: RegExp, what: string): Promise<string>;
  /** Resolves with everything received once the server has closed the connection. */
  closed: Promise<string>;
  send(data: string | Buffer): void;
}

export async function rawConnection(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  let data = '';
  let ended = false;
  const waiters: Array<() => void> = [];
  const changed = () => { for (const w of waiters.splice(0)) w(); };
  socket.on('data', (chunk) => { data += chunk.toString('latin1'); changed(); });
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.once('close', () => { ended = true; resolve(data); changed(); }));
  return {
    socket,
    received: () => data,
    closed,
    send: (chunk) => { socket.write(chunk); },
    async waitFor(pattern, what) {
      for (;;) {
        if (pattern.test(data)) return data;
        if (ended) throw new Error(`connection closed before ${what}; received: ${JSON.stringify(data.slice(0, 500))}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

/** The request line and headers of a device request whose body follows separately. */
export function deviceRequestHead(path: string, headers: Record<string, string | number>): string {
  const lines = [`PUT ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return lines.join('\r\n') + '\r\n\r\n';
}
