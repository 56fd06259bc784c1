# mpsoa-lab: two commands.
#   make lab    set everything up, then open JupyterLab on the notebooks
#   make test   set everything up, then run unit tests, integration tests and every notebook (nbval)
# Both are idempotent and quick when nothing is missing. Also: make quick (unit tests, the
# component life cycle and the three short notebooks: a minute or two, for everyday loops),
# make bench (Celery against raw kombu, a couple of minutes), make notebook NB=04 (one
# notebook, as make test runs it), make review (every notebook, then one page of every
# claim), make check (can this machine run the lab?), make integration AREA=cluster (the
# integration tests of one area), make unit / integration / notebooks, make status / down,
# make lint (ruff and the layer contract; also part of the unit tests) and make format (ruff
# format and ruff's safe fixes).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mpsoa-installed
PYTEST_ARGS ?=
# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
JUPYTER_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test quick check setup rabbitmq haproxy browser review unit integration notebook notebooks status down clean lint format test-rabbitmq4 test-urls

lab: $(STAMP)
	@sh tools/ensure-rabbitmq.sh --optional
	@sh tools/ensure-haproxy.sh --optional
	$(BIN)/python -m mpsoa_lab run -- $(BIN)/jupyter lab $(JUPYTER_ARGS) notebooks/

# make test: two pytest sessions (tools/run-tests.sh): first the unit tests and the integration
# tests marked beside_others, three at a time; then the rest and every notebook, one at a time.
test: $(STAMP) rabbitmq haproxy browser
	@sh tools/run-tests.sh $(BIN)/python $(PYTEST_ARGS)

setup: $(STAMP) rabbitmq haproxy browser

rabbitmq:
	@sh tools/ensure-rabbitmq.sh

# HAProxy and wrk, from the OS packages: the REST alternative's load balancer and load generator.
haproxy:
	@sh tools/ensure-haproxy.sh

# Chromium and chromedriver, from the OS packages: the tests open the review page in them.
browser:
	@sh tools/ensure-browser.sh

$(STAMP): requirements.txt pyproject.toml
	@sh tools/ensure-python.sh $(PYTHON)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -e .
	@touch $(STAMP)

# make test-rabbitmq4   make test's two sessions on the lab's own RabbitMQ 4.0 nodes (Debian 13's
#                       package, in a folder made once with debootstrap: needs root;
#                       tools/rabbitmq4.sh). Not part of make test. Its runs record the figures
#                       that differ by version in notebooks/measured/ (commit them).
test-rabbitmq4: $(STAMP) haproxy
	@sh tools/rabbitmq4.sh setup
	MPSOA_RECORD_MEASURED=1 sh tools/rabbitmq4.sh run sh tools/run-tests.sh $(BIN)/python $(PYTEST_ARGS)

# make test-urls   every notebook on brokers given by URL, as a team runs the lab on brokers of its
#                  own: the lab's two nodes, seen from a lab home that did not start them. Every
#                  cell runs without an error; a section that needs the lab's nodes prints one
#                  line and is skipped. Not part of make test, which runs notebooks 10 and 11 so
#                  (every section of theirs needs the lab's nodes).
test-urls: $(STAMP) rabbitmq haproxy
	MPSOA_BY_URL_NOTEBOOKS=all $(BIN)/python -m pytest tests/integration/test_external_brokers.py \
		-k notebooks_run_on_brokers_given_by_url --durations=12 --timeout=900 $(PYTEST_ARGS)

quick: $(STAMP) rabbitmq
	$(BIN)/python -m pytest tests/unit tests/integration/test_components.py \
		notebooks/01_architecture.ipynb notebooks/02_exchanges_queues_bindings.ipynb \
		notebooks/03_router_and_config.ipynb --nbval-lax --nbval-current-env $(PYTEST_ARGS)

# make review   every notebook on the lab, then review/index.html (one page of every claim, opens
#               with no network) and review/claims.json. make review NB="01 03" runs those only;
#               SYNC_URL=... ASYNC_URL=... runs them on brokers the lab did not start.
review: $(STAMP) rabbitmq haproxy
	$(BIN)/python -m mpsoa_lab review $(if $(NB),--notebooks $(NB),) \
		$(if $(SYNC_URL),--sync-url $(SYNC_URL) --async-url $(ASYNC_URL),) $(REVIEW_ARGS)

# make check   can this machine run the lab? Python, RabbitMQ and Erlang, HAProxy and wrk, free
#              ports, memory and disk, then two nodes, a worker and the edge in a scratch lab home
#              of its own: one line per check with its fix, status 0 only when all is well, in
#              under a minute. It installs nothing but the Python packages: what it reports
#              missing is what make setup would install.
check: $(STAMP)
	$(BIN)/python -m mpsoa_lab check

# make notebook NB=04   one notebook under nbval, as make test runs it
notebook: $(STAMP) rabbitmq
	@test -n "$(NB)" || { echo "make notebook: say which, e.g. make notebook NB=04 (the numbers: ls notebooks/*.ipynb)" >&2; exit 2; }
	@set -- notebooks/$(NB)_*.ipynb; test -e "$$1" || { echo "make notebook: no notebook numbered '$(NB)' in notebooks/ (ls notebooks/*.ipynb)" >&2; exit 2; }; \
	echo $(BIN)/python -m pytest "$$@" --nbval-lax --nbval-current-env $(PYTEST_ARGS); \
	$(BIN)/python -m pytest "$$@" --nbval-lax --nbval-current-env $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# make integration AREA=cluster   the integration tests of one area: the files
#                                 tests/integration/test_*cluster*.py (ls tests/integration)
integration: $(STAMP) rabbitmq haproxy
	@set -- tests/integration/test_*$(AREA)*.py; test -e "$$1" || { echo "make integration: no test file matches AREA='$(AREA)' (ls tests/integration)" >&2; exit 2; }; \
	echo $(BIN)/python -m pytest $(if $(AREA),"$$@",tests/integration) $(PYTEST_ARGS); \
	$(BIN)/python -m pytest $(if $(AREA),"$$@",tests/integration) $(PYTEST_ARGS)

notebooks: $(STAMP) rabbitmq
	$(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

status: $(STAMP)
	$(BIN)/python -m mpsoa_lab status

down: $(STAMP)
	$(BIN)/python -m mpsoa_lab down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# make bench   set everything up, then Celery against raw kombu, side by side (a couple of
#              minutes); prints a table and writes benchmarks/results.json
.PHONY: bench
# Its own lab home: the benchmark empties mpledger's queues, so it never shares a lab you have open.
bench: $(STAMP) rabbitmq
	MPSOA_LAB_HOME=$${MPSOA_BENCH_HOME:-$(CURDIR)/.lab/bench} $(BIN)/python -m mpsoa_lab.bench --output benchmarks/results.json
