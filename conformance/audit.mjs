// The GraphQL-over-HTTP audit (graphql-http's auditServer) against a running server.
//
//   node conformance/audit.mjs http://127.0.0.1:8000/graphql [token]
//
// Every request carries `Authorization: Bearer <token>` when a token is given (the server
// refuses a GraphQL request without one). Prints one line per audit that is not ok, then
// the counts; the last line is JSON for scripts:
//   {"must": {"ok": 13, "total": 13}, "total": 61, "ok": ..., "warn": ..., "notice": ..., "error": ...}
// Exit status: 0 if no audit warns or errs, 1 otherwise, 2 if the audit could not run.
import { auditServer } from 'graphql-http';

const [url, token = process.env.TRAINER_AUDIT_TOKEN] = process.argv.slice(2);
if (!url) {
  console.error('usage: node conformance/audit.mjs <url of /graphql> [bearer token]');
  process.exit(2);
}

function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn });
const counts = { ok: 0, warn: 0, notice: 0, error: 0 };
const must = { ok: 0, total: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.name.startsWith('MUST')) {
    must.total += 1;
    if (result.status === 'ok') must.ok += 1;
  }
  if (result.status !== 'ok') {
    let body = '';
    try {
      body = (await result.response.text()).slice(0, 200);
    } catch {
      body = '(body already read)';
    }
    console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason} ${body}`);
  }
}
console.log(
  `MUST ${must.ok}/${must.total}; of ${results.length} audits: ${counts.ok} ok, ${counts.warn} warnings, ` +
    `${counts.notice} notices, ${counts.error} errors`,
);
console.log(JSON.stringify({ must, total: results.length, ...counts }));
process.exit(counts.warn || counts.error ? 1 : 0);
