"""`meshgate status`: the cluster as one table, gathered from the bus."""
