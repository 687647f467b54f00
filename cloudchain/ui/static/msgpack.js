// CloudChain's canonical msgpack (cloudchain/codec.py), for transactions and query values.
//
// encode: maps with keys sorted by their UTF-8 bytes, every integer and length in its
// shortest form, bytes as bin, no floats. That is what the chain signs and hashes, so a
// transaction built here has the bytes the Python client would build.
// decode: integers as Numbers, or BigInts past 2^53; bin as Uint8Array; maps as objects
// without a prototype (a key "__proto__" is a key like any other).

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export class CodecError extends Error {}

export function encode(value) {
  const out = [];
  write(value, out, 0);
  return Uint8Array.from(out);
}

function write(value, out, depth) {
  if (depth > 32) throw new CodecError("nested too deep");
  if (value === null || value === undefined) out.push(0xc0);
  else if (value === false) out.push(0xc2);
  else if (value === true) out.push(0xc3);
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new CodecError(`not an integer: ${value}`);
    writeInt(BigInt(value), out);
  } else if (typeof value === "bigint") writeInt(value, out);
  else if (typeof value === "string") {
    const bytes = utf8.encode(value);
    header(bytes.length, out, 0xa0, 32, 0xd9, 0xda, 0xdb);
    pushAll(out, bytes);
  } else if (value instanceof Uint8Array) {
    header(value.length, out, null, 0, 0xc4, 0xc5, 0xc6);
    pushAll(out, value);
  } else if (Array.isArray(value)) {
    header(value.length, out, 0x90, 16, null, 0xdc, 0xdd);
    for (const item of value) write(item, out, depth + 1);
  } else if (typeof value === "object") {
    const entries = Object.keys(value).map((key) => [utf8.encode(key), key]);
    entries.sort((a, b) => compareBytes(a[0], b[0]));
    header(entries.length, out, 0x80, 16, null, 0xde, 0xdf);
    for (const [keyBytes, key] of entries) {
      header(keyBytes.length, out, 0xa0, 32, 0xd9, 0xda, 0xdb);
      pushAll(out, keyBytes);
      write(value[key], out, depth + 1);
    }
  } else throw new CodecError(`cannot encode a ${typeof value}`);
}

function pushAll(out, bytes) {
  for (const byte of bytes) out.push(byte);
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// A length's header: fix (when `fixBase` is given and n < fixLimit), then 8, 16, 32 bits.
function header(n, out, fixBase, fixLimit, code8, code16, code32) {
  if (fixBase !== null && n < fixLimit) out.push(fixBase | n);
  else if (code8 !== null && n < 0x100) out.push(code8, n);
  else if (n < 0x10000) out.push(code16, n >> 8, n & 0xff);
  else out.push(code32, ...bigEndian(BigInt(n), 4));
}

function writeInt(n, out) {
  if (n >= 0n) {
    if (n < 0x80n) out.push(Number(n));
    else if (n < 0x100n) out.push(0xcc, Number(n));
    else if (n < 0x10000n) out.push(0xcd, ...bigEndian(n, 2));
    else if (n < 0x100000000n) out.push(0xce, ...bigEndian(n, 4));
    else if (n < 2n ** 64n) out.push(0xcf, ...bigEndian(n, 8));
    else throw new CodecError("integer out of range");
  } else if (n >= -32n) out.push(Number(n) & 0xff);
  else if (n >= -128n) out.push(0xd0, Number(n) & 0xff);
  else if (n >= -32768n) out.push(0xd1, ...bigEndian(n & 0xffffn, 2));
  else if (n >= -(2n ** 31n)) out.push(0xd2, ...bigEndian(n & 0xffffffffn, 4));
  else if (n >= -(2n ** 63n)) out.push(0xd3, ...bigEndian(n & (2n ** 64n - 1n), 8));
  else throw new CodecError("integer out of range");
}

function bigEndian(n, width) {
  const bytes = [];
  for (let i = width - 1; i >= 0; i--) bytes.push(Number((n >> BigInt(8 * i)) & 0xffn));
  return bytes;
}

export function decode(bytes) {
  const reader = { bytes, at: 0, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length) };
  const value = read(reader, 0);
  if (reader.at !== bytes.length) throw new CodecError("trailing bytes");
  return value;
}

function take(r, n) {
  if (r.at + n > r.bytes.length) throw new CodecError("truncated");
  const start = r.at;
  r.at += n;
  return start;
}

function uint(r, width) {
  const at = take(r, width);
  if (width === 1) return r.view.getUint8(at);
  if (width === 2) return r.view.getUint16(at);
  if (width === 4) return r.view.getUint32(at);
  return integer(r.view.getBigUint64(at));
}

function integer(big) {
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(big)
    : big;
}

function read(r, depth) {
  if (depth > 32) throw new CodecError("nested too deep");
  const code = r.bytes[take(r, 1)];
  if (code < 0x80) return code;
  if (code < 0x90) return readMap(r, code & 0x0f, depth);
  if (code < 0xa0) return readArray(r, code & 0x0f, depth);
  if (code < 0xc0) return readStr(r, code & 0x1f);
  if (code >= 0xe0) return code - 0x100;
  switch (code) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return readBin(r, uint(r, 1));
    case 0xc5:
      return readBin(r, uint(r, 2));
    case 0xc6:
      return readBin(r, uint(r, 4));
    case 0xcc:
      return uint(r, 1);
    case 0xcd:
      return uint(r, 2);
    case 0xce:
      return uint(r, 4);
    case 0xcf:
      return uint(r, 8);
    case 0xd0:
      return r.view.getInt8(take(r, 1));
    case 0xd1:
      return r.view.getInt16(take(r, 2));
    case 0xd2:
      return r.view.getInt32(take(r, 4));
    case 0xd3:
      return integer(r.view.getBigInt64(take(r, 8)));
    case 0xd9:
      return readStr(r, uint(r, 1));
    case 0xda:
      return readStr(r, uint(r, 2));
    case 0xdb:
      return readStr(r, uint(r, 4));
    case 0xdc:
      return readArray(r, uint(r, 2), depth);
    case 0xdd:
      return readArray(r, uint(r, 4), depth);
    case 0xde:
      return readMap(r, uint(r, 2), depth);
    case 0xdf:
      return readMap(r, uint(r, 4), depth);
    default:
      throw new CodecError(`unsupported type 0x${code.toString(16)}`);
  }
}

function readBin(r, n) {
  const at = take(r, n);
  return r.bytes.slice(at, at + n);
}

function readStr(r, n) {
  const at = take(r, n);
  try {
    return utf8Strict.decode(r.bytes.subarray(at, at + n));
  } catch {
    throw new CodecError("a string that is not UTF-8");
  }
}

function readArray(r, n, depth) {
  const items = [];
  for (let i = 0; i < n; i++) items.push(read(r, depth + 1));
  return items;
}

function readMap(r, n, depth) {
  const map = Object.create(null);
  for (let i = 0; i < n; i++) {
    const key = read(r, depth + 1);
    if (typeof key !== "string") throw new CodecError("a map key that is not a string");
    map[key] = read(r, depth + 1);
  }
  return map;
}
