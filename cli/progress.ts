/** A one-line progress bar on stderr (only when stderr is a terminal, or when forced). */
export function progressBar(label: string, options: { force?: boolean } = {}): (done: number, total: number) => void {
  const tty = process.stderr.isTTY || options.force;
  const started = Date.now();
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (!tty || (now - last < 100 && done < total)) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / Math.max(1, total)) * width);
    const rate = done / Math.max(0.001, (now - started) / 1000);
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${rate.toFixed(0)}/s`);
    if (done >= total) process.stderr.write('\n');
  };
}
