# meshfed.istio — developer and CI entry points.  `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TOP := $(CURDIR)
VENV := $(TOP)/.venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(TOP)/ansible.cfg
export PATH := $(VENV)/bin:$(PATH)
export SANDBOX_CLUSTERS ?= 2
export SANDBOX_VMS ?= 1

.PHONY: help venv test sanity units lint integration sandbox-build sandbox-up sandbox-down sandbox-status sandbox-istiod demo clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

venv: ## create .venv from the pinned requirements and link the collection for Ansible
	@tools/bootstrap.sh

test: venv ## the whole test suite: sanity, units, lint, integration (brings the sandbox up)
	@tools/run-tests.sh

sanity: venv ## ansible-test sanity (Python 3.11)
	@tools/run-tests.sh sanity

units: venv ## unit tests (pytest, no cluster)
	@tools/run-tests.sh units

lint: venv ## ansible-lint, production profile
	@tools/run-tests.sh lint

integration: venv ## integration tests against the sandbox clusters
	@tools/run-tests.sh integration

sandbox-build: ## build the sandbox binaries into the versioned cache (~/.cache/meshfed-sandbox)
	@python3 -m tools.sandbox build

sandbox-up: ## build what is missing, start $(SANDBOX_CLUSTERS) clusters (and $(SANDBOX_VMS) VM hosts); writes .sandbox/kubeconfig
	@python3 -m tools.sandbox up --clusters $(SANDBOX_CLUSTERS) --vms $(SANDBOX_VMS)

sandbox-down: ## stop every sandbox process
	@python3 -m tools.sandbox down

sandbox-status: ## what the sandbox runs
	@python3 -m tools.sandbox status

sandbox-istiod: ## run one real istiod (pilot-discovery) per sandbox cluster, out of cluster
	@python3 -m tools.sandbox istiod

demo: venv ## bring the sandbox (clusters, istiods, the VM vm1) up, run the main job (playbooks/site.yml) on it: install, federate, onboard vm1, the samples, verify
	@python3 -m tools.sandbox up --clusters $(SANDBOX_CLUSTERS) --vms $(SANDBOX_VMS) --istiod
	@# each istiod follows its Deployment (a new pod template restarts it, as its Pod would be replaced)
	@time ansible-playbook -i inventories/sandbox playbooks/site.yml -e site_deploy_samples=true

clean: ## remove local build outputs (not the sandbox binary cache)
	rm -rf .build tests/output
