// How values read on the page: hashes, amounts, basis points, times and decoded values.

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}


export function fromBase64(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function short(text, keep = 8) {
  const s = String(text);
  return s.length > 2 * keep + 1 ? `${s.slice(0, keep)}...${s.slice(-keep)}` : s;
}

export function amount(value) {
  if (value === undefined || value === null || value === "") return "-";
  return BigInt(value).toLocaleString("en-US");
}

export function bps(value) {
  if (value === undefined || value === null) return "-";
  return `${(Number(value) / 100).toFixed(2)}%`;
}

export function rfc3339ToMs(text) {
  return Date.parse(String(text).replace(/(\.\d{3})\d*Z$/, "$1Z"));
}

export function ago(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

export function timeNs(ns) {
  if (!ns) return "-";
  return new Date(Number(BigInt(ns) / 1000000n)).toISOString();
}

// A decoded value as readable JSON text: bytes as 0x-hex, big integers as digits.
export function pretty(value) {
  return JSON.stringify(
    value,
    (key, v) => {
      if (v instanceof Uint8Array) return "0x" + hex(v);
      if (typeof v === "bigint") return v.toString();
      return v;
    },
    2,
  );
}
