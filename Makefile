# wedcache: `make run` runs the lab's main job, `make test` the test suite.
# Both need only Python 3.11+ and pip: the first run creates .venv and installs the project;
# Redis and PostgreSQL come from AI_CACHE_* URLs, the default ports, or throwaway servers
# started under .wedcache/ (see wedcache/services/).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WEDCACHE := $(VENV)/bin/wedcache
STAMP := $(VENV)/.installed
# `make test FULL=1` also runs the tests marked slow.
MARKERS := $(if $(FULL),,-m "not slow")

.PHONY: venv test test-full run bench bench-sim bench-service bench-semantic perf-gate load-distributed chaos services-up services-down clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --user virtualenv && $(PYTHON) -m virtualenv $(VENV); }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[test,bench,semantic]"
	touch $(STAMP)

# Exit status 5 (no tests collected) counts as a failure; PYTEST_STATUS_FILE, when set,
# receives pytest's own exit status (make itself only ever exits 2 on failure).
test: venv
	$(PY) -m pytest -q $(MARKERS) $(PYTEST_ARGS); status=$$?; \
	if [ -n "$(PYTEST_STATUS_FILE)" ]; then echo $$status > "$(PYTEST_STATUS_FILE)"; fi; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests, which is a failure" >&2; exit 1; fi; \
	exit $$status

test-full:
	$(MAKE) test FULL=1

# The main job: a year of wedding traffic through the real cache in simulated time, with its
# report in reports/year/ (report.html, report.md, summary.json, timeseries.csv, PNGs).
run: venv
	$(WEDCACHE) simulate year --out reports/year

bench: venv
	$(WEDCACHE) bench
	$(WEDCACHE) bench-sim
	$(WEDCACHE) bench-service
	$(WEDCACHE) bench-semantic

bench-sim: venv
	$(WEDCACHE) bench-sim

# Semantic matching on the shipped labelled pairs: precision/recall with and without the guard,
# and the lookup cost (memory index, pgvector) against an exact-key hit.
bench-semantic: venv
	$(WEDCACHE) bench-semantic

# The CI performance gate: serve on loopback, load with Locust, check the SLA (exit 1 on a breach).
# PROFILE=full targets the source document's figures.
perf-gate: venv
	$(WEDCACHE) gate run --profile $(or $(PROFILE),ci)

# Distributed load: a Locust master and WORKERS workers against two replicas behind a loopback
# balancer, checked like the gate (exit 1 on a breach). DURATION in seconds ("30" or "30s");
# RATE=R paces the users at R requests/s in all; PROFILE=full for the SLA's targets.
load-distributed: venv
	$(WEDCACHE) gate run --profile $(or $(PROFILE),ci) --distributed $(or $(WORKERS),2) --users $(or $(USERS),50) \
		--duration $(patsubst %s,%,$(or $(DURATION),30s)) $(if $(RATE),--rate $(RATE))

# Fault drills: Redis, PostgreSQL and a replica fail under steady load against two replicas
# (reports/chaos/<UTC>/; exit 1 on a failed check). SHORT=1: outages of ~2 s, under a minute.
chaos: venv
	$(WEDCACHE) chaos run $(if $(SHORT),--short)

# The HTTP service's cached-query endpoint against a bare FastAPI endpoint, under Locust.
bench-service: venv
	$(WEDCACHE) bench-service

services-up: venv
	$(WEDCACHE) services up

services-down: venv
	$(WEDCACHE) services down

clean:
	-[ ! -x $(WEDCACHE) ] || $(WEDCACHE) services down
	rm -rf .wedcache .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
