// What an SDK error says, for the Rust tests to check: its name, message, status and code, the
// problem body the gateway sent (parsed when it is JSON), and the SDK's own extras.
export function describeError(e) {
  let problem = null;
  if (typeof e?.responseBody === "string") {
    try {
      problem = JSON.parse(e.responseBody);
    } catch {
      problem = e.responseBody;
    }
  }
  return {
    name: e?.name ?? String(e),
    message: e?.message ?? String(e),
    status: e?.statusCode ?? null,
    code: e?.code ?? null,
    // The SDK sets ApiError.turnIndex only on its local stitch path, never from the gateway's
    // problem body: the gateway's `turn_index` is in `problem`.
    sdkTurnIndex: e?.turnIndex ?? null,
    retryAfterMs: e?.retryAfterMs ?? null,
    problem,
    // A zod validation failure: where the SDK's schema and the answer disagree.
    issues: Array.isArray(e?.issues) ? e.issues.map((i) => ({ path: i.path, code: i.code, message: i.message })) : null,
  };
}
