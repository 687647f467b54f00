// The node's public JSON-RPC (POST /) and WebSocket (/websocket), in CometBFT's shapes.

import { decode } from "./msgpack.js";
import { fromBase64, hex } from "./format.js";

let nextId = 1;

export class RPCError extends Error {
  constructor(code, message, data) {
    super(data ? `${message}: ${data}` : message);
    this.code = code;
    this.data = data;
  }
}

export class QueryError extends Error {
  constructor(path, code, log) {
    super(`${path}: ${log} (code ${code})`);
    this.code = code;
  }
}

export async function call(method, params = {}) {
  const response = await fetch("/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new RPCError(body.error.code, body.error.message, body.error.data);
  return body.result;
}

// An abci_query of a chaincode path: its value decoded, or a QueryError with the log.
// `height` 0 reads the latest state; a page that reads several paths pins one height.
export async function query(path, data = "", height = 0) {
  const bytes = new TextEncoder().encode(data);
  const answer = await call("abci_query", { path, data: hex(bytes), height: String(height) });
  const response = answer.response;
  if (response.code !== 0) throw new QueryError(path, response.code, response.log);
  return decode(fromBase64(response.value || ""));
}

// The node's events as they come: NewBlock and Tx, re-subscribed after a reconnect.
export class Live {
  constructor() {
    this.handlers = { block: new Set(), tx: new Set(), state: new Set() };
    this.state = "connecting";
    this.delay = 500;
    this.connect();
  }

  on(kind, handler) {
    this.handlers[kind].add(handler);
    return () => this.handlers[kind].delete(handler);
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/websocket`);
    socket.onopen = () => {
      this.delay = 500;
      this.setState("live");
      const subscribe = (id, query) =>
        socket.send(JSON.stringify({ jsonrpc: "2.0", id, method: "subscribe", params: { query } }));
      subscribe("blocks", "tm.event='NewBlock'");
      subscribe("txs", "tm.event='Tx'");
    };
    socket.onmessage = (message) => this.dispatch(JSON.parse(message.data));
    socket.onclose = () => {
      this.setState("reconnecting");
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  dispatch(message) {
    if (message.error) {
      // A refused subscription (the node's limit of subscribers, say): no events come.
      this.setState(`subscription refused: ${message.error.data || message.error.message}`);
      return;
    }
    const data = message.result && message.result.data;
    if (!data) return;
    if (data.type === "tendermint/event/NewBlock") this.emit("block", data.value);
    else if (data.type === "tendermint/event/Tx") this.emit("tx", data.value.TxResult);
  }

  // A handler that fails does not stop the others, nor end as an unhandled rejection.
  emit(kind, value) {
    for (const handler of [...this.handlers[kind]]) {
      try {
        Promise.resolve(handler(value)).catch((error) => this.failed(kind, error));
      } catch (error) {
        this.failed(kind, error);
      }
    }
  }

  failed(kind, error) {
    if (kind !== "state") this.setState(`a page failed on a ${kind} event: ${error.message}`);
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }
}
