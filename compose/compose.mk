# The compose stacks, as make targets; included from the top Makefile.
#
#   make up SCENARIO=sync-x4    build and start one scenario's stack, wait until healthy
#   make down                   stop it and remove its containers, networks, volumes
#   make ps / make logs [SERVICE=app]
#   make images-offline         stand-ins for the upstream base images (no Docker Hub)
#   make docker-setup           install Docker, docker-compose, debootstrap (Debian) when missing
#   make docker-test            the compose test suite (starts an engine when none answers)
#
# Everything goes through compose/lab-compose.sh; see compose/README.md.

LAB_COMPOSE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
LAB_COMPOSE_SH := $(LAB_COMPOSE_DIR)/lab-compose.sh
LAB_REPO_DIR := $(patsubst %/,%,$(dir $(abspath $(LAB_COMPOSE_DIR))))
LAB_DOCKER_APT := docker.io docker-compose debootstrap
LAB_TEST_PY = $(if $(PY),$(PY),python3)

.PHONY: up down ps logs images-offline docker-setup docker-test

up: ## Start a scenario's compose stack: make up SCENARIO=sync-x4
	@$(LAB_COMPOSE_SH) up "$(SCENARIO)"

down: ## Stop the compose stack and remove its volumes
	@$(LAB_COMPOSE_SH) down

ps: ## The compose stack's containers
	@$(LAB_COMPOSE_SH) ps

logs: ## The compose stack's logs (SERVICE=app for one service)
	@$(LAB_COMPOSE_SH) logs --tail=200 $(SERVICE)

images-offline: ## Build stand-ins for the base images when Docker Hub is unreachable
	@$(LAB_COMPOSE_SH) images-offline

docker-setup: ## Install dockerd, docker-compose and debootstrap (Debian) when missing
	@missing=""; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

docker-test: $(if $(PY),setup) docker-setup ## The compose stacks' tests (real Docker; a few minutes)
	LAB_DOCKER_TESTS=1 $(LAB_TEST_PY) -m pytest -q -m docker -p no:cacheprovider $(LAB_REPO_DIR)/tests/docker $(ARGS)
