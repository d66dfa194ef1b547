"""Plugins: the contract (:mod:`.api`), discovery (:mod:`.registry`) and the built-ins."""
