# Mutants: can the judge say no? Deliberately broken variants of the app, each in a cell whose verdict it
# must flip (workerlab/mutants/, services/app/labapp/mutants.py). Included by the top Makefile
# (-include mk/*.mk); PY, setup and ARGS come from there, e.g.
#   make mutants ARGS="-m over-count,stale-final-read"      make mutants-list
.PHONY: mutants mutants-list

mutants: setup ## Run every mutant beside its clean control (about 2 minutes); writes results/<ts>/mutants.json
	$(PY) -m workerlab mutants $(ARGS)

mutants-list: setup ## Print each mutant, the cell it must flip and the rule that must catch it; nothing runs
	$(PY) -m workerlab mutants --list $(ARGS)
