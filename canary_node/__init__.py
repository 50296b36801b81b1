"""The canary controller as a process: `meshgate canary --config FILE`.

Any number of controllers may run; one leads, elected through a lease in
JetStream KV (`leader_lease`, `lease_bucket`, `election`). The leader sums
every gateway replica's metrics (`metrics_inbox`), judges each canary route
with the library's `CanaryEngine` (`rollouts`), persists each rollout's
state (`rollout_store`), broadcasts weights and decisions
(`canary_broadcasts`) and answers operators (`leader`). `meshgate rollout`
(`rollout_command`) is the operators' side.
"""
