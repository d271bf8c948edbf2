// A real OAuth2 authorization server for Plugboard's OAuth tests: oauth2-mock-server (pinned in
// package.json) on a loopback port, made strict where a real provider is and the mock is not:
//
//   - /authorize requires PKCE with S256 (the mock itself then checks the verifier at /token);
//   - /token authenticates the client (HTTP Basic or client_id/client_secret in the body);
//   - an authorization code is used once, and only with a code_verifier;
//   - refresh tokens rotate: each is valid once, and the response carries the next one;
//   - access tokens expire in EXPIRES_IN seconds (settable), or at once on /control/expire.
//
// A second loopback port serves the control API the Go test drives:
//
//   GET  /stats                  counts by grant, and the refresh tokens presented and issued
//   GET  /check?token=T          {"valid": bool}: T was issued here and has not expired
//   POST /expire                 every access token issued so far expires now
//   POST /revoke                 every refresh token issued so far is revoked
//   POST /config {"expires_in"}  lifetime of the next tokens, in seconds
//
// On start it prints one JSON line, {"issuer": "http://127.0.0.1:P", "control": "http://..."},
// and it exits when its standard input closes (the test process ended).
//
// Usage: CLIENT_ID=id CLIENT_SECRET=secret node server.mjs
import http from 'node:http';
import { OAuth2Server } from 'oauth2-mock-server';
import basicAuth from 'basic-auth';
import { randomUUID } from 'node:crypto';

const clientID = process.env.CLIENT_ID || 'plugboard-test';
const clientSecret = process.env.CLIENT_SECRET || 'client-secret';
let expiresIn = Number(process.env.EXPIRES_IN || 3600);

const codes = new Set(); // authorization codes issued and not yet used
const refreshValid = new Set(); // refresh tokens that may be used (once)
const access = new Map(); // access token -> expiry (ms since epoch)
const stats = {
  authorize: 0,
  authorization_code: 0,
  refresh_token: 0,
  client_credentials: 0,
  refused: 0,
  refresh_presented: [],
  refresh_issued: [],
};

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
const service = server.service;

service.on('beforeAuthorizeRedirect', (redirect, req) => {
  stats.authorize++;
  const q = req.query;
  const url = redirect.url;
  if (q.code_challenge_method !== 'S256' || !q.code_challenge) {
    url.searchParams.delete('code');
    url.searchParams.set('error', 'invalid_request');
    url.searchParams.set('error_description', 'PKCE with S256 is required');
    return;
  }
  codes.add(url.searchParams.get('code'));
});

// Every token is distinct, even two issued in the same second with the same claims.
service.on('beforeTokenSigning', (token) => {
  token.payload.jti = randomUUID();
});

function refuse(res, status, error, description) {
  stats.refused++;
  res.statusCode = status;
  res.body = { error, error_description: description };
}

service.on('beforeResponse', (res, req) => {
  const body = req.body;
  const grant = body.grant_type;
  if (grant in stats) stats[grant]++;
  const creds = basicAuth(req);
  const id = creds ? creds.name : body.client_id;
  const secret = creds ? creds.pass : body.client_secret;
  if (id !== clientID || secret !== clientSecret) {
    return refuse(res, 401, 'invalid_client', 'unknown client or wrong secret');
  }
  if (res.statusCode !== 200) {
    return;
  }
  switch (grant) {
    case 'authorization_code':
      if (!codes.delete(body.code)) {
        return refuse(res, 400, 'invalid_grant', 'unknown or already used code');
      }
      if (!body.code_verifier) {
        return refuse(res, 400, 'invalid_grant', 'code_verifier required (PKCE)');
      }
      break;
    case 'refresh_token':
      stats.refresh_presented.push(body.refresh_token);
      if (!refreshValid.delete(body.refresh_token)) {
        return refuse(res, 400, 'invalid_grant', 'refresh token revoked, used or unknown');
      }
      break;
    case 'client_credentials':
      break;
    default:
      return refuse(res, 400, 'unsupported_grant_type', grant);
  }
  res.body.expires_in = expiresIn;
  access.set(res.body.access_token, Date.now() + expiresIn * 1000);
  if (res.body.refresh_token) {
    refreshValid.add(res.body.refresh_token);
    stats.refresh_issued.push(res.body.refresh_token);
  }
});

await server.start(0, '127.0.0.1');

function readJSON(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      try {
        resolve(data ? JSON.parse(data) : {});
      } catch {
        resolve({});
      }
    });
  });
}

const control = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://control');
  const reply = (v) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(v));
  };
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /stats':
      return reply(stats);
    case 'GET /check': {
      const exp = access.get(url.searchParams.get('token'));
      return reply({ valid: exp !== undefined && exp > Date.now() });
    }
    case 'POST /expire':
      for (const t of access.keys()) access.set(t, 0);
      return reply({});
    case 'POST /revoke':
      refreshValid.clear();
      return reply({});
    case 'POST /config': {
      const cfg = await readJSON(req);
      if (typeof cfg.expires_in === 'number') expiresIn = cfg.expires_in;
      return reply({});
    }
  }
  res.statusCode = 404;
  res.end();
});
await new Promise((resolve) => control.listen(0, '127.0.0.1', resolve));

process.stdout.write(
  JSON.stringify({ issuer: `http://127.0.0.1:${server.address().port}`, control: `http://127.0.0.1:${control.address().port}` }) + '\n',
);

const stop = async () => {
  control.close();
  await server.stop();
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
