# The results people look at: report.html, locust's web UI with a live Verdict tab, and their browser tests.
# Included by the Makefile (-include mk/*.mk); PY, VENV and setup come from there.

PLAYWRIGHT_PIN := playwright==1.65.2
CHROMIUM := /usr/bin/chromium
CHROMIUM_PACKAGES := chromium fonts-dejavu-core fonts-liberation

.PHONY: report ui browser-test

report: setup ## report.html for the newest run, or RUN=results/<stamp>; RUN="A B" compares two runs
	$(PY) -m workerlab report $(RUN) $(ARGS)

ui: setup ## Stack + locust web UI (127.0.0.1:8089) with a live Verdict tab: make ui SCENARIO=gevent-x1 [STRATEGY=name]
	@test -n "$(SCENARIO)" || { echo "usage: make ui SCENARIO=name [STRATEGY=name] (make list shows them)"; exit 2; }
	$(PY) -m workerlab ui $(SCENARIO) $(if $(STRATEGY),--strategy $(STRATEGY)) $(ARGS)

# Debian's chromium, driven by Playwright for Python; no browser is ever downloaded (never `playwright install`).
browser-test: setup ## Install chromium (apt) and Playwright (pip) if missing; run the browser tests (pytest -m browser)
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian packages: $(CHROMIUM_PACKAGES)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $(CHROMIUM_PACKAGES) >/dev/null; \
	fi
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PLAYWRIGHT_PIN)
	$(PY) -m pytest -q -m browser tests/browser $(ARGS)
