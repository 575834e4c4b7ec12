"""Getting closed batches to RD.

- `batch`: `Batch`, `Batcher`: byte-exact batches of `connector.in_flight.Item`s, and `body_of`, the only builder
  of a request body.
- `lanes`: `LaneSet`, which lane a partition uses (the least loaded at assignment, kept while anything of it is
  in flight: its order) and when a lane's open batch goes out; `Lane`, one thread per lane: its queue,
  generations (`abandon`), `close`, and `fatal`.
- `attempt`: `Sender`, one batch's delivery: request budget, retries, deadline, refresh after a 401, the
  POST, and accepting a 200 (results published).
- `bisect`: a batch RD rejects in its format (400/422) is halved down to single events, dead-lettered.
"""
