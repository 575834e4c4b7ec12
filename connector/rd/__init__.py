"""RD Station's side: the API contract, the HTTP client and its bounds, OAuth, answers, retry decisions, rate."""
