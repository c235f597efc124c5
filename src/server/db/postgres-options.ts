/**
 * For every connection the studio opens to PostgreSQL. No notices; and no fetch of array types
 * at connect: the studio sends no array parameters (jsonb holds its lists), and postgres.js runs
 * that fetch where a connection terminated during it rejects with no one to catch it.
 * (The driver's other fault under terminated connections, a deferred write to a closed socket
 * that ended the process, is patched in patches/postgres+3.4.9.patch.)
 */
export const POSTGRES_CLIENT_OPTIONS = { onnotice: () => {}, fetch_types: false } as const;
