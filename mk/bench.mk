# `make bench`: how far the lab's throughput can be trusted (workerlab/bench/).
# Included by the top Makefile (-include mk/*.mk); ARGS pass through, e.g.
#   make bench ARGS="-s sync-x4 --quick"      make bench ARGS="--matrix-times"
.PHONY: bench bench-tools

bench-tools: setup ## Install wrk and redis-benchmark for the bench when missing (Debian packages)
	@missing=""; command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

bench: setup bench-tools ## Lab (locust) vs wrk per gunicorn scenario, recording cost, ceilings, checker speed, matrix time
	$(PY) -m workerlab bench $(ARGS)
