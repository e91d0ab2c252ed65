import { crc32 } from 'node:zlib';

// A sealed JSON object ends with `,"crc32":"<8 hex digits>"}`: the CRC-32 of every byte before
// that comma. The checksum covers the bytes as written, not a re-serialisation, so checking it
// needs no canonical JSON, and the object stays JSON that jq or a text editor can read.
const sealLength = ',"crc32":"00000000"}'.length;
const sealPattern = /^,"crc32":"([0-9a-f]{8})"\}$/;

/** What {@link checkSeal} found. */
export type SealCheck = 'sealed' | 'mismatch' | 'unsealed';

/**
 * Appends the CRC-32 of `json` (a JSON object, `{...}`) to it as its last field `crc32`.
 * @example
 * seal('{"meta":{},"records":[]}'); // '{"meta":{},"records":[],"crc32":"…"}'
 */
export function seal(json: string): string {
  const body = json.slice(0, -1);
  return `${body},"crc32":"${hex(crc32(body))}"}`;
}

/**
 * Whether `bytes` (one sealed object, no newline) end with a `crc32` field that matches the bytes
 * before it: `unsealed` when they do not end with one at all (data written before checksums, or
 * a seal that was itself damaged), `mismatch` when the checksum is wrong.
 */
export function checkSeal(bytes: Buffer): SealCheck {
  if (bytes.byteLength < sealLength + 2) return 'unsealed';
  const found = sealPattern.exec(bytes.subarray(bytes.byteLength - sealLength).toString('latin1'));
  if (found === null) return 'unsealed';
  return crc32(bytes.subarray(0, bytes.byteLength - sealLength)) === Number.parseInt(found[1] ?? '', 16)
    ? 'sealed'
    : 'mismatch';
}

/**
 * True when `bytes` are a whole sealed object followed by one more byte: the newline after a
 * record, damaged. A write cut short by a crash can only leave a prefix of a line, never this.
 */
export function hasDamagedNewline(bytes: Buffer): boolean {
  return bytes.byteLength > sealLength && checkSeal(bytes.subarray(0, -1)) !== 'unsealed';
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
