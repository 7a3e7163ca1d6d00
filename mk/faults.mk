# Faults injected mid-run and what survives them (workerlab/faults/), and the hostile-input tests.
# Included by the top Makefile (-include mk/*.mk); PY, setup and ARGS come from there, e.g.
#   make faults ARGS="--quick"      make faults ARGS="-f redis-restart,worker-kill -t redis-incr"
.PHONY: faults faults-expected faults-test faults-tools

# The redis host-crash faults compile a small LD_PRELOAD shim (workerlab/shim/unsynced_aof.c).
faults-tools: setup ## Install a C compiler (Debian gcc) for the redis host-crash shim when missing
	@if ! command -v cc >/dev/null && ! command -v gcc >/dev/null; then \
	  echo "installing Debian packages: gcc libc6-dev"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; \
	fi

faults: setup faults-tools ## Inject every fault mid-run under sync-x4, expected vs observed; writes results/<ts>/faults.json
	$(PY) -m workerlab faults $(ARGS)

faults-expected: setup ## Print the expected (strategy x fault) table with reasons; nothing runs
	$(PY) -m workerlab faults --expected $(ARGS)

# `make test` already runs tests/test_faults.py (one cell per fault kind) and tests/test_fuzz.py.
faults-test: setup faults-tools ## The complete (fault x strategy) table as a test: pytest -m faults (about 8 minutes)
	LAB_FAULTS_FULL=1 $(PY) -m pytest -q -m faults tests/test_faults.py $(ARGS)
