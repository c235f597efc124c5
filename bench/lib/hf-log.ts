/**
 * A training.log as an unmodified Hugging Face Trainer script writes it: plain lines, a tqdm bar
 * redrawn with "\r" between newlines, and every `everyDict` lines the logs dict
 * `{'loss': …, 'learning_rate': …, 'epoch': …}` (preceded by the bar, as tqdm leaves it).
 */
export function hfTrainingLog(lines: number, everyDict = 10): string {
  const out: string[] = [];
  for (let i = 1; i <= lines; i++) {
    const step = Math.ceil(i / 2);
    const total = Math.ceil(lines / 2);
    const percent = Math.floor((step * 100) / total);
    const bar = ` ${percent}%|${"█".repeat(Math.floor(percent / 10)).padEnd(10)}| ${step}/${total} [00:${String(i % 60).padStart(2, "0")}<01:00,  4.20it/s]`;
    if (i % everyDict === 0) {
      const loss = (2 / (1 + i / 1000)).toFixed(4);
      const epoch = ((3 * step) / total).toFixed(2);
      out.push(
        `${bar}\r{'loss': ${loss}, 'grad_norm': 1.25, 'learning_rate': 0.0002, 'epoch': ${epoch}}`,
      );
    } else if (i % 3 === 0) {
      out.push(`${bar}\r${bar}`);
    } else {
      out.push(`[INFO|trainer.py:${2000 + (i % 500)}] step ${step}: tokens ${i * 128}, batch ok`);
    }
  }
  return `${out.join("\n")}\n`;
}
