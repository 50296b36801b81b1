"""`meshgate tour`: the four reference scenarios (version routing, traffic
management, canary deployment, full stack) played against a running
`meshgate up` cluster, where `meshgate demo` plays them in process."""
