/** What the streaming client rejects with: a server `error`, a lost connection, a stopped client. */

/** An `error` reply to one of our messages. */
export class ServerError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "ServerError";
    this.code = code;
  }
}

/** The connection dropped before the reply came; the request may or may not have run. */
export class ConnectionLost extends Error {
  constructor(message) {
    super(message);
    this.name = "ConnectionLost";
  }
}

/** The client stopped: a terminal close (4400/4401/4403) or `close()`. */
export class ClientClosed extends Error {
  constructor(code, reason) {
    super(`connection closed (${code}): ${reason}`);
    this.name = "ClientClosed";
    this.code = code;
    this.reason = reason;
  }
}
