/**
 * PKCE (RFC 7636) helpers for the demo page: a random code verifier and its S256 challenge.
 */

const VERIFIER_BYTES = 48; // 64 URL-safe characters, inside the 43–128 RFC 7636 allows

/** base64url without padding, as RFC 7636 wants it. */
export function base64url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A random URL-safe string from `bytes` random bytes (verifiers and `state`). */
export function randomToken(bytes = VERIFIER_BYTES) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** code_challenge = BASE64URL(SHA-256(code_verifier)). */
export async function challengeS256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(digest);
}
