// A real OpenID provider (npm oidc-provider) for oscar-py's tests; tests/support/oidc.py runs it.
//
//   node provider.mjs <accounts.json>
//
// Listens on a free port of 127.0.0.1 and prints "READY <issuer>" once it answers. The accounts
// file maps each subject to the claims its tokens carry ({"name": ..., "eduperson_entitlement":
// [...]}). Clients (public, PKCE):
//   oscar-test    JWT access tokens (RS256) for the resource http://127.0.0.1/oscar, refresh tokens
//   oscar-short   the same, but access tokens live 1 second
//   oscar-opaque  opaque access tokens, which only userinfo understands
//   oscar-dashboard  a confidential client (secret "oscar-dashboard-secret") for oscar-py's
//                 dashboard, redirecting to http://127.0.0.1:<any port>/ui/login/callback
// GET /interaction/<uid> signs in the account named by the authorization request's login_hint
// and grants what it asked: a test drives the code flow with plain HTTP requests. Without a
// login_hint it shows a sign-in form (field "login"), which a browser submits the same way.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const RESOURCE = 'http://127.0.0.1/oscar';
const REDIRECT = 'http://127.0.0.1/callback';
const SCOPE = 'openid offline_access profile';
const accounts = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const DASHBOARD = {
  client_id: 'oscar-dashboard',
  client_secret: 'oscar-dashboard-secret',
  application_type: 'native', // loopback redirect URIs match on any port (RFC 8252)
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/ui/login/callback'],
};

const readForm = (req) =>
  new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
  });

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };

const client = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [REDIRECT],
});

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [client('oscar-test'), client('oscar-short'), client('oscar-opaque'), DASHBOARD],
    jwks: { keys: [jwk] },
    cookies: { keys: ['oscar-py-test-cookies'] },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'profile'],
    claims: { openid: ['sub'], profile: ['name', 'eduperson_entitlement'] },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, oidcClient) =>
          oidcClient.clientId === 'oscar-opaque' ? undefined : RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, oidcClient) => ({
          scope: SCOPE,
          audience: RESOURCE,
          accessTokenTTL: oidcClient.clientId === 'oscar-short' ? 1 : 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    findAccount: async (ctx, sub) =>
      accounts[sub] && { accountId: sub, claims: async () => ({ sub, ...accounts[sub] }) },
    extraTokenClaims: async (ctx, token) => {
      const account = accounts[token.accountId];
      return account ? { ...account } : undefined;
    },
    issueRefreshToken: async (ctx, oidcClient) => oidcClient.grantTypeAllowed('refresh_token'),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  });

  provider.use(async (ctx, next) => {
    if (!['GET', 'POST'].includes(ctx.method) || !ctx.path.startsWith('/interaction/')) {
      return next();
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let sub = details.params.login_hint;
    if (ctx.method === 'POST') sub = (await readForm(ctx.req)).get('login');
    else if (!sub) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Test issuer</title><form method="post">
        <label>Account <input name="login" autofocus></label>
        <button type="submit">Sign in</button></form>`;
      return undefined;
    }
    if (!accounts[sub]) {
      ctx.status = 400;
      ctx.body = `unknown account ${sub}`;
      return undefined;
    }
    const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
    grant.addOIDCScope(SCOPE);
    grant.addOIDCClaims(['name', 'eduperson_entitlement']);
    grant.addResourceScope(RESOURCE, SCOPE);
    const grantId = await grant.save();
    return provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  });

  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});
