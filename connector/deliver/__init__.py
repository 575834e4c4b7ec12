"""Batches (the only body builder), lanes, and the attempt at RD: budget, retry, deadline, bisection."""
