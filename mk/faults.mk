# Faults injected mid-run and what survives them (workerlab/faults/), and the hostile-input tests.
# Included by the top Makefile (-include mk/*.mk); PY, setup and ARGS come from there, e.g.
#   make faults ARGS="--quick"      make faults ARGS="-s sync-x4 -f redis-restart,worker-kill -t redis-incr"
#   make faults ARGS="-s gthread-2x8 --route direct"
.PHONY: faults faults-expected faults-test

faults: setup ## Faults mid-run under every gunicorn scenario, expected vs observed, drops per worker class; results/<ts>/faults.json
	$(PY) -m workerlab faults $(ARGS)

faults-expected: setup ## Print the expected (strategy x fault) table with reasons; nothing runs
	$(PY) -m workerlab faults --expected $(ARGS)

# `make test` already runs tests/test_faults.py (one cell per fault kind) and tests/test_fuzz.py.
faults-test: setup ## The complete (fault x strategy) table as a test: pytest -m faults (about 8 minutes)
	LAB_FAULTS_FULL=1 $(PY) -m pytest -q -m faults tests/test_faults.py $(ARGS)
