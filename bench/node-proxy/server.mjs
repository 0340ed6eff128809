// Peer (f): the proxy a Clerk user would write in Node with the official SDK —
// authenticateRequest({acceptsToken: 'm2m_token'}) plus an LRU cache keyed by the token, and
// forwarding over a keep-alive agent. Used only by bench/run.sh, on loopback.
import http from 'node:http';
import { createClerkClient } from '@clerk/backend';
import { LRUCache } from 'lru-cache';

const [port, upstreamPort] = [Number(process.env.PORT), Number(process.env.UPSTREAM_PORT)];
const clerk = createClerkClient({
  apiUrl: process.env.CLERK_API_URL,
  secretKey: process.env.CLERK_SECRET_KEY,
  machineSecretKey: process.env.CLERK_MACHINE_SECRET_KEY,
});
const cache = new LRUCache({ max: 100000, ttl: 60_000 });
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });

async function authenticate(req) {
  const header = req.headers.authorization || '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : '';
  if (!token) return null;
  const hit = cache.get(token);
  if (hit) return hit;
  const request = new Request(`http://localhost${req.url}`, { headers: { authorization: header } });
  const state = await clerk.authenticateRequest(request, { acceptsToken: 'm2m_token' });
  if (!state.isAuthenticated) return null;
  const auth = state.toAuth();
  const identity = { subject: auth.subject, id: auth.id, scopes: (auth.scopes || []).join(',') };
  cache.set(token, identity);
  return identity;
}

http.createServer(async (req, res) => {
  let identity;
  try {
    identity = await authenticate(req);
  } catch {
    res.writeHead(503).end();
    return;
  }
  if (!identity) {
    res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
    return;
  }
  const headers = { ...req.headers };
  delete headers.authorization;
  for (const k of Object.keys(headers)) if (k.startsWith('x-clerk-')) delete headers[k];
  headers['x-clerk-subject'] = identity.subject;
  headers['x-clerk-token-id'] = identity.id;
  headers['x-clerk-scopes'] = identity.scopes;
  const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url,
                            headers, agent }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
  req.pipe(up);
}).listen(port, '127.0.0.1', () => console.log(`node-proxy listening on 127.0.0.1:${port}`));
