/** A dataset path shown short: its file or folder name. */
export function datasetLabel(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || path;
}
