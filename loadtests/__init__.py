"""Load tests: Locust scenarios and the apps they measure (see ``wedcache bench-service``)."""
