/**
 * The demo page's OAuth client (a public client): authorization code + PKCE against /o/authorize/,
 * the code and refresh grants at /o/token/, tokens kept in this tab's sessionStorage, never in a URL.
 */

import { challengeS256, randomToken } from "./pkce.js";

const PENDING_KEY = "widgetapp.oauth.pending";
const TOKENS_KEY = "widgetapp.oauth.tokens";
// Treat an access token this close to its expiry as expired when connecting.
const EXPIRY_MARGIN_MS = 1_000;
// The token endpoint unreachable (a worker restarting) is retried after these pauses, then reported.
const RETRY_PAUSES_MS = [250, 500, 1_000, 2_000, 4_000, 8_000];

/** A standard OAuth error (`error`, `error_description`) from a redirect or the token endpoint. */
export class OAuthError extends Error {
  constructor(error, description = "") {
    super(description ? `${error}: ${description}` : error);
    this.name = "OAuthError";
    this.error = error;
    this.description = description;
  }
}

/** Send the browser to the consent page; the callback page finishes with `completeAuthorization`. */
export async function beginAuthorization(config) {
  const verifier = randomToken();
  const state = randomToken(16);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    scope: config.scope,
    state,
    code_challenge: await challengeS256(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${config.authorizeUrl}?${query}`);
}

/** The token response for the callback's query (`code` + `state`, or an OAuth `error`). */
export async function completeAuthorization(config, query) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null");
  sessionStorage.removeItem(PENDING_KEY);
  if (query.has("error")) throw new OAuthError(query.get("error"), query.get("error_description") ?? "");
  if (!pending || !query.get("code") || query.get("state") !== pending.state) {
    throw new OAuthError("invalid_state", "This sign-in answer was not started by this page.");
  }
  const fields = {
    grant_type: "authorization_code",
    code: query.get("code"),
    redirect_uri: config.redirectUri,
    code_verifier: pending.verifier,
  };
  return retryUnreachable(() => tokenGrant(config, fields));
}

/** The tokens of the signed-in user, refreshed one grant at a time (refresh tokens rotate). */
export class Tokens {
  constructor(config) {
    this.config = config;
    this.current = this._load();
    this._refreshing = null;
  }

  /** The token response of a grant; kept for this tab only. */
  save(response) {
    const expiresAt = Date.now() + Number(response.expires_in) * 1000;
    this.current = { ...response, expires_at: expiresAt, user: this.config.user };
    sessionStorage.setItem(TOKENS_KEY, JSON.stringify(this.current));
  }

  clear() {
    this.current = null;
    sessionStorage.removeItem(TOKENS_KEY);
  }

  /** The streaming client's `getToken(reason)`: the stored token when still good, else a refresh. */
  async forClient(reason) {
    const current = this.current;
    if (reason === "connect" && current && current.expires_at - EXPIRY_MARGIN_MS > Date.now()) {
      return current.access_token;
    }
    return this.refresh();
  }

  /** Run the refresh grant (concurrent callers share it); resolves with the new access token. */
  refresh() {
    this._refreshing ??= this._refresh().finally(() => (this._refreshing = null));
    return this._refreshing;
  }

  /** Revoke both tokens at the server (sign-out); errors are ignored, the tokens are dropped. */
  async revoke() {
    const current = this.current;
    this.clear();
    if (!current) return;
    await Promise.allSettled(
      [current.refresh_token, current.access_token].filter(Boolean).map((token) =>
        post(this.config.revokeUrl, { token, client_id: this.config.clientId }),
      ),
    );
  }

  async _refresh() {
    const refreshToken = this.current?.refresh_token;
    if (!refreshToken) throw new OAuthError("invalid_grant", "There is no refresh token; sign in again.");
    const fields = { grant_type: "refresh_token", refresh_token: refreshToken };
    try {
      this.save(await retryUnreachable(() => tokenGrant(this.config, fields)));
    } catch (error) {
      // A refused grant will not succeed later (rotated or revoked token); a network error might.
      if (error instanceof OAuthError) this.clear();
      throw error;
    }
    return this.current.access_token;
  }

  _load() {
    const stored = JSON.parse(sessionStorage.getItem(TOKENS_KEY) ?? "null");
    return stored?.user === this.config.user ? stored : null; // another account signed in meanwhile
  }
}

async function tokenGrant(config, fields) {
  const response = await post(config.tokenUrl, { client_id: config.clientId, ...fields });
  if (response.status >= 500) throw new TypeError(`the token endpoint answered ${response.status}`);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new OAuthError(body.error ?? `http_${response.status}`, body.error_description ?? "");
  }
  return body;
}

/** `call()`, again after a network failure (fetch's TypeError) or a 5xx; OAuth errors are final. */
async function retryUnreachable(call) {
  for (const pause of RETRY_PAUSES_MS) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
  return call();
}

function post(url, fields) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
    credentials: "omit", // the token endpoint authenticates the grant, not the session cookie
  });
}
