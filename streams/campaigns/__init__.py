"""Brand agents, campaigns, tactics and creative assignments, kept by the worker that owns their
account (the campaigns topic is partitioned by account): the table, its index, the processor that
writes it and the owner's reads."""
