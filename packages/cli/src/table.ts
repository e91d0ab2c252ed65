/**
 * An aligned plain-text table: a header row and the rows, columns two spaces apart, the last
 * column not padded (no trailing blanks). Cells are printed as they are; a newline in one is
 * shown as `\n` so that a row stays one line.
 *
 * @example
 * table(['NAME', 'HEALTHY'], [['users', '2/2']]); // "NAME   HEALTHY\nusers  2/2\n"
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows].map((row) => row.map((cell) => cell.replace(/\r?\n/g, '\\n')));
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** Name/value lines, the names aligned: for one record (an envelope's fields). */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([name]) => name.length));
  return pairs.map(([name, value]) => `${`${name}:`.padEnd(width + 2)}${value}\n`).join('');
}
