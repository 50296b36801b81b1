"""What the gateway and scenario demos share: a `Caller` that sends requests
through the gateway and prints each as a line, an `EventLog` that prints the
gateway's events under the request that caused them, the metrics snapshot
as a table, seeded route randomness (the same story every run), and library
logs kept to warnings while a demo prints its own account."""
