// The configuration read at start-up: PUBLIC_URL must be https unless it names a loopback address (issue 8.16).
import { describe, expect, it } from 'vitest';
import { startServer } from '../server/app.js';
import { isLoopbackHost } from '../mdm/profile.js';
import { ConfigError, loadConfig } from '../server/config.js';

describe('PUBLIC_URL', () => {
  it('takes https anywhere, and plain http on loopback addresses only', () => {
    for (const url of ['https://mdm.school.example', 'https://mdm.school.example:8443/base', 'http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080', 'http://127.5.6.7']) {
      expect(loadConfig({ PUBLIC_URL: url }).publicUrl, url).toBe(url);
    }
  });

  it('refuses plain http on a host real devices would reach, saying what to do', () => {
    for (const url of ['http://mdm.school.example', 'http://192.168.1.10:8080', 'http://10.0.0.1', 'http://[fe80::1]:8080', 'http://0.0.0.0:8080']) {
      expect(() => loadConfig({ PUBLIC_URL: url }), url).toThrow(ConfigError);
    }
    expect(() => loadConfig({ PUBLIC_URL: 'http://mdm.school.example:8080' })).toThrow(
      /Apple requires https for the MDM ServerURL and CheckInURL.*set PUBLIC_URL=https:\/\/mdm\.school\.example:8080/,
    );
    expect(() => loadConfig({ PUBLIC_URL: 'ftp://mdm.school.example' })).toThrow(/must start with https:\/\//);
    expect(() => loadConfig({ PUBLIC_URL: 'mdm.school.example' })).toThrow(/not a URL/);
  });

  it('stops the server before it opens anything', async () => {
    await expect(startServer({ env: { PUBLIC_URL: 'http://mdm.school.example' }, dataDir: '/nonexistent/never-created', logLevel: 'silent' }))
      .rejects.toThrow(ConfigError);
  });

  it('knows loopback hosts', () => {
    expect(['localhost', 'LOCALHOST', 'a.localhost', '127.0.0.1', '[::1]', '::ffff:127.0.0.1'].every(isLoopbackHost)).toBe(true);
    expect(['localhost.example', '128.0.0.1', '0.0.0.0', '::', 'example.test'].some(isLoopbackHost)).toBe(false);
  });
});
