"""Pure statistics over the summaries a store computes: no I/O, identical for every backend."""
