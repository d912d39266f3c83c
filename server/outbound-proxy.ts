import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent, ProxyAgent, fetch as undiciFetch } from 'undici';

// Outbound traffic to Apple (APNs and Apps and Books) through the proxy named by HTTPS_PROXY / HTTP_PROXY,
// except for hosts NO_PROXY lists. Apple documents nothing about proxies: this follows the usual conventions
// (curl, undici's EnvHttpProxyAgent). APNs authenticates with the push certificate as TLS client certificate, so
// it needs a CONNECT tunnel through which TLS runs end to end; a TLS-intercepting proxy cannot carry it.

export interface ProxySettings {
  /** Proxy for https:// destinations (HTTPS_PROXY). */
  httpsProxy?: string;
  /** Proxy for http:// destinations (HTTP_PROXY); the simulated services in local tests are http. */
  httpProxy?: string;
  /**
   * Destinations reached directly (NO_PROXY): comma- or space-separated host names, each optionally with :port;
   * a name also covers its subdomains, a leading "." or "*." is ignored; "*" alone turns the proxy off.
   */
  noProxy?: string;
}

export class ProxyConfigError extends Error {
  override name = 'ProxyConfigError';
}

/** The proxy to reach `target` through, or undefined to go direct. */
export function proxyFor(target: URL, settings: ProxySettings): URL | undefined {
  const proxy = target.protocol === 'https:' ? settings.httpsProxy : target.protocol === 'http:' ? settings.httpProxy : undefined;
  if (!proxy || bypassed(target, settings.noProxy ?? '')) return undefined;
  return new URL(proxy);
}

function bypassed(target: URL, noProxy: string): boolean {
  const entries = noProxy.split(/[,\s]+/).map((e) => e.trim().toLowerCase()).filter(Boolean);
  if (entries.includes('*')) return true;
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
  return entries.some((entry) => {
    const m = /^(.+?)(?::(\d+))?$/.exec(entry.replace(/^\[(.+)\](:\d+)?$/, '$1$2'))!;
    if (m[2] && Number(m[2]) !== port) return false;
    const name = m[1]!.replace(/^\*?\./, '');
    return host === name || host.endsWith(`.${name}`);
  });
}

/** Checks the settings once, at start-up, so a typo stops the server instead of every call to Apple. */
export function checkProxySettings(settings: ProxySettings): void {
  for (const [name, value] of [['HTTPS_PROXY', settings.httpsProxy], ['HTTP_PROXY', settings.httpProxy]] as const) {
    if (!value) continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new ProxyConfigError(`${name} is not a URL: "${value}" (expected e.g. http://proxy.example:3128)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ProxyConfigError(`${name} must be an http:// or https:// proxy URL, got "${value}"`);
    }
  }
}

const configured = (s: ProxySettings) => Boolean(s.httpsProxy || s.httpProxy);

/**
 * fetch for the Apps and Books client: through undici's ProxyAgent (a CONNECT tunnel per origin) where a proxy
 * applies, direct otherwise. Undefined when no proxy is configured: the client then uses the global fetch.
 */
export function proxyAwareFetch(settings: ProxySettings): typeof fetch | undefined {
  if (!configured(settings)) return undefined;
  const direct = new Agent();
  const agents = new Map<string, ProxyAgent>();
  const agentFor = (proxy: URL) => {
    let agent = agents.get(proxy.href);
    if (!agent) agents.set(proxy.href, (agent = new ProxyAgent(proxy.href)));
    return agent;
  };
  return ((input: string | URL | Request, init?: RequestInit) => {
    const target = new URL(input instanceof Request ? input.url : String(input));
    const proxy = proxyFor(target, settings);
    return undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as object), dispatcher: proxy ? agentFor(proxy) : direct });
  }) as typeof fetch;
}

/**
 * The APNs sender's `tunnel`: an HTTP CONNECT through the proxy for host:port (node's http/https client),
 * or undefined when that destination is reached directly.
 */
export function apnsTunnel(apnsUrl: string, settings: ProxySettings, timeoutMs = 10_000): ((host: string, port: number) => Promise<Duplex>) | undefined {
  const proxy = proxyFor(new URL(apnsUrl), settings);
  if (!proxy) return undefined;
  return (host, port) => connectTunnel(proxy, host, port, timeoutMs);
}

export function connectTunnel(proxy: URL, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const headers: http.OutgoingHttpHeaders = { host: authority };
  if (proxy.username) {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  const client = proxy.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request({
      host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port) || (proxy.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT', path: authority, headers, agent: false,
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`proxy ${proxy.host} did not answer CONNECT ${authority} within ${timeoutMs} ms`)));
    req.once('connect', (res, socket, head) => {
      req.setTimeout(0);
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`proxy ${proxy.host} refused CONNECT ${authority}: HTTP ${res.statusCode}`));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('error', (err) => reject(new Error(`proxy ${proxy.host}: ${err.message}`)));
    req.end();
  });
}
