import net from 'node:net';

// A second server on a busy port must say so in one line before it opens anything: the embedded database and
// the sandbox's state in DATA_DIR belong to the server already running there.

export class PortInUseError extends Error {
  constructor(readonly host: string, readonly port: number) {
    super(`port ${port} is in use on ${host} (another server?): set PORT`);
    this.name = 'PortInUseError';
  }
}

/** The error `listen` gives for a taken port, as a PortInUseError; other errors unchanged. */
export function asPortInUse(err: unknown, host: string, port: number): unknown {
  return (err as NodeJS.ErrnoException)?.code === 'EADDRINUSE' ? new PortInUseError(host, port) : err;
}

/** Resolves when `port` can be listened on (0 always can); throws PortInUseError when it is taken. */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(asPortInUse(err, host, port)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
