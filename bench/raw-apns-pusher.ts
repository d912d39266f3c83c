// The APNs fan-out baseline, a child process on the server CPU: a raw node:http2 client with the same push
// certificate, the same MDM push (apns-push-type mdm, {"mdm": PushMagic}) and the same number of pushes in
// flight as the server's sender, to the same simulated APNs. Jobs arrive over IPC.
import http2 from 'node:http2';
import { serveJobs } from './ipc-worker.js';

interface ConnectJob {
  type: 'connect';
  url: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}
interface PushJob {
  type: 'push';
  topic: string;
  targets: Array<{ token: string; pushMagic: string }>;
  concurrency: number;
}

let session: http2.ClientHttp2Session | undefined;

function connect(job: ConnectJob): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(job.url, { ca: job.caPem, cert: job.certPem, key: job.keyPem, minVersion: 'TLSv1.2' });
    s.once('connect', () => resolve());
    s.once('error', reject);
    session = s;
  });
}

function pushOne(s: http2.ClientHttp2Session, topic: string, t: { token: string; pushMagic: string }): Promise<number> {
  const body = JSON.stringify({ mdm: t.pushMagic });
  return new Promise((resolve, reject) => {
    const req = s.request({
      ':method': 'POST', ':path': `/3/device/${t.token}`, 'apns-push-type': 'mdm', 'apns-topic': topic, 'content-length': Buffer.byteLength(body),
    });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', () => {});
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.end(body);
  });
}

async function push(job: PushJob): Promise<{ elapsedMs: number; statuses: Record<string, number> }> {
  const s = session;
  if (!s) throw new Error('push before connect');
  const statuses: Record<string, number> = {};
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(job.concurrency, job.targets.length) }, async () => {
    while (next < job.targets.length) {
      const status = await pushOne(s, job.topic, job.targets[next++]!);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }));
  return { elapsedMs: performance.now() - started, statuses };
}

serveJobs((job: ConnectJob | PushJob) => (job.type === 'connect' ? connect(job).then(() => ({})) : push(job)), () => session?.close());
