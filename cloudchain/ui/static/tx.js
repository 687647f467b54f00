// Transactions: read from a block, and built and signed in the page.
//
// A key file is the CLI's (`cloudchain keys`): JSON whose priv_key.value is base64 of the
// 32-byte Ed25519 seed and the public key. It is read in the page and imported into
// WebCrypto, not extractable; it is never sent anywhere. Only the signed transaction
// leaves the page.

import { encode, decode } from "./msgpack.js";
import { fromBase64, hex, toBase64 } from "./format.js";
import { call, query } from "./rpc.js";

const TX_SIGN_DOMAIN = new TextEncoder().encode("cloudchain/tx/v1\x00");
// PKCS #8 for an Ed25519 key (RFC 8410): this header, then the 32-byte seed.
const PKCS8_ED25519 = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const MAX_PRICING_ROUNDS = 8;

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function addressOf(publicKey) {
  return hex((await sha256(publicKey)).slice(0, 20));
}

// A transaction from its base64: its fields, its hash (upper-case hex, as the RPC's)
// and its sender's address.
export async function readTx(base64) {
  const bytes = fromBase64(base64);
  const fields = decode(bytes);
  return {
    ...fields,
    bytes,
    hash: hex(await sha256(bytes)).toUpperCase(),
    from: fields.sender instanceof Uint8Array ? await addressOf(fields.sender) : "?",
  };
}

export class KeyFileError extends Error {}

export class Signer {
  constructor(privateKey, publicKey, address) {
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.address = address;
  }

  static async fromKeyFile(text) {
    let raw;
    try {
      const document = JSON.parse(text);
      if (document.priv_key.type !== "tendermint/PrivKeyEd25519") {
        throw new KeyFileError(`unsupported key type ${document.priv_key.type}`);
      }
      raw = fromBase64(document.priv_key.value);
    } catch (error) {
      if (error instanceof KeyFileError) throw error;
      throw new KeyFileError(`not a CloudChain key file: ${error.message}`);
    }
    if (raw.length !== 64) throw new KeyFileError(`a private key is 64 bytes, got ${raw.length}`);
    const seed = raw.slice(0, 32);
    const publicKey = raw.slice(32);
    const pkcs8 = new Uint8Array(PKCS8_ED25519.length + 32);
    pkcs8.set(PKCS8_ED25519);
    pkcs8.set(seed, PKCS8_ED25519.length);
    const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", false, ["sign"]);
    seed.fill(0);
    pkcs8.fill(0);
    raw.fill(0);
    // Verify that the public key is the private key's: sign, and check with it.
    const verifier = await crypto.subtle.importKey("raw", publicKey, "Ed25519", false, ["verify"]);
    const probe = new TextEncoder().encode("cloudchain key check");
    const signature = await crypto.subtle.sign("Ed25519", privateKey, probe);
    if (!(await crypto.subtle.verify("Ed25519", verifier, signature, probe))) {
      throw new KeyFileError("the public key does not match the private key");
    }
    return new Signer(privateKey, publicKey, await addressOf(publicKey));
  }

  // module.method(args) signed with the account's next nonce, paying the chain's minimum
  // fee for its own bytes (found as fees.priced_transaction finds it: the fee is part of
  // what it prices). Returns the transaction's bytes.
  // `nonce`: the one to sign with (a sequence of transactions in one block), else the
  // account's next as committed.
  async sign(module, method, args, nonce = null) {
    const chainId = (await call("status")).node_info.network;
    if (nonce === null) nonce = (await query("/auth/nonce", this.address)).nonce;
    let fee = 0;
    for (let round = 0; round < MAX_PRICING_ROUNDS; round++) {
      const body = {
        chain_id: chainId,
        sender: this.publicKey,
        nonce,
        fee,
        module,
        method,
        args,
      };
      const unsigned = encode({ ...body, signature: new Uint8Array(64) });
      const minimum = await query("/fees/min", `bytes=${unsigned.length}&method=${module}.${method}`);
      const needed = Number(minimum.min_fee);
      if (needed <= fee) {
        const bodyBytes = encode(body);
        const message = new Uint8Array(TX_SIGN_DOMAIN.length + bodyBytes.length);
        message.set(TX_SIGN_DOMAIN);
        message.set(bodyBytes, TX_SIGN_DOMAIN.length);
        const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", this.privateKey, message));
        return encode({ ...body, signature });
      }
      fee = needed;
    }
    throw new Error(`the fee of ${module}.${method} did not settle`);
  }

  // Sign and broadcast, waiting for the block: the commit result (check_tx, tx_result).
  async submit(module, method, args, nonce = null) {
    const tx = await this.sign(module, method, args, nonce);
    return call("broadcast_tx_commit", { tx: toBase64(tx) });
  }
}

// The check or the execution that refused a committed broadcast, or null if neither did.
export function failure(committed) {
  if (committed.check_tx.code !== 0) return committed.check_tx;
  return committed.tx_result.code !== 0 ? committed.tx_result : null;
}
