# Faults injected mid-run and what survives them (workerlab/faults/), and the hostile-input tests.
# Included by the top Makefile (-include mk/*.mk); PY, setup and ARGS come from there, e.g.
#   make faults ARGS="--quick"      make faults ARGS="-f redis-restart,worker-kill -t redis-incr"
.PHONY: faults faults-expected faults-test

faults: setup ## Inject every fault mid-run under sync-x4, expected vs observed; writes results/<ts>/faults.json
	$(PY) -m workerlab faults $(ARGS)

faults-expected: setup ## Print the expected (strategy x fault) table with reasons; nothing runs
	$(PY) -m workerlab faults --expected $(ARGS)

# `make test` already runs tests/test_faults.py (one cell per fault kind) and tests/test_fuzz.py.
faults-test: setup ## The complete (fault x strategy) table as a test: pytest -m faults (about 8 minutes)
	LAB_FAULTS_FULL=1 $(PY) -m pytest -q -m faults tests/test_faults.py $(ARGS)
