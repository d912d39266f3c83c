// JSON in and out over node:http, with Apple's ErrorResponse body ({errorInfo?, errorMessage, errorNumber}).
import type http from 'node:http';
import { ApiError } from './apple-api.js';

const MAX_BODY = 10 * 1024 * 1024;

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: http.ServerResponse, e: ApiError, headers: Record<string, string> = {}) {
  sendJson(res, e.status, { ...(e.errorInfo ? { errorInfo: e.errorInfo } : {}), errorMessage: e.message, errorNumber: e.errorNumber }, headers);
}

export function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        // Apple documents no number for an oversized body; 9602 "Invalid argument" with 413 is the simulator's pick.
        reject(new ApiError(9602, undefined, 413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function jsonBody(req: http.IncomingMessage, raw: Buffer): unknown {
  const type = String(req.headers['content-type'] ?? '').toLowerCase();
  if (!type.startsWith('application/json')) throw new ApiError(9727);
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(9602);
  }
}
