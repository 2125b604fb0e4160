// A real OpenID provider for Floe's authentication tests: panva's certified `oidc-provider`,
// configured, not imitated. It issues JWT access tokens (RFC 9068) for client credentials, and
// has one test-only grant that mints a token for a named user, so tests can act as several people.
//
//   node server.mjs CLIENTS_JSON
//
// CLIENTS_JSON: a list of {"client_id", "client_secret", "token_endpoint_auth_method"}.
// Prints one JSON line {"issuer": ...} on stdout once it listens (on a free port of 127.0.0.1).
//
// Audiences (resource indicators): `urn:floe:catalog` (RS256, the default when a client names
// none), `urn:floe:catalog:ps256`, `urn:floe:catalog:es256`, `urn:floe:catalog:eddsa`, each
// signed with that algorithm, and `urn:floe:other` (RS256).
//
// Also one public client, `floe-console` (a native app on loopback, so any port of
// http://127.0.0.1/ui/ is a valid redirect), for the web console's sign-in with the authorization
// code flow and PKCE; its interactions are the provider's development login and consent pages
// (any login name is accepted, and becomes the user's `sub`). `GET /test/stats` answers
// {"jwks": <requests to the JWKS so far>, "discovery": <requests for the discovery document>}.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const clients = JSON.parse(process.argv[2] || '[]');

function jwk(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

const keys = [
  jwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs256-key'),
  jwk('rsa', { modulusLength: 2048 }, 'PS256', 'ps256-key'),
  jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es256-key'),
  jwk('ed25519', {}, 'EdDSA', 'eddsa-key'),
];

const DEFAULT_AUDIENCE = 'urn:floe:catalog';
const AUDIENCES = {
  [DEFAULT_AUDIENCE]: 'RS256',
  'urn:floe:catalog:ps256': 'PS256',
  'urn:floe:catalog:es256': 'ES256',
  'urn:floe:catalog:eddsa': 'EdDSA',
  // Not accepted by the tests' Floe: for wrong-audience tokens.
  'urn:floe:other': 'RS256',
};
const SCOPES = ['catalog', 'floe', 'PRINCIPAL_ROLE:ALL'];
const USER_GRANT = 'urn:floe:test:user-token';

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const CONSOLE_CLIENT = {
  client_id: 'floe-console',
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/ui/'],
  scope: ['openid', ...SCOPES].join(' '),
};

const provider = new Provider(issuer, {
  clients: [
    ...clients.map((c) => ({
      grant_types: ['client_credentials', USER_GRANT],
      redirect_uris: [],
      response_types: [],
      scope: SCOPES.join(' '),
      ...c,
    })),
    CONSOLE_CLIENT,
  ],
  // The console runs on a port chosen at random: any loopback origin may call the token
  // endpoint for it.
  clientBasedCORS: (_ctx, origin, client) =>
    client.clientId === CONSOLE_CLIENT.client_id && /^http:\/\/127\.0\.0\.1:\d+$/.test(origin),
  jwks: { keys },
  scopes: ['openid', ...SCOPES],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => DEFAULT_AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        const alg = AUDIENCES[resource];
        if (!alg) throw new Error(`unknown resource ${resource}`);
        return {
          scope: SCOPES.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg } },
        };
      },
    },
  },
  enabledJWA: {
    requestObjectSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  },
  extraTokenClaims: (_ctx, token) => token.extra,
});

// The test-only grant: a token for a named user, with optional claims and lifetime.
// Parameters: sub, name, email, scope, resource, ttl (seconds), claims (a JSON object).
provider.registerGrantType(
  USER_GRANT,
  async (ctx) => {
    const { params, client } = ctx.oidc;
    const resource = params.resource || DEFAULT_AUDIENCE;
    const alg = AUDIENCES[resource];
    if (!alg) throw new Error(`unknown resource ${resource}`);
    const resourceServer = new provider.ResourceServer(resource, {
      scope: SCOPES.join(' '),
      audience: resource,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg } },
    });
    const extra = {
      ...(params.name ? { name: params.name } : {}),
      ...(params.email ? { email: params.email } : {}),
      ...(params.claims ? JSON.parse(params.claims) : {}),
    };
    const token = new provider.AccessToken({
      accountId: params.sub,
      client,
      resourceServer,
      scope: params.scope || 'catalog',
      extra,
      expiresIn: params.ttl ? Number(params.ttl) : 3600,
    });
    const value = await token.save();
    ctx.body = {
      access_token: value,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope: token.scope,
    };
  },
  ['sub', 'name', 'email', 'scope', 'resource', 'ttl', 'claims'],
);

let jwksHits = 0;
let discoveryHits = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/stats') {
    ctx.body = { jwks: jwksHits, discovery: discoveryHits };
    return;
  }
  if (ctx.path === '/jwks') jwksHits += 1;
  if (ctx.path === '/.well-known/openid-configuration') discoveryHits += 1;
  await next();
});

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
