// A real OpenID Connect provider (panva/oidc-provider 9.x) for Dispatch's identity tests.
//
//   node provider.js --port 4100 [--audience urn:dispatch:api] [--redirect-uri URI ...]
//
// It listens on 127.0.0.1:<port> with issuer http://127.0.0.1:<port>, signs with a
// freshly generated RS256 key (so no key is shared between runs), and prints one JSON
// line {"issuer": ...} on stdout once it accepts connections. Test clients:
//
// * dispatch-test / dispatch-test-secret: authorization code (PKCE optional, as for
//   any confidential client; refresh tokens) and client credentials. Its redirect URIs are the --redirect-uri arguments (and
//   http://127.0.0.1/callback). The login page is oidc-provider's development
//   interaction: any login name with any password signs in as that account.
// * dispatch-short / dispatch-short-secret: client credentials only; its access tokens
//   live one second (to test expiry with a genuinely expired token).
//
// Access tokens requested with resource=<--audience> (RFC 8707, on /auth and /token)
// are JWTs (RS256) with aud = that indicator and scope "dispatch"; user tokens carry the
// account's email (the login itself if it contains "@", else <login>@example.test).
// Without a resource the access token is opaque and only good for /me (userinfo): what
// a browser login through flask-oidc gets (it reads the profile from userinfo).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    audience: { type: 'string', default: 'urn:dispatch:api' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
  },
});
if (!args.port) {
  console.error('usage: node provider.js --port PORT [--audience URI] [--redirect-uri URI ...]');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${args.port}`;
const RESOURCE_SCOPE = 'dispatch';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

function emailOf(accountId) {
  return accountId.includes('@') ? accountId : `${accountId}@example.test`;
}

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  clients: [
    {
      client_id: 'dispatch-test',
      client_secret: 'dispatch-test-secret',
      grant_types: ['authorization_code', 'client_credentials', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', ...args['redirect-uri']],
    },
    {
      client_id: 'dispatch-short',
      client_secret: 'dispatch-short-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'email', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  async findAccount(_ctx, accountId) {
    return {
      accountId,
      async claims() {
        return { sub: accountId, email: emailOf(accountId), email_verified: true };
      },
    };
  },
  async extraTokenClaims(_ctx, token) {
    if (!token.accountId) return undefined;
    // a login starting with "unverified-" has an address the provider has not verified
    return { email: emailOf(token.accountId), email_verified: !token.accountId.startsWith('unverified-') };
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      useGrantedResource: () => true,
      async getResourceServerInfo(_ctx, resourceIndicator, client) {
        if (resourceIndicator !== args.audience) throw new errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPE,
          audience: args.audience,
          accessTokenTTL: client.clientId === 'dispatch-short' ? 1 : 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

const server = provider.listen(Number(args.port), '127.0.0.1', () => {
  console.log(JSON.stringify({ issuer, audience: args.audience }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
