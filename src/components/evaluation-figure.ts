/** An evaluation's loss, perplexity and the like, as its tables show them. */
export const evaluationFigure = (value: number | null) => (value === null ? "–" : value.toFixed(3));
