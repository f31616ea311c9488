import { createHash, randomBytes } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A SHA-512 crypt(3) hash ($6$), so the seed holds no clear-text password; chpasswd -e and cloud-init take it as is. */
export function hashPassword(password: string, salt = randomSalt()): string {
  return sha512Crypt(password, salt);
}

function randomSalt(): string {
  return [...randomBytes(16)].map((b) => ITOA64[b & 63]).join('');
}

const sha512 = (...parts: Buffer[]) => {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** `length` bytes of `block` repeated. */
const stretch = (block: Buffer, length: number) => Buffer.concat(Array(Math.ceil(length / block.length) || 0).fill(block)).subarray(0, length);

/** Ulrich Drepper's SHA-crypt, SHA-512 variant, 5000 rounds (https://www.akkadia.org/drepper/SHA-crypt.txt). */
export function sha512Crypt(password: string, saltText: string): string {
  const p = Buffer.from(password, 'utf8');
  const s = Buffer.from(saltText.slice(0, 16), 'utf8');
  const b = sha512(p, s, p);
  const a = createHash('sha512').update(p).update(s).update(stretch(b, p.length));
  for (let n = p.length; n > 0; n >>= 1) a.update(n & 1 ? b : p);
  let c = a.digest();
  const pBytes = stretch(sha512(...Array(p.length).fill(p)), p.length);
  const sBytes = stretch(sha512(...Array(16 + c[0]!).fill(s)), s.length);
  for (let i = 0; i < 5000; i++) {
    const parts = [i & 1 ? pBytes : c];
    if (i % 3) parts.push(sBytes);
    if (i % 7) parts.push(pBytes);
    parts.push(i & 1 ? c : pBytes);
    c = sha512(...parts);
  }
  const order = [
    [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29],
    [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16],
    [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
  ];
  let out = '';
  const encode = (w: number, chars: number) => {
    for (let k = 0; k < chars; k++, w >>= 6) out += ITOA64[w & 63];
  };
  for (const [x, y, z] of order) encode((c[x!]! << 16) | (c[y!]! << 8) | c[z!]!, 4);
  encode(c[63]!, 2);
  return `$6$${s.toString('utf8')}$${out}`;
}
