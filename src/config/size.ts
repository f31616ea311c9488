const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * Parses a size such as `2G`, `512M`, `1.5G`, `2GiB` or `2GB` (binary units, as QEMU reads them) into bytes.
 * A bare number is taken in `bareUnit` (MB for memory, as the original's -m).
 */
export function parseSize(text: string, bareUnit: 'B' | 'M' = 'B'): number | undefined {
  // trimmed first: \s* on both sides of an optional unit made the match quadratic ('1' + 100k spaces + 'x': seconds)
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = m[2]!.toUpperCase();
  const scale = unit === '' && bareUnit === 'M' ? UNITS.M! : UNITS[unit]!;
  const bytes = Math.round(Number(m[1]) * scale);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export function formatSize(bytes: number): string {
  for (const [unit, scale] of [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (bytes >= scale) {
      const v = bytes / scale;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    }
  }
  return `${bytes}B`;
}
